#include "store/source_answers.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace metronome {

std::string source_answers_to_json(const std::vector<SourceAnswer>& answers) {
  if (answers.empty()) return "[]";  // a single source's record: no JSON document to build
  nlohmann::json j = nlohmann::json::array();
  for (const SourceAnswer& a : answers) j.push_back({{"source", a.source}, {"value", a.value}});
  return j.dump();
}

Result<std::vector<SourceAnswer>> source_answers_from_json(std::string_view text) {
  std::vector<SourceAnswer> out;
  if (text.empty()) return out;
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    if (!j.is_array()) throw std::invalid_argument("not an array");
    for (const auto& item : j) {
      out.push_back({item.at("source").get<std::string>(), item.at("value").get<std::string>()});
    }
    return out;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(fmt::format("unreadable source answers: {}", e.what()));
  }
}

}  // namespace metronome
