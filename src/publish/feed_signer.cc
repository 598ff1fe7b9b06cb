#include "publish/feed_signer.h"

#include <spdlog/spdlog.h>

namespace metronome {
namespace {

Result<std::shared_ptr<const Signer>> make_signer(const SecretName& secret, std::string_view key,
                                                  std::shared_ptr<PresignPool> presign) {
  METRONOME_ASSIGN_OR_RETURN(SigningKey k, SigningKey::FromHex(secret, key));
  METRONOME_ASSIGN_OR_RETURN(Signer s, Signer::Create(std::move(k), std::move(presign)));
  return std::shared_ptr<const Signer>(std::make_shared<Signer>(std::move(s)));
}

}  // namespace

FeedSigner::FeedSigner(FeedId feed, SecretName secret, const SecretRegistry& secrets,
                       uint64_t chain_id, std::shared_ptr<PresignPool> presign)
    : feed_(std::move(feed)),
      secret_(std::move(secret)),
      secrets_(secrets),
      domain_(chain_id),
      feed_id_hash_(keccak256(feed_.str())),
      presign_(std::move(presign)) {}

Result<std::unique_ptr<FeedSigner>> FeedSigner::create(const FeedId& feed, const SecretName& secret,
                                                       const SecretRegistry& secrets,
                                                       uint64_t chain_id,
                                                       std::shared_ptr<PresignPool> presign) {
  std::unique_ptr<FeedSigner> fs(
      new FeedSigner(feed, secret, secrets, chain_id, std::move(presign)));
  METRONOME_ASSIGN_OR_RETURN(SecretValue key, secrets.read(secret));
  auto signer = make_signer(secret, key.reveal(), fs->presign_);
  if (!signer.ok()) return signer.status().With(fmt::format("feed {}", feed));
  fs->signer_ = *signer;
  fs->key_fingerprint_ = keccak256(key.reveal());
  spdlog::info("feed={} signs with secret {} as {} (chainId {})", feed, secret,
               (*signer)->address_text(), chain_id);
  return fs;
}

std::shared_ptr<const Signer> FeedSigner::for_next_window() {
  auto key = secrets_.read(secret_);
  std::lock_guard lock(mu_);
  if (!key.ok()) {
    spdlog::error("feed={}: cannot read signing key {}: {}; keeping the current key", feed_,
                  secret_, key.status().message());
    return signer_;
  }
  Hash32 fingerprint = keccak256(key->reveal());
  if (fingerprint == key_fingerprint_ || fingerprint == refused_fingerprint_) return signer_;
  auto signer = make_signer(secret_, key->reveal(), presign_);
  if (!signer.ok()) {
    refused_fingerprint_ = fingerprint;
    spdlog::error("feed={}: the new signing key is refused: {}; keeping {}", feed_,
                  signer.status().message(), signer_->address_text());
    return signer_;
  }
  spdlog::info("feed={}: signing key {} rotated: {} -> {} from the next window", feed_, secret_,
               signer_->address_text(), (*signer)->address_text());
  signer_ = *signer;
  key_fingerprint_ = fingerprint;
  return signer_;
}

std::shared_ptr<const Signer> FeedSigner::current() const {
  std::lock_guard lock(mu_);
  return signer_;
}

}  // namespace metronome
