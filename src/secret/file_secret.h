// A secret in a file, as ssh keeps keys: the file must not be readable or writable by group or
// others (mode & 077 == 0) and is refused otherwise, with an error naming the file and its mode.
// The value is the file's content with trailing whitespace removed. The file is re-read when it
// changes (inode, size or modification time), so rotating it needs no restart.
#pragma once

#include <filesystem>
#include <mutex>
#include <optional>

#include "secret/secret.h"

namespace metronome {

class FileSecret final : public SecretProvider {
 public:
  FileSecret(SecretName name, std::filesystem::path path);

  Result<SecretValue> read() override;
  std::string describe() const override;

  // Creates `path` with 32 random bytes as 64 hex characters, mode 0600, creating missing parent
  // directories with mode 0700. AlreadyExists if the file exists (it is never overwritten).
  static Status create_random(const std::filesystem::path& path);
  // Creates `path` holding `value` and a newline, with the same modes and the same refusal to
  // overwrite as create_random().
  static Status create(const std::filesystem::path& path, const SecretValue& value);

 private:
  struct Stamp {
    uint64_t dev, ino;
    int64_t size, mtime_ns;
    friend bool operator==(const Stamp&, const Stamp&) = default;
  };

  SecretName name_;
  std::filesystem::path path_;
  std::mutex mu_;
  std::optional<Stamp> cached_stamp_;  // guarded by mu_
  SecretValue cached_;                 // guarded by mu_
};

}  // namespace metronome
