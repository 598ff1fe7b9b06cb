// Result<T>: a value or a non-OK Status, shaped like C++23 std::expected<T, Status>.
//
//   Result<int> parse(std::string_view s);
//   auto r = parse("42");
//   if (!r) return r.status();
//   use(*r);
//
// Accessing the value of an error Result is a bug and aborts (it must never happen).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <type_traits>
#include <utility>

#include "common/status.h"

namespace metronome {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) {
      std::fprintf(stderr, "Result constructed from an OK status without a value\n");
      std::abort();
    }
  }

  [[nodiscard]] bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  [[nodiscard]] const Status& status() const { return status_; }

  T& value() & {
    check();
    return *value_;
  }
  const T& value() const& {
    check();
    return *value_;
  }
  T&& value() && {
    check();
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? *value_ : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void check() const {
    if (!value_) {
      std::fprintf(stderr, "Result::value() on error: %s\n", status_.ToString().c_str());
      std::abort();
    }
  }

  std::optional<T> value_;
  Status status_;
};

}  // namespace metronome

// Returns the Status of an expression from the enclosing function when it is not OK.
#define METRONOME_RETURN_IF_ERROR(expr) \
  do {                                  \
    ::metronome::Status _st = (expr);   \
    if (!_st.ok()) return _st;          \
  } while (0)

#define METRONOME_CONCAT_INNER(a, b) a##b
#define METRONOME_CONCAT(a, b) METRONOME_CONCAT_INNER(a, b)
// METRONOME_ASSIGN_OR_RETURN(auto x, f()); declares x from a Result, or returns its Status.
#define METRONOME_ASSIGN_OR_RETURN(decl, expr) \
  METRONOME_ASSIGN_OR_RETURN_IMPL(METRONOME_CONCAT(_res_, __LINE__), decl, expr)
#define METRONOME_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                                     \
  if (!tmp.ok()) return tmp.status();                    \
  decl = std::move(tmp).value()
