#include "secret/secret.h"

#include <string.h>

namespace metronome {

SecretValue::~SecretValue() {
  // Wipe the whole buffer, not only [0, size()): bytes beyond size() may hold an older, longer
  // value. resize() within capacity() does not reallocate.
  value_.resize(value_.capacity());
  explicit_bzero(value_.data(), value_.size());
}

}  // namespace metronome
