#include "api/views.h"

#include <fmt/format.h>

#include <algorithm>

namespace metronome {
namespace {

// Left-aligned columns sized to their widest cell.
std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t i = 0; i < cells.size(); ++i) {
      l += cells[i];
      if (i + 1 < cells.size()) l += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    out += l + "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  return out;
}

nlohmann::json optional_time(const std::optional<WallTime>& t) {
  return t ? nlohmann::json(format_iso_us(*t)) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json to_json(const ValueRecord& r) {
  nlohmann::json j = {
      {"feed", r.feed.str()},
      {"round", std::to_string(r.round)},
      {"slot", format_iso_ms(r.slot)},
      {"slot_ms", std::to_string(to_unix_ms(r.slot))},
      {"value", r.value},
      {"decimals", r.decimals},
      {"observed_at", format_iso_us(r.observed_at)},
      {"published_at", format_iso_us(r.published_at)},
      {"execution", r.execution.str()},
  };
  if (!r.signer.empty()) j["signer"] = r.signer;
  if (!r.signature.empty()) j["signature"] = r.signature;
  if (!r.digest.empty()) j["digest"] = r.digest;
  if (!r.proof.empty()) j["proof"] = r.proof;  // a batch signature's Merkle proof (ADR 0018)
  if (!r.sources.empty()) {
    nlohmann::json sources = nlohmann::json::array();
    for (const SourceAnswer& a : r.sources) {
      sources.push_back({{"source", a.source}, {"value", a.value}});
    }
    j["sources"] = std::move(sources);  // a median's sources that answered; not signed
  }
  return j;
}

Result<ValueRecord> value_record_from_json(const nlohmann::json& j) {
  auto field = [&](const char* name) -> Result<std::string> {
    if (!j.is_object() || !j.contains(name)) {
      return Status::InvalidArgument(fmt::format("record: missing field '{}'", name));
    }
    const auto& v = j.at(name);
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    return Status::InvalidArgument(fmt::format("record: field '{}' must be a string", name));
  };
  auto integer = [&](const char* name) -> Result<int64_t> {
    METRONOME_ASSIGN_OR_RETURN(std::string text, field(name));
    try {
      size_t used = 0;
      int64_t v = std::stoll(text, &used);
      if (used != text.size()) throw std::invalid_argument(text);
      return v;
    } catch (const std::exception&) {
      return Status::InvalidArgument(
          fmt::format("record: field '{}' is not an integer: '{}'", name, text));
    }
  };
  auto time = [&](const char* name) -> Result<WallTime> {
    METRONOME_ASSIGN_OR_RETURN(std::string text, field(name));
    auto t = parse_iso(text);
    if (!t.ok()) return t.status().With(fmt::format("record: field '{}'", name));
    return *t;
  };
  ValueRecord r;
  METRONOME_ASSIGN_OR_RETURN(std::string feed, field("feed"));
  r.feed = FeedId(feed);
  METRONOME_ASSIGN_OR_RETURN(r.round, integer("round"));
  if (j.contains("slot_ms")) {
    METRONOME_ASSIGN_OR_RETURN(int64_t ms, integer("slot_ms"));
    r.slot = slot_from_unix_ms(ms);
  } else {
    METRONOME_ASSIGN_OR_RETURN(WallTime slot, time("slot"));
    r.slot = std::chrono::floor<Millis>(slot);
  }
  METRONOME_ASSIGN_OR_RETURN(r.value, field("value"));
  METRONOME_ASSIGN_OR_RETURN(int64_t decimals, integer("decimals"));
  r.decimals = static_cast<int>(decimals);
  METRONOME_ASSIGN_OR_RETURN(r.observed_at, time("observed_at"));
  METRONOME_ASSIGN_OR_RETURN(r.published_at, time("published_at"));
  METRONOME_ASSIGN_OR_RETURN(std::string execution, field("execution"));
  r.execution = ExecutionId(execution);
  if (j.contains("signer")) {
    METRONOME_ASSIGN_OR_RETURN(r.signer, field("signer"));
  }
  if (j.contains("signature")) {
    METRONOME_ASSIGN_OR_RETURN(r.signature, field("signature"));
  }
  if (j.contains("digest")) {
    METRONOME_ASSIGN_OR_RETURN(r.digest, field("digest"));
  }
  if (j.contains("proof")) {
    METRONOME_ASSIGN_OR_RETURN(r.proof, field("proof"));
  }
  if (j.contains("sources") && j.at("sources").is_array()) {
    for (const auto& a : j.at("sources")) {
      if (!a.is_object() || !a.contains("source") || !a.contains("value") ||
          !a.at("source").is_string() || !a.at("value").is_string()) {
        return Status::InvalidArgument(
            "record: field 'sources' must be a list of {\"source\", \"value\"} strings");
      }
      r.sources.push_back({a.at("source").get<std::string>(), a.at("value").get<std::string>()});
    }
  }
  return r;
}

nlohmann::json to_json(const SlotRecord& s) {
  return {
      {"slot", format_iso_ms(s.slot)},
      {"slot_ms", std::to_string(to_unix_ms(s.slot))},
      {"outcome", std::string(to_string(s.outcome))},
      {"fired_at", optional_time(s.fired_at)},
      {"lateness_us", s.lateness_us ? nlohmann::json(*s.lateness_us) : nlohmann::json(nullptr)},
      {"error", s.error},
      {"attempts", s.attempts},
  };
}

nlohmann::json to_json(const Execution& e) {
  nlohmann::json slots = nlohmann::json::array();
  for (const auto& s : e.slots) slots.push_back(to_json(s));
  return {
      {"id", e.id.str()},
      {"feed", e.feed.str()},
      {"window_start", format_iso_ms(e.window_start)},
      {"window_end", format_iso_ms(e.window_end)},
      {"state", std::string(to_string(e.state))},
      {"created_at", format_iso_us(e.created_at)},
      {"finished_at", optional_time(e.finished_at)},
      {"slots", std::move(slots)},
  };
}

nlohmann::json to_json(const DlqMessage& m) {
  return {
      {"id", m.id},
      {"feed", m.feed.str()},
      {"slot", m.slot ? nlohmann::json(format_iso_ms(*m.slot)) : nlohmann::json(nullptr)},
      {"execution", m.execution.str()},
      {"stage", m.stage},
      {"error", m.error},
      {"attempts", m.attempts},
      {"first_failure", format_iso_us(m.first_failure)},
      {"last_failure", format_iso_us(m.last_failure)},
      {"record", m.record ? to_json(*m.record) : nlohmann::json(nullptr)},
  };
}

nlohmann::json to_json(const AlarmState& a) {
  return {
      {"alarm", a.name},
      {"state", std::string(to_string(a.status))},
      {"previous", std::string(to_string(a.previous))},
      {"since", format_iso_us(a.since)},
      {"reason", a.reason},
  };
}

std::string values_table(const std::vector<ValueRecord>& records) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : records) {
    auto lateness = std::chrono::duration_cast<Micros>(r.published_at - WallTime(r.slot)).count();
    rows.push_back({r.feed.str(), std::to_string(r.round), format_iso_ms(r.slot), r.value,
                    format_iso_us(r.published_at), std::to_string(lateness)});
  }
  return table({"FEED", "ROUND", "SLOT", "VALUE", "PUBLISHED_AT", "PUBLISH_US"}, rows);
}

std::string executions_table(const std::vector<Execution>& executions) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : executions) {
    int counts[5] = {0, 0, 0, 0, 0};
    for (const auto& s : e.slots) ++counts[static_cast<int>(s.outcome)];
    rows.push_back({e.id.str(), std::string(to_string(e.state)), std::to_string(e.slots.size()),
                    std::to_string(counts[1]), std::to_string(counts[2]), std::to_string(counts[3]),
                    std::to_string(counts[4]), std::to_string(counts[0])});
  }
  return table(
      {"EXECUTION", "STATE", "SLOTS", "PUBLISHED", "FAILED", "MISSED", "SKIPPED", "PLANNED"}, rows);
}

std::string dlq_table(const std::vector<DlqMessage>& messages) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : messages) {
    rows.push_back({std::to_string(m.id), m.feed.str(), m.slot ? format_iso_ms(*m.slot) : "-",
                    m.stage, std::to_string(m.attempts), m.record ? "yes" : "no", m.error});
  }
  return table({"ID", "FEED", "SLOT", "STAGE", "ATTEMPTS", "RECORD", "ERROR"}, rows);
}

}  // namespace metronome
