#include "secret/file_secret.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

namespace metronome {
namespace {

namespace fs = std::filesystem;

// A secret is a key or a token; anything larger is a mistake (a wrong path), not a secret.
constexpr size_t kMaxSecretBytes = 64 * 1024;

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now, reporting the error close() returns.
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

bool is_trailing_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Creates each missing directory of `dir` with mode 0700 (chmod'ed, so the umask cannot loosen or
// tighten it); existing directories are left as they are.
Status make_private_dirs(const fs::path& dir) {
  fs::path prefix;
  for (const fs::path& part : dir) {
    prefix /= part;
    if (::mkdir(prefix.c_str(), 0700) == 0) {
      if (::chmod(prefix.c_str(), 0700) != 0) {
        return Status::IOError(
            fmt::format("directory {}: chmod 700: {}", prefix.string(), strerror(errno)));
      }
    } else if (errno != EEXIST) {
      return Status::IOError(fmt::format("directory {}: {}", prefix.string(), strerror(errno)));
    }
  }
  return Status::Ok();
}

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError(strerror(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

}  // namespace

FileSecret::FileSecret(SecretName name, std::filesystem::path path)
    : name_(std::move(name)), path_(std::move(path)) {}

std::string FileSecret::describe() const {
  return fmt::format("file {}", path_.string());
}

Result<SecretValue> FileSecret::read() {
  std::lock_guard lock(mu_);
  const std::string& p = path_.string();
  auto open_error = [&](int err) -> Status {
    if (err == ENOENT) {
      return Status::NotFound(fmt::format("secret {}: file {} does not exist", name_.str(), p));
    }
    std::string what = fmt::format("secret {}: file {}: {}", name_.str(), p, strerror(err));
    return err == EACCES ? Status::PermissionDenied(what) : Status::IOError(what);
  };
  // Refuses what ssh refuses: a secret that group or others may read or write.
  auto check = [&](const struct stat& st) -> Status {
    if (!S_ISREG(st.st_mode)) {
      return Status::InvalidArgument(
          fmt::format("secret {}: {} is not a regular file", name_.str(), p));
    }
    if ((st.st_mode & 077) != 0) {
      return Status::PermissionDenied(fmt::format(
          "secret {}: file {} has mode {:04o}, which lets group/others {} it; chmod 600 {}",
          name_.str(), p, st.st_mode & 07777, (st.st_mode & 044) != 0 ? "read" : "access", p));
    }
    return Status::Ok();
  };
  auto stamp_of = [](const struct stat& st) {
    return Stamp{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                 static_cast<int64_t>(st.st_size),
                 static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
  };

  // The mode is checked on every read, so a cached value is refused once the file is opened up.
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return open_error(errno);
  METRONOME_RETURN_IF_ERROR(check(st));
  if (cached_stamp_ && *cached_stamp_ == stamp_of(st)) return cached_;

  Fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) return open_error(errno);
  // The file may have been replaced since stat(): check and stamp what is actually read.
  if (::fstat(fd.get(), &st) != 0) return open_error(errno);
  METRONOME_RETURN_IF_ERROR(check(st));
  if (static_cast<uint64_t>(st.st_size) > kMaxSecretBytes) {
    return Status::InvalidArgument(fmt::format("secret {}: file {} is larger than {} KiB",
                                               name_.str(), p, kMaxSecretBytes / 1024));
  }
  std::string buf(kMaxSecretBytes + 1, '\0');
  size_t len = 0;
  while (len < buf.size()) {
    ssize_t n = ::read(fd.get(), buf.data() + len, buf.size() - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      explicit_bzero(buf.data(), buf.size());
      return open_error(err);
    }
    if (n == 0) break;
    len += static_cast<size_t>(n);
  }
  if (len > kMaxSecretBytes) {
    explicit_bzero(buf.data(), buf.size());
    return Status::InvalidArgument(fmt::format("secret {}: file {} is larger than {} KiB",
                                               name_.str(), p, kMaxSecretBytes / 1024));
  }
  while (len > 0 && is_trailing_space(buf[len - 1])) --len;
  if (len == 0) {
    explicit_bzero(buf.data(), buf.size());
    return Status::InvalidArgument(fmt::format("secret {}: file {} is empty", name_.str(), p));
  }
  std::string value(buf.data(), len);
  explicit_bzero(buf.data(), buf.size());

  bool rotated = cached_stamp_.has_value();
  // Destroy-and-construct rather than assign, so the old value's buffer is wiped, not just freed.
  std::destroy_at(&cached_);
  std::construct_at(&cached_, std::move(value));
  cached_stamp_ = stamp_of(st);
  if (rotated) spdlog::info("secret {}: file {} changed; using its new value", name_.str(), p);
  return cached_;
}

Status FileSecret::create(const std::filesystem::path& path, const SecretValue& value) {
  const std::string& p = path.string();
  if (path.has_parent_path()) {
    Status st = make_private_dirs(path.parent_path());
    if (!st.ok()) return st.With(fmt::format("secret file {}", p));
  }

  // O_EXCL: never replace an existing secret, even one created a moment ago by someone else.
  Fd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) {
    if (errno == EEXIST) {
      return Status::AlreadyExists(
          fmt::format("secret file {} already exists; it is never overwritten", p));
    }
    return Status::IOError(fmt::format("secret file {}: cannot create: {}", p, strerror(errno)));
  }
  auto fail = [&](std::string_view what, int err) {
    ::unlink(p.c_str());
    return Status::IOError(fmt::format("secret file {}: {}: {}", p, what, strerror(err)));
  };
  // The umask can only remove bits from 0600, but make the mode explicit anyway.
  if (::fchmod(fd.get(), 0600) != 0) return fail("chmod 600", errno);
  Status written = write_all(fd.get(), value.reveal());
  if (written.ok()) written = write_all(fd.get(), "\n");
  if (!written.ok()) {
    ::unlink(p.c_str());
    return written.With(fmt::format("secret file {}: write", p));
  }
  if (::fsync(fd.get()) != 0) return fail("fsync", errno);
  if (fd.close() != 0) return fail("close", errno);
  return Status::Ok();
}

Status FileSecret::create_random(const std::filesystem::path& path) {
  unsigned char raw[32];
  for (size_t got = 0; got < sizeof raw;) {
    ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Status::IOError(
          fmt::format("secret file {}: getrandom: {}", path.string(), strerror(errno)));
    }
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text(2 * sizeof raw, '0');
  for (size_t i = 0; i < sizeof raw; ++i) {
    text[2 * i] = kHex[raw[i] >> 4];
    text[2 * i + 1] = kHex[raw[i] & 0xf];
  }
  explicit_bzero(raw, sizeof raw);
  return create(path, SecretValue(std::move(text)));  // SecretValue wipes the text
}

}  // namespace metronome
