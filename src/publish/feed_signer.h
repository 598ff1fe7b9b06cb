// FeedSigner: a feed's signing key (its secret), turned into a Signer, and kept current.
//
// The key is read and checked when the daemon starts: a malformed key (not 64 hex digits, zero,
// not below the curve order) refuses the start with an error naming the secret, never its value.
// Afterwards for_next_window() is called when each window is planned: it re-reads the secret
// (the provider caches it and notices a changed file) and, when the key changed, makes the new
// key current for that window and the ones after it, logging the new address. A new key that is
// malformed or unreadable is refused with an error in the log, and the previous key stays.
//
// Thread-safety: for_next_window() may be called from any worker; the Signers it hands out are
// immutable and shared by the slots of a window.
#pragma once

#include <memory>
#include <mutex>

#include "secret/secret_registry.h"
#include "sign/eip712.h"
#include "sign/keccak.h"
#include "sign/signer.h"

namespace metronome {

class FeedSigner {
 public:
  // `presign`: the process's presignature pool ([service] presign), shared by every key; null
  // signs with RFC 6979 only.
  static Result<std::unique_ptr<FeedSigner>> create(const FeedId& feed, const SecretName& secret,
                                                    const SecretRegistry& secrets,
                                                    uint64_t chain_id,
                                                    std::shared_ptr<PresignPool> presign = nullptr);

  std::shared_ptr<const Signer> for_next_window();
  std::shared_ptr<const Signer> current() const;
  const ObservationDomain& domain() const { return domain_; }
  // keccak256 of the feed id: the feed_id word of each of its observations (sign_record).
  const Hash32& feed_id_hash() const { return feed_id_hash_; }

 private:
  FeedSigner(FeedId feed, SecretName secret, const SecretRegistry& secrets, uint64_t chain_id,
             std::shared_ptr<PresignPool> presign);

  FeedId feed_;
  SecretName secret_;
  const SecretRegistry& secrets_;
  const ObservationDomain domain_;
  const Hash32 feed_id_hash_;
  const std::shared_ptr<PresignPool> presign_;
  mutable std::mutex mu_;
  std::shared_ptr<const Signer> signer_;  // guarded by mu_
  Hash32 key_fingerprint_{};              // guarded by mu_: keccak of the key text, not the key
  Hash32 refused_fingerprint_{};          // guarded by mu_: a refused key is logged once
};

}  // namespace metronome
