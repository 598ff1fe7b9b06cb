// How records look to people and programs: JSON (for the CLI's --format json and the HTTP API)
// and plain-text tables. Numbers that can exceed 2^53 (round, value) are JSON strings.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "store/records.h"

namespace metronome {

nlohmann::json to_json(const ValueRecord& record);
nlohmann::json to_json(const SlotRecord& slot);
nlohmann::json to_json(const Execution& execution);
nlohmann::json to_json(const DlqMessage& message);
nlohmann::json to_json(const AlarmState& alarm);

// Parses what to_json(ValueRecord) wrote. InvalidArgument naming the field on bad input.
Result<ValueRecord> value_record_from_json(const nlohmann::json& json);

std::string values_table(const std::vector<ValueRecord>& records);
std::string executions_table(const std::vector<Execution>& executions);
std::string dlq_table(const std::vector<DlqMessage>& messages);

}  // namespace metronome
