// Status: the outcome of an operation at a module boundary, as a value.
//
// A Status is either OK or carries a code and a message that names the thing that failed
// ("store /var/metronome.db: disk I/O error"). Codes are few and chosen by what a caller does
// about them: retry (kUnavailable, kIOError), give up (kInvalidArgument, kNotFound, ...).
// Modelled on leveldb::Status. Thread-compatible: a const Status may be shared.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "common/format.h"

namespace metronome {

class Status {
 public:
  enum class Code {
    kOk,
    kInvalidArgument,   // bad input: config, CLI argument, malformed value
    kNotFound,          // the named thing does not exist
    kAlreadyExists,     // the thing exists and may not be replaced
    kPermissionDenied,  // e.g. a secret file readable by others
    kIOError,           // file, database or network I/O failed; usually worth a retry
    kUnavailable,       // a dependency is down or busy; retry later
    kDeadlineExceeded,  // the slot's deadline passed
    kCancelled,         // shutdown was requested
    kInternal,          // a broken invariant; a bug
  };

  Status() = default;  // OK

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) {
    return {Code::kInvalidArgument, std::move(msg)};
  }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) { return {Code::kAlreadyExists, std::move(msg)}; }
  static Status PermissionDenied(std::string msg) {
    return {Code::kPermissionDenied, std::move(msg)};
  }
  static Status IOError(std::string msg) { return {Code::kIOError, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  static Status DeadlineExceeded(std::string msg) {
    return {Code::kDeadlineExceeded, std::move(msg)};
  }
  static Status Cancelled(std::string msg) { return {Code::kCancelled, std::move(msg)}; }
  static Status Internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }

  [[nodiscard]] bool ok() const { return code_ == Code::kOk; }
  [[nodiscard]] Code code() const { return code_; }
  [[nodiscard]] const std::string& message() const { return message_; }

  // Whether doing the same thing again later may succeed.
  [[nodiscard]] bool retryable() const {
    return code_ == Code::kIOError || code_ == Code::kUnavailable;
  }

  // Prefixes the message with context: Status::IOError("x").With("store") -> "store: x".
  [[nodiscard]] Status With(std::string_view context) const {
    if (ok()) return *this;
    return Status(code_, fmt::format("{}: {}", context, message_));
  }

  // "ok", "invalid_argument", ... : stable names for logs, JSON and the DLQ.
  [[nodiscard]] static std::string_view CodeName(Code code);
  [[nodiscard]] std::string ToString() const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

inline std::string_view Status::CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "ok";
    case Code::kInvalidArgument:
      return "invalid_argument";
    case Code::kNotFound:
      return "not_found";
    case Code::kAlreadyExists:
      return "already_exists";
    case Code::kPermissionDenied:
      return "permission_denied";
    case Code::kIOError:
      return "io_error";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kDeadlineExceeded:
      return "deadline_exceeded";
    case Code::kCancelled:
      return "cancelled";
    case Code::kInternal:
      return "internal";
  }
  return "unknown";
}

inline std::string Status::ToString() const {
  if (ok()) return "ok";
  return fmt::format("{}: {}", CodeName(code_), message_);
}

inline std::string format_as(const Status& s) {
  return s.ToString();
}

}  // namespace metronome
