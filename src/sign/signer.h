// Signing and verifying published values: secp256k1 ECDSA over the EIP-712 digest (eip712.h).
//
// Signatures are 65 bytes r ‖ s ‖ v with v = 27 or 28, low-s (libsecp256k1 only produces low-s),
// deterministic per RFC 6979 unless the signer draws on a presignature pool (presign.h: random
// nonces, made ahead of the slot), and printed as 0x + 130 lowercase hex digits: what ethers'
// `Signature.serialized` prints and what a contract passes to `ecrecover` as (v, r, s).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"
#include "sign/eip712.h"
#include "sign/keccak.h"
#include "sign/signing_key.h"
#include "store/records.h"
#include "store/signature_batch.h"

struct secp256k1_context_struct;

namespace metronome {

class PresignPool;

// r (32 bytes) ‖ s (32 bytes) ‖ v (27 or 28).
using Signature = std::array<uint8_t, 65>;

// Everything a signed record gains, as fixed-size text: no allocation to produce it.
struct SignedObservation {
  Hash32 digest{};
  Signature signature{};
  std::array<char, 66> digest_hex{};      // "0x" + 64 digits
  std::array<char, 132> signature_hex{};  // "0x" + 130 digits
};

// Signs with one key. Holds one secp256k1 context, created and blinded
// (secp256k1_context_randomize) once in Create and only read afterwards.
//
// Thread-safe: all const methods may run concurrently on any number of threads (the workers of
// one feed or of all feeds sharing a key). Key rotation is a new Signer, swapped in by its owner
// between windows.
//
// Allocation: sign_digest and sign_observation never allocate. sign_record allocates only when it
// assigns the three hex strings of the record (signer, signature, digest), and not even then when
// those strings already have the capacity (e.g. a record buffer reused slot after slot).
class Signer {
 public:
  // kIOError if getrandom fails while seeding the context's blinding. With `presign`, each
  // signature uses one of the pool's presignatures when one is ready (random nonce, well under a
  // microsecond), and RFC 6979 otherwise.
  static Result<Signer> Create(SigningKey key, std::shared_ptr<PresignPool> presign = nullptr);

  Signer(Signer&&) noexcept;
  Signer& operator=(Signer&&) noexcept;
  ~Signer();

  [[nodiscard]] const Address& address() const { return key_.address(); }
  // EIP-55 text of address(), what records carry as `signer`.
  [[nodiscard]] std::string_view address_text() const {
    return std::string_view(address_text_.data(), address_text_.size());
  }
  [[nodiscard]] const SecretName& secret_name() const { return key_.secret_name(); }

  // Signs a 32-byte digest (low-s, v = 27 + recovery id; RFC 6979 nonce, or a presignature's).
  [[nodiscard]] Signature sign_digest(const Hash32& digest) const;

  // Computes the record's digest in `domain` and signs it into `out`. Reads feed, round, slot,
  // value and decimals (the record must carry its feed's decimals). kInvalidArgument (naming the
  // field) when the record has no EIP-712 form: negative round or slot, value not scalable.
  // `feed_id_hash`: as for observation_from_record (keccak256 of record.feed, or null).
  Status sign_observation(const ValueRecord& record, const ObservationDomain& domain,
                          SignedObservation& out, const Hash32* feed_id_hash = nullptr) const;

  // sign_observation, then sets record.signer, record.signature and record.digest. On error the
  // record is unchanged.
  Status sign_record(ValueRecord& record, const ObservationDomain& domain,
                     const Hash32* feed_id_hash = nullptr) const;

  // Batch signatures (merkle.h, `[service] sign_batch`). prepare_for_batch computes the record's
  // digest in `domain`, sets record.signer and record.digest, and returns the digest (the
  // record's leaf); errors as sign_observation. sign_batch then signs the leaves of records that
  // share this key and `domain` with one signature over their Merkle root, sets each record's
  // signature and proof, and returns the batch as the stores keep it (records[i] is leaf i). A
  // batch of one is signed alone (signature over its digest, no proof), and null is returned.
  // REQUIRES: leaves.size() == records.size() > 0, leaves[i] is records[i]'s prepared digest.
  Result<Hash32> prepare_for_batch(ValueRecord& record, const ObservationDomain& domain,
                                   const Hash32* feed_id_hash = nullptr) const;
  std::shared_ptr<const SignatureBatch> sign_batch(const ObservationDomain& domain,
                                                   std::span<const Hash32> leaves,
                                                   std::span<ValueRecord* const> records) const;

 private:
  struct ContextDeleter {
    void operator()(secp256k1_context_struct* ctx) const;
  };
  Signer(std::unique_ptr<secp256k1_context_struct, ContextDeleter> ctx, SigningKey key,
         std::shared_ptr<PresignPool> presign);

  std::unique_ptr<secp256k1_context_struct, ContextDeleter> ctx_;
  std::shared_ptr<PresignPool> presign_;  // may be null
  SigningKey key_;
  std::array<char, 42> address_text_{};
};

// Parses "0x" + 130 hex digits (prefix optional) into a signature and checks the form a signer of
// ours produces: v is 27 or 28, r and s are below the group order, and s is low (<= n/2; a high-s
// twin of a valid signature is malleated and refused). kInvalidArgument with one of
// "malformed signature hex", "signature is N bytes, expected 65", "signature v is X, expected 27
// or 28", "signature r or s is not below the secp256k1 group order", "high-s signature".
Result<Signature> parse_signature(std::string_view text);

// The address whose key made `signature` over `digest`. kInvalidArgument as parse_signature for
// v and s, or "signature does not recover a public key".
Result<Address> recover_signer(const Hash32& digest, const Signature& signature);

// Checks a signed record as a client would, from its fields alone: recomputes the digest from
// feed, round, slot, value and decimals in `domain`, parses the signature, recovers the signer and
// compares it with record.signer and, if given, with expected_signer. A record with a proof
// (merkle.h) is checked against the root its digest and proof fold into: a changed proof, like a
// changed field, recovers another signer. OK when all agree; otherwise
// kInvalidArgument whose message names what failed, first failure first:
//   "record is not signed"                                (empty signature)
//   "malformed signature hex" / "signature is N bytes, expected 65" / "high-s signature" / ...
//   "record fields have no EIP-712 form: <why>"           (e.g. value text tampered into "abc")
//   "malformed digest hex" / "digest mismatch (a field was changed)"
//   "malformed proof: <why>"                              (see parse_proof in merkle.h)
//   "malformed signer address: <why>"
//   "signature recovers 0x<A>, record says 0x<B>"          (the signature is not by that signer)
//   "signer 0x<A> is not the expected 0x<B>"
// Pure and thread-safe; uses libsecp256k1's static context.
Status verify_record(const ValueRecord& record, const ObservationDomain& domain,
                     const std::optional<Address>& expected_signer = std::nullopt);

}  // namespace metronome
