#include "sign/signer.h"

#include <fmt/format.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>

#include "common/hex.h"
#include "sign/merkle.h"
#include "sign/os_random.h"
#include "sign/presign.h"

namespace metronome {
namespace {

Address address_of(const secp256k1_pubkey& pubkey) {
  std::array<uint8_t, 65> uncompressed{};
  size_t len = uncompressed.size();
  secp256k1_ec_pubkey_serialize(secp256k1_context_static, uncompressed.data(), &len, &pubkey,
                                SECP256K1_EC_UNCOMPRESSED);
  Hash32 hash = keccak256(std::span<const uint8_t>(uncompressed).subspan(1));
  Address address;
  std::copy(hash.end() - 20, hash.end(), address.bytes.begin());
  return address;
}

std::string_view view(const std::array<char, 42>& a) {
  return {a.data(), a.size()};
}

}  // namespace

void Signer::ContextDeleter::operator()(secp256k1_context_struct* ctx) const {
  secp256k1_context_destroy(ctx);
}

Result<Signer> Signer::Create(SigningKey key, std::shared_ptr<PresignPool> presign) {
  std::unique_ptr<secp256k1_context_struct, ContextDeleter> ctx(
      secp256k1_context_create(SECP256K1_CONTEXT_NONE));
  std::array<uint8_t, 32> seed{};
  Status st = fill_os_random(seed);
  if (!st.ok()) return st.With(fmt::format("signer for secret '{}'", key.secret_name().str()));
  if (!secp256k1_context_randomize(ctx.get(), seed.data())) {
    return Status::Internal("secp256k1_context_randomize failed");
  }
  return Signer(std::move(ctx), std::move(key), std::move(presign));
}

Signer::Signer(std::unique_ptr<secp256k1_context_struct, ContextDeleter> ctx, SigningKey key,
               std::shared_ptr<PresignPool> presign)
    : ctx_(std::move(ctx)),
      presign_(std::move(presign)),
      key_(std::move(key)),
      address_text_(checksum_address_array(key_.address())) {}

Signer::Signer(Signer&&) noexcept = default;
Signer& Signer::operator=(Signer&&) noexcept = default;
Signer::~Signer() = default;

Signature Signer::sign_digest(const Hash32& digest) const {
  if (presign_) {
    Presignature p;
    if (presign_->take(p)) {
      Signature out;
      const bool made = sign_with_presignature(ctx_.get(), p, digest, key_.secret_bytes(), out);
      wipe(p);
      if (made) return out;
    }
  }
  secp256k1_ecdsa_recoverable_signature sig;
  // NULL nonce function: RFC 6979 (HMAC-SHA256). Fails only for an invalid key, which
  // SigningKey::FromHex excludes; so a failure is a broken invariant.
  if (!secp256k1_ecdsa_sign_recoverable(ctx_.get(), &sig, digest.data(), key_.secret_bytes().data(),
                                        nullptr, nullptr)) {
    std::fprintf(stderr, "secp256k1_ecdsa_sign_recoverable failed with a validated key\n");
    std::abort();
  }
  Signature out;
  int recid = 0;
  secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx_.get(), out.data(), &recid, &sig);
  out[64] = static_cast<uint8_t>(27 + recid);
  return out;
}

namespace {

// The record's digest in `domain`; an error names the record when it has no EIP-712 form.
Result<Hash32> digest_to_sign(const ValueRecord& record, const ObservationDomain& domain,
                              const Hash32* feed_id_hash) {
  Result<Observation> observation = observation_from_record(record, feed_id_hash);
  if (!observation) {
    return observation.status().With(
        fmt::format("sign {} round {}", record.feed.str(), record.round));
  }
  return observation_digest(domain, *observation);
}

}  // namespace

Status Signer::sign_observation(const ValueRecord& record, const ObservationDomain& domain,
                                SignedObservation& out, const Hash32* feed_id_hash) const {
  METRONOME_ASSIGN_OR_RETURN(out.digest, digest_to_sign(record, domain, feed_id_hash));
  out.signature = sign_digest(out.digest);
  write_hex_0x(out.digest, out.digest_hex);
  write_hex_0x(out.signature, out.signature_hex);
  return Status::Ok();
}

Status Signer::sign_record(ValueRecord& record, const ObservationDomain& domain,
                           const Hash32* feed_id_hash) const {
  SignedObservation signed_observation;
  METRONOME_RETURN_IF_ERROR(sign_observation(record, domain, signed_observation, feed_id_hash));
  record.signer.assign(address_text_.data(), address_text_.size());
  record.signature.assign(signed_observation.signature_hex.data(),
                          signed_observation.signature_hex.size());
  record.digest.assign(signed_observation.digest_hex.data(), signed_observation.digest_hex.size());
  return Status::Ok();
}

Result<Hash32> Signer::prepare_for_batch(ValueRecord& record, const ObservationDomain& domain,
                                         const Hash32* feed_id_hash) const {
  METRONOME_ASSIGN_OR_RETURN(const Hash32 digest, digest_to_sign(record, domain, feed_id_hash));
  const std::array<char, hex_0x_size(32)> digest_hex = hex_0x_array(digest);
  record.signer.assign(address_text_.data(), address_text_.size());
  record.digest.assign(digest_hex.data(), digest_hex.size());
  return digest;
}

std::shared_ptr<const SignatureBatch> Signer::sign_batch(
    const ObservationDomain& domain, std::span<const Hash32> leaves,
    std::span<ValueRecord* const> records) const {
  assert(leaves.size() == records.size() && !leaves.empty());
  if (leaves.size() == 1) {
    const std::array<char, hex_0x_size(65)> hex = hex_0x_array(sign_digest(leaves[0]));
    records[0]->signature.assign(hex.data(), hex.size());
    records[0]->proof.clear();
    return nullptr;
  }
  const MerkleTree tree(leaves);
  const std::array<char, hex_0x_size(65)> hex =
      hex_0x_array(sign_digest(batch_digest(domain, tree.root())));
  auto batch = std::make_shared<SignatureBatch>();
  batch->signature.assign(hex.data(), hex.size());
  batch->leaves = leaves.size();
  batch->nodes = tree.nodes();
  for (size_t i = 0; i < records.size(); ++i) {
    records[i]->signature = batch->signature;
    tree.proof_hex(i, records[i]->proof);
  }
  return batch;
}

Result<Signature> parse_signature(std::string_view text) {
  Signature sig;
  switch (parse_hex(text, sig)) {
    case HexParse::kOk:
      break;
    case HexParse::kMalformed:
      return Status::InvalidArgument("malformed signature hex");
    case HexParse::kWrongLength: {
      size_t digits = text.size() - (text.starts_with("0x") || text.starts_with("0X") ? 2 : 0);
      return Status::InvalidArgument(fmt::format("signature is {} bytes, expected 65", digits / 2));
    }
  }
  if (sig[64] != 27 && sig[64] != 28) {
    return Status::InvalidArgument(fmt::format("signature v is {}, expected 27 or 28", sig[64]));
  }
  secp256k1_ecdsa_recoverable_signature parsed;
  if (!secp256k1_ecdsa_recoverable_signature_parse_compact(secp256k1_context_static, &parsed,
                                                           sig.data(), sig[64] - 27)) {
    return Status::InvalidArgument("signature r or s is not below the secp256k1 group order");
  }
  if (std::lexicographical_compare(kSecp256k1HalfOrder.begin(), kSecp256k1HalfOrder.end(),
                                   sig.begin() + 32, sig.begin() + 64)) {
    return Status::InvalidArgument("high-s signature");
  }
  return sig;
}

Result<Address> recover_signer(const Hash32& digest, const Signature& signature) {
  if (signature[64] != 27 && signature[64] != 28) {
    return Status::InvalidArgument(
        fmt::format("signature v is {}, expected 27 or 28", signature[64]));
  }
  if (std::lexicographical_compare(kSecp256k1HalfOrder.begin(), kSecp256k1HalfOrder.end(),
                                   signature.begin() + 32, signature.begin() + 64)) {
    return Status::InvalidArgument("high-s signature");
  }
  secp256k1_ecdsa_recoverable_signature parsed;
  if (!secp256k1_ecdsa_recoverable_signature_parse_compact(secp256k1_context_static, &parsed,
                                                           signature.data(), signature[64] - 27)) {
    return Status::InvalidArgument("signature r or s is not below the secp256k1 group order");
  }
  secp256k1_pubkey pubkey;
  if (!secp256k1_ecdsa_recover(secp256k1_context_static, &pubkey, &parsed, digest.data())) {
    return Status::InvalidArgument("signature does not recover a public key");
  }
  return address_of(pubkey);
}

Status verify_record(const ValueRecord& record, const ObservationDomain& domain,
                     const std::optional<Address>& expected_signer) {
  if (record.signature.empty()) return Status::InvalidArgument("record is not signed");
  METRONOME_ASSIGN_OR_RETURN(Signature signature, parse_signature(record.signature));

  Result<Hash32> digest = record_digest(domain, record);
  if (!digest) {
    return Status::InvalidArgument(
        fmt::format("record fields have no EIP-712 form: {}", digest.status().message()));
  }
  Hash32 claimed_digest;
  if (parse_hex(record.digest, claimed_digest) != HexParse::kOk) {
    return Status::InvalidArgument("malformed digest hex");
  }
  if (claimed_digest != *digest) {
    return Status::InvalidArgument("digest mismatch (a field was changed)");
  }

  Result<Address> claimed_signer = parse_address(record.signer);
  if (!claimed_signer) {
    return Status::InvalidArgument(
        fmt::format("malformed signer address: {}", claimed_signer.status().message()));
  }
  Hash32 signed_digest = *digest;
  if (!record.proof.empty()) {
    Result<std::vector<Hash32>> proof = parse_proof(record.proof);
    if (!proof) {
      return Status::InvalidArgument(fmt::format("malformed proof: {}", proof.status().message()));
    }
    signed_digest = batch_digest(domain, fold_proof(*digest, *proof));
  }
  METRONOME_ASSIGN_OR_RETURN(Address recovered, recover_signer(signed_digest, signature));
  if (recovered != *claimed_signer) {
    return Status::InvalidArgument(fmt::format("signature recovers {}, record says {}",
                                               view(checksum_address_array(recovered)),
                                               view(checksum_address_array(*claimed_signer))));
  }
  if (expected_signer && recovered != *expected_signer) {
    return Status::InvalidArgument(fmt::format("signer {} is not the expected {}",
                                               view(checksum_address_array(recovered)),
                                               view(checksum_address_array(*expected_signer))));
  }
  return Status::Ok();
}

}  // namespace metronome
