// The JSON text form of a record's source answers (ValueRecord::sources), as the stores keep it:
// [{"source":"a","value":"100.5"}, ...]; "[]" for none.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "store/records.h"

namespace metronome {

std::string source_answers_to_json(const std::vector<SourceAnswer>& answers);
// InvalidArgument naming what is wrong when `text` is not such an array. Empty text: none.
Result<std::vector<SourceAnswer>> source_answers_from_json(std::string_view text);

}  // namespace metronome
