#include "sign/signing_key.h"

#include <fmt/format.h>
#include <secp256k1.h>

#include <algorithm>
#include <cstring>  // explicit_bzero
#include <memory>

#include "common/hex.h"
#include "sign/keccak.h"
#include "sign/os_random.h"

namespace metronome {
namespace {

// Overwrites memory in a way the compiler may not drop as a dead store.
void secure_wipe(void* p, size_t n) {
  explicit_bzero(p, n);
}

struct ContextDeleter {
  void operator()(secp256k1_context* ctx) const { secp256k1_context_destroy(ctx); }
};

std::string_view trim_ascii_space(std::string_view s) {
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::array<char, 42> checksum_address_array(const Address& address) {
  std::array<char, 42> text = hex_0x_array(address.bytes);
  Hash32 hash = keccak256(std::string_view(text.data() + 2, 40));
  for (size_t i = 0; i < 40; ++i) {
    char& c = text[2 + i];
    uint8_t nibble = (i % 2 == 0) ? hash[i / 2] >> 4 : hash[i / 2] & 0x0f;
    if (c >= 'a' && c <= 'f' && nibble >= 8) c = static_cast<char>(c - 'a' + 'A');
  }
  return text;
}

std::string to_checksum_address(const Address& address) {
  std::array<char, 42> text = checksum_address_array(address);
  return std::string(text.data(), text.size());
}

Result<Address> parse_address(std::string_view text) {
  if (text.size() != 42 || text[0] != '0' || text[1] != 'x') {
    return Status::InvalidArgument(
        fmt::format("address '{}' is not 0x followed by 40 hex digits", text));
  }
  Address address;
  if (parse_hex(text, address.bytes) != HexParse::kOk) {
    return Status::InvalidArgument(
        fmt::format("address '{}' is not 0x followed by 40 hex digits", text));
  }
  std::string_view digits = text.substr(2);
  bool has_lower =
      std::any_of(digits.begin(), digits.end(), [](char c) { return c >= 'a' && c <= 'f'; });
  bool has_upper =
      std::any_of(digits.begin(), digits.end(), [](char c) { return c >= 'A' && c <= 'F'; });
  if (has_lower && has_upper) {
    std::array<char, 42> expected = checksum_address_array(address);
    if (std::string_view(expected.data(), expected.size()) != text) {
      return Status::InvalidArgument(
          fmt::format("address '{}' has a wrong EIP-55 checksum (expected {})", text,
                      std::string_view(expected.data(), expected.size())));
    }
  }
  return address;
}

Result<SigningKey> SigningKey::FromHex(const SecretName& secret, std::string_view text) {
  // The messages below describe the text (its length, that it is not hex) and never quote it.
  text = trim_ascii_space(text);
  std::array<uint8_t, 32> bytes{};
  switch (parse_hex(text, bytes)) {
    case HexParse::kOk:
      break;
    case HexParse::kMalformed:
      secure_wipe(bytes.data(), bytes.size());
      return Status::InvalidArgument(fmt::format(
          "secret '{}': a signing key must be 64 hex digits, optionally 0x-prefixed; the text ({} "
          "characters) is not hex",
          secret.str(), text.size()));
    case HexParse::kWrongLength:
      secure_wipe(bytes.data(), bytes.size());
      return Status::InvalidArgument(fmt::format(
          "secret '{}': a signing key must be 64 hex digits, optionally 0x-prefixed; got {} digits",
          secret.str(), text.size() - (text.starts_with("0x") || text.starts_with("0X") ? 2 : 0)));
  }
  if (std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; })) {
    return Status::InvalidArgument(
        fmt::format("secret '{}': the signing key is zero", secret.str()));
  }
  if (!secp256k1_ec_seckey_verify(secp256k1_context_static, bytes.data())) {
    secure_wipe(bytes.data(), bytes.size());
    return Status::InvalidArgument(fmt::format(
        "secret '{}': the signing key is not below the secp256k1 group order", secret.str()));
  }

  // Derive the public key once, with a blinded context of its own (start-up only).
  std::unique_ptr<secp256k1_context, ContextDeleter> ctx(
      secp256k1_context_create(SECP256K1_CONTEXT_NONE));
  std::array<uint8_t, 32> seed{};
  Status st = fill_os_random(seed);
  if (!st.ok()) {
    secure_wipe(bytes.data(), bytes.size());
    return st.With(fmt::format("secret '{}'", secret.str()));
  }
  bool ok = secp256k1_context_randomize(ctx.get(), seed.data()) == 1;
  secp256k1_pubkey pubkey;
  ok = ok && secp256k1_ec_pubkey_create(ctx.get(), &pubkey, bytes.data()) == 1;
  std::array<uint8_t, 65> uncompressed{};
  size_t len = uncompressed.size();
  ok = ok && secp256k1_ec_pubkey_serialize(secp256k1_context_static, uncompressed.data(), &len,
                                           &pubkey, SECP256K1_EC_UNCOMPRESSED) == 1;
  if (!ok) {
    secure_wipe(bytes.data(), bytes.size());
    return Status::Internal(
        fmt::format("secret '{}': could not derive the public key of a valid key", secret.str()));
  }
  Hash32 hash = keccak256(std::span<const uint8_t>(uncompressed).subspan(1));
  Address address;
  std::copy(hash.end() - 20, hash.end(), address.bytes.begin());
  SigningKey key(secret, bytes, address);
  secure_wipe(bytes.data(), bytes.size());
  return key;
}

SigningKey::SigningKey(SecretName name, const std::array<uint8_t, 32>& secret, Address address)
    : secret_name_(std::move(name)), secret_(secret), address_(address) {}

SigningKey::SigningKey(SigningKey&& other) noexcept
    : secret_name_(std::move(other.secret_name_)),
      secret_(other.secret_),
      address_(other.address_) {
  other.wipe();
}

SigningKey& SigningKey::operator=(SigningKey&& other) noexcept {
  if (this != &other) {
    secret_name_ = std::move(other.secret_name_);
    secret_ = other.secret_;
    address_ = other.address_;
    other.wipe();
  }
  return *this;
}

SigningKey::~SigningKey() {
  wipe();
}

void SigningKey::wipe() {
  secure_wipe(secret_.data(), secret_.size());
}

Result<std::string> generate_signing_key_hex() {
  std::array<uint8_t, 32> bytes{};
  do {
    METRONOME_RETURN_IF_ERROR(fill_os_random(bytes));
  } while (!secp256k1_ec_seckey_verify(secp256k1_context_static, bytes.data()));
  std::array<char, 66> text = hex_0x_array(bytes);
  secure_wipe(bytes.data(), bytes.size());
  std::string out(text.data() + 2, 64);
  secure_wipe(text.data(), text.size());
  return out;
}

}  // namespace metronome
