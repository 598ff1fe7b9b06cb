#include "app/systemd_notify.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/fd.h"

namespace metronome::systemd {
namespace {

std::string_view env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string_view() : std::string_view(value);
}

// A positive decimal number, or nullopt.
std::optional<uint64_t> positive(std::string_view text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n == 0) return std::nullopt;
  return n;
}

}  // namespace

Status notify(std::string_view state) {
  const std::string_view socket_name = env("NOTIFY_SOCKET");
  if (socket_name.empty()) return Status::Ok();
  const std::string context = fmt::format("systemd notification socket '{}'", socket_name);

  // A path, or '@' for a name in the abstract namespace (its first byte becomes NUL).
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if ((socket_name[0] != '/' && socket_name[0] != '@') || socket_name.size() < 2) {
    return Status::InvalidArgument("neither a path nor an abstract name ('@...')").With(context);
  }
  if (socket_name.size() > sizeof(address.sun_path) - (socket_name[0] == '/' ? 1 : 0)) {
    return Status::InvalidArgument(
               fmt::format("longer than {} bytes", sizeof(address.sun_path) - 1))
        .With(context);
  }
  std::memcpy(address.sun_path, socket_name.data(), socket_name.size());
  if (address.sun_path[0] == '@') address.sun_path[0] = '\0';
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_name.size() +
                                             (socket_name[0] == '/' ? 1 : 0));

  Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return Status::IOError(fmt::format("socket: {}", std::strerror(errno))).With(context);
  }
  ssize_t sent;
  do {
    sent = ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&address), length);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    return Status::IOError(fmt::format("sendto: {}", std::strerror(errno))).With(context);
  }
  if (static_cast<size_t>(sent) != state.size()) {
    return Status::IOError(fmt::format("sent {} of {} bytes", sent, state.size())).With(context);
  }
  return Status::Ok();
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  const std::optional<uint64_t> usec = positive(env("WATCHDOG_USEC"));
  if (!usec) return std::nullopt;
  const std::string_view pid = env("WATCHDOG_PID");
  if (!pid.empty() && positive(pid) != static_cast<uint64_t>(::getpid())) return std::nullopt;
  return std::chrono::microseconds(*usec);
}

}  // namespace metronome::systemd
