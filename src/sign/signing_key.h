// A feed's signing key (a secp256k1 secret) and the Ethereum address that identifies it.
//
// The secret is read from a secret store as text; SigningKey::FromHex validates it and every error
// names the secret, never its value. A SigningKey holds the secret only in its own memory, wipes it
// on destruction, can be moved but not copied, and has no text form (nothing can print it by
// accident). Thread-compatible: a const SigningKey may be shared.
#pragma once

#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/ids.h"
#include "common/result.h"

namespace metronome {

// An Ethereum address: the last 20 bytes of keccak256 of the uncompressed public key (without its
// 0x04 prefix).
struct Address {
  std::array<uint8_t, 20> bytes{};

  friend bool operator==(const Address&, const Address&) = default;
};

// The address's EIP-55 text, "0x" + 40 digits in checksum case.
// "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".
std::array<char, 42> checksum_address_array(const Address& address);
std::string to_checksum_address(const Address& address);

// Parses "0x" + 40 hex digits. Digits of a single case are accepted as they are; mixed case must be
// a correct EIP-55 checksum (a mistyped address is refused, as Ethereum tools do).
Result<Address> parse_address(std::string_view text);

class SigningKey {
 public:
  // Parses 64 hex digits, optionally "0x"-prefixed, surrounded by optional ASCII whitespace (a key
  // file usually ends with a newline). Refuses (kInvalidArgument, message names `secret`) text that
  // is not that, a zero key and a key >= the secp256k1 group order n. Derives the address.
  static Result<SigningKey> FromHex(const SecretName& secret, std::string_view text);

  SigningKey(SigningKey&& other) noexcept;
  SigningKey& operator=(SigningKey&& other) noexcept;
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;
  ~SigningKey();

  // The secret's name, for logs ("secret 'feed_key' is 0x5aAe...").
  [[nodiscard]] const SecretName& secret_name() const { return secret_name_; }
  [[nodiscard]] const Address& address() const { return address_; }
  // The 32 secret bytes, big-endian. Only for the signer; never log them.
  [[nodiscard]] const std::array<uint8_t, 32>& secret_bytes() const { return secret_; }

 private:
  SigningKey(SecretName name, const std::array<uint8_t, 32>& secret, Address address);
  void wipe();

  SecretName secret_name_;
  std::array<uint8_t, 32> secret_{};
  Address address_;
};

// A new signing key as 64 lowercase hex digits (no prefix, no newline), for `metronome keygen`:
// 32 bytes from getrandom(2), drawn again until they are a valid key (probability of a redraw
// about 2^-128). kIOError if the kernel's random source fails.
Result<std::string> generate_signing_key_hex();

}  // namespace metronome

// fmt::format("{}", address) prints the EIP-55 text. (A formatter rather than format_as(): the
// Debian 12 fmt is 9.1, which predates format_as.)
template <>
struct fmt::formatter<metronome::Address> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const metronome::Address& address, FormatContext& ctx) const {
    std::array<char, 42> text = metronome::checksum_address_array(address);
    return fmt::formatter<std::string_view>::format(std::string_view(text.data(), text.size()),
                                                    ctx);
  }
};
