// file: the number in a file, e.g. written by another process (which should replace it
// atomically with rename(2)). Read whole at each observation, at most kMaxFileBytes.
// Thread-safety: observe() may be called concurrently.
#pragma once

#include <filesystem>

#include "source/source.h"

namespace metronome {

class FileSource final : public Source {
 public:
  static constexpr size_t kMaxFileBytes = 64 * 1024;

  FileSource(std::filesystem::path path, int decimals);
  // NotFound when the file does not exist, IOError when it cannot be read, InvalidArgument when
  // it is larger than kMaxFileBytes or does not hold a usable number.
  Result<SourceValue> observe(const ObserveContext& ctx) override;
  std::string describe() const override;

 private:
  const std::filesystem::path path_;
  const int decimals_;
};

}  // namespace metronome
