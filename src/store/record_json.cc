#include "store/record_json.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "store/source_answers.h"

namespace metronome {

std::string record_to_json_text(const ValueRecord& r) {
  return nlohmann::json{
      {"feed", r.feed.str()},
      {"round", r.round},
      {"slot_ms", to_unix_ms(r.slot)},
      {"value", r.value},
      {"decimals", r.decimals},
      {"observed_at_ns", r.observed_at.time_since_epoch().count()},
      {"published_at_ns", r.published_at.time_since_epoch().count()},
      {"execution", r.execution.str()},
      {"signer", r.signer},
      {"signature", r.signature},
      {"digest", r.digest},
      {"sources", nlohmann::json::parse(source_answers_to_json(r.sources))},
      {"proof", r.proof},
  }
      .dump();
}

Result<ValueRecord> record_from_json_text(const std::string& text) {
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    ValueRecord r;
    r.feed = FeedId(j.at("feed").get<std::string>());
    r.round = j.at("round").get<int64_t>();
    r.slot = slot_from_unix_ms(j.at("slot_ms").get<int64_t>());
    r.value = j.at("value").get<std::string>();
    r.decimals = j.at("decimals").get<int>();
    r.observed_at = WallTime(Nanos(j.at("observed_at_ns").get<int64_t>()));
    r.published_at = WallTime(Nanos(j.at("published_at_ns").get<int64_t>()));
    r.execution = ExecutionId(j.at("execution").get<std::string>());
    r.signer = j.at("signer").get<std::string>();
    r.signature = j.at("signature").get<std::string>();
    r.digest = j.at("digest").get<std::string>();
    if (j.contains("sources")) {
      METRONOME_ASSIGN_OR_RETURN(r.sources, source_answers_from_json(j.at("sources").dump()));
    }
    if (j.contains("proof")) r.proof = j.at("proof").get<std::string>();
    return r;
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(fmt::format("unreadable DLQ record: {}", e.what()));
  }
}

}  // namespace metronome
