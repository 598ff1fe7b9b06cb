// The JSON form of a ValueRecord that a DLQ message carries (its record_json column), with times
// as integers so the record round-trips exactly. The same text as SqliteStore writes.
#pragma once

#include <string>

#include "common/result.h"
#include "store/records.h"

namespace metronome {

std::string record_to_json_text(const ValueRecord& record);
// InvalidArgument naming what is wrong when `text` is not such a record.
Result<ValueRecord> record_from_json_text(const std::string& text);

}  // namespace metronome
