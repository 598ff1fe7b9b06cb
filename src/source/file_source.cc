#include "source/file_source.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/decimal.h"
#include "source/value_text.h"

namespace metronome {

FileSource::FileSource(std::filesystem::path path, int decimals)
    : path_(std::move(path)), decimals_(decimals) {}

Result<SourceValue> FileSource::observe(const ObserveContext&) {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound("the file does not exist");
    return Status::IOError(fmt::format("cannot open: {}", std::strerror(err)));
  }
  std::string text;
  char buffer[8192];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::IOError(fmt::format("cannot read: {}", std::strerror(err)));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > kMaxFileBytes) {
      ::close(fd);
      return Status::InvalidArgument(fmt::format("the file is larger than {} KiB (starts '{}')",
                                                 kMaxFileBytes / 1024, truncate_for_message(text)));
    }
  }
  ::close(fd);
  METRONOME_ASSIGN_OR_RETURN(std::string value, exact_value_text(trim_ascii(text), decimals_));
  return SourceValue{std::move(value)};
}

std::string FileSource::describe() const {
  return fmt::format("file {}", path_.string());
}

}  // namespace metronome
