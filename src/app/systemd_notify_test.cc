#include "app/systemd_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>

namespace metronome::systemd {
namespace {

// Sets an environment variable for one test and puts back what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A datagram socket standing in for systemd's notification socket: bound to a path in a temp
// dir, or to an abstract name.
class Listener {
 public:
  explicit Listener(bool abstract) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    const std::string suffix =
        std::to_string(::getpid()) + "-" + std::to_string(std::random_device()());
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    socklen_t length;
    if (abstract) {
      name_ = "@metronome-notify-test-" + suffix;
      std::memcpy(address.sun_path + 1, name_.data() + 1, name_.size() - 1);
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    } else {
      dir_ = std::filesystem::temp_directory_path() / ("metronome-notify-" + suffix);
      std::filesystem::create_directories(dir_);
      name_ = (dir_ / "notify").string();
      std::memcpy(address.sun_path, name_.c_str(), name_.size() + 1);
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size() + 1);
    }
    EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), length), 0)
        << std::strerror(errno);
  }
  ~Listener() {
    ::close(fd_);
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  const std::string& name() const { return name_; }

  // The next datagram, or "" when none arrives within a second.
  std::string receive() {
    timeval timeout{.tv_sec = 1, .tv_usec = 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char buffer[4096];
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    return n < 0 ? std::string() : std::string(buffer, static_cast<size_t>(n));
  }

 private:
  int fd_ = -1;
  std::filesystem::path dir_;
  std::string name_;
};

TEST(SystemdNotifyTest, SendsTheStateToASocketPath) {
  Listener listener(/*abstract=*/false);
  ScopedEnv socket("NOTIFY_SOCKET", listener.name());
  ASSERT_TRUE(notify("READY=1\nSTATUS=publishing").ok());
  EXPECT_EQ(listener.receive(), "READY=1\nSTATUS=publishing");
  ASSERT_TRUE(notify("WATCHDOG=1").ok());
  EXPECT_EQ(listener.receive(), "WATCHDOG=1");
}

TEST(SystemdNotifyTest, SendsTheStateToAnAbstractSocket) {
  Listener listener(/*abstract=*/true);
  ScopedEnv socket("NOTIFY_SOCKET", listener.name());
  ASSERT_TRUE(notify("STOPPING=1").ok());
  EXPECT_EQ(listener.receive(), "STOPPING=1");
}

TEST(SystemdNotifyTest, DoesNothingOutsideAServiceManager) {
  ScopedEnv unset("NOTIFY_SOCKET", std::nullopt);
  EXPECT_TRUE(notify("READY=1").ok());
  ScopedEnv empty("NOTIFY_SOCKET", "");
  EXPECT_TRUE(notify("READY=1").ok());
}

TEST(SystemdNotifyTest, ABadSocketIsAnErrorThatNamesIt) {
  {
    ScopedEnv socket("NOTIFY_SOCKET", "relative/notify");
    Status s = notify("READY=1");
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
    EXPECT_NE(s.message().find("'relative/notify'"), std::string::npos) << s.message();
  }
  {
    ScopedEnv socket("NOTIFY_SOCKET", "/" + std::string(200, 'x'));
    Status s = notify("READY=1");
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
    EXPECT_NE(s.message().find("longer than 107 bytes"), std::string::npos) << s.message();
  }
  {
    const std::string gone =
        (std::filesystem::temp_directory_path() / "metronome-notify-no-such-dir/notify").string();
    ScopedEnv socket("NOTIFY_SOCKET", gone);
    Status s = notify("READY=1");
    EXPECT_EQ(s.code(), Status::Code::kIOError);
    EXPECT_NE(s.message().find(gone), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("sendto"), std::string::npos) << s.message();
  }
}

TEST(SystemdNotifyTest, WatchdogIntervalComesFromTheEnvironment) {
  ScopedEnv pid("WATCHDOG_PID", std::nullopt);
  {
    ScopedEnv usec("WATCHDOG_USEC", std::nullopt);
    EXPECT_EQ(watchdog_interval(), std::nullopt);
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    EXPECT_EQ(watchdog_interval(), std::chrono::seconds(30));
    {
      ScopedEnv ours("WATCHDOG_PID", std::to_string(::getpid()));
      EXPECT_EQ(watchdog_interval(), std::chrono::seconds(30));
    }
    {
      // The variables were meant for another process (inherited through a fork).
      ScopedEnv other("WATCHDOG_PID", std::to_string(::getpid() + 1));
      EXPECT_EQ(watchdog_interval(), std::nullopt);
    }
  }
  for (const char* bad : {"0", "-5", "abc", "12s", ""}) {
    ScopedEnv usec("WATCHDOG_USEC", bad);
    EXPECT_EQ(watchdog_interval(), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace metronome::systemd
