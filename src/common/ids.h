// Small strong types for identifiers, so a feed id is never passed where a secret name is expected.
#pragma once

#include <compare>
#include <functional>
#include <string>
#include <string_view>

#include "common/format.h"

namespace metronome {

template <typename Tag>
class StrongId {
 public:
  StrongId() = default;
  explicit StrongId(std::string value) : value_(std::move(value)) {}

  [[nodiscard]] const std::string& str() const { return value_; }
  [[nodiscard]] bool empty() const { return value_.empty(); }

  friend auto operator<=>(const StrongId&, const StrongId&) = default;
  friend bool operator==(const StrongId&, const StrongId&) = default;
  friend const std::string& format_as(const StrongId& id) { return id.value_; }

 private:
  std::string value_;
};

using FeedId = StrongId<struct FeedIdTag>;
using ExecutionId = StrongId<struct ExecutionIdTag>;  // "FEED@WINDOW_START", see workflow/
using SecretName = StrongId<struct SecretNameTag>;

}  // namespace metronome

template <typename Tag>
struct std::hash<metronome::StrongId<Tag>> {
  size_t operator()(const metronome::StrongId<Tag>& id) const noexcept {
    return std::hash<std::string>{}(id.str());
  }
};
