#include "sign/presign.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>

#include <chrono>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "sign/signer.h"

namespace metronome {

// Defined in allocation_counter_test.cc.
void start_counting_allocations();
int stop_counting_allocations();

namespace {

using ::testing::HasSubstr;

constexpr std::string_view kKeyHex =
    "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

// The group order n, big-endian.
constexpr Hash32 kOrder = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                           0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
                           0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};

SigningKey Key(std::string_view hex) {
  Result<SigningKey> key = SigningKey::FromHex(SecretName("test_key"), hex);
  if (!key) ADD_FAILURE() << key.status().ToString();
  return std::move(*key);
}

Signer MakeSigner(std::string_view hex, std::shared_ptr<PresignPool> pool) {
  Result<Signer> signer = Signer::Create(Key(hex), std::move(pool));
  if (!signer) ADD_FAILURE() << signer.status().ToString();
  return std::move(*signer);
}

std::shared_ptr<PresignPool> Pool(size_t capacity, bool background) {
  auto pool = PresignPool::Create(PresignPool::Options{capacity, background});
  if (!pool) ADD_FAILURE() << pool.status().ToString();
  return std::shared_ptr<PresignPool>(std::move(*pool));
}

Hash32 DigestOf(int i) {
  return keccak256(std::to_string(i));
}

// A nonce function that hands libsecp256k1 the nonce we chose (in `data`), so that its own
// signing gives the signature a presignature of that nonce must give.
int FixedNonce(unsigned char* nonce32, const unsigned char*, const unsigned char*,
               const unsigned char*, void* data, unsigned int attempt) {
  if (attempt != 0) return 0;
  std::memcpy(nonce32, data, 32);
  return 1;
}

TEST(PresignTest, GivesExactlyLibsecp256k1sSignatureForTheSameNonce) {
  secp256k1_context* ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
  std::mt19937_64 rng(42);  // test inputs only; the pool draws from the CSPRNG
  auto fill = [&](std::array<uint8_t, 32>& a) {
    for (auto& b : a) b = static_cast<uint8_t>(rng());
  };
  int high_s = 0;
  int v28 = 0;
  int checked = 0;
  // Batches of 1, 2, 7 and 64 nonces: the shared inversion must give each its own inverse.
  for (size_t batch : {1, 2, 7, 64, 64, 64, 64, 64}) {
    std::vector<std::array<uint8_t, 32>> nonces(batch);
    for (auto& k : nonces) fill(k);
    const std::vector<std::array<uint8_t, 32>> kept_nonces = nonces;
    std::array<uint8_t, 32> blind{};
    fill(blind);
    std::vector<Presignature> made;
    ASSERT_EQ(make_presignatures(ctx, nonces, blind, made), batch);
    ASSERT_EQ(made.size(), batch);
    for (const auto& k : nonces) {
      EXPECT_TRUE(std::all_of(k.begin(), k.end(), [](uint8_t b) { return b == 0; }))
          << "the nonces are wiped";
    }
    EXPECT_EQ(blind, (std::array<uint8_t, 32>{})) << "the blinding is wiped";

    for (size_t i = 0; i < batch; ++i, ++checked) {
      Hash32 key{};
      fill(key);
      Hash32 digest{};
      fill(digest);
      if (checked == 0) digest.fill(0xff);  // above n: reduced as libsecp256k1 reduces it
      if (checked == 1) {
        digest = kOrder;  // n + 1
        digest[31] += 1;
      }
      ASSERT_TRUE(secp256k1_ec_seckey_verify(ctx, key.data()));
      std::array<uint8_t, 65> ours{};
      ASSERT_TRUE(sign_with_presignature(ctx, made[i], digest, key, ours)) << checked;

      secp256k1_ecdsa_recoverable_signature sig;
      auto nonce = kept_nonces[i];
      ASSERT_TRUE(secp256k1_ecdsa_sign_recoverable(ctx, &sig, digest.data(), key.data(), FixedNonce,
                                                   nonce.data()));
      std::array<uint8_t, 65> theirs{};
      int recid = 0;
      secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, theirs.data(), &recid, &sig);
      theirs[64] = static_cast<uint8_t>(27 + recid);
      ASSERT_EQ(ours, theirs) << "signature " << checked << " (batch of " << batch << ")";

      // Did this case go through the low-s negation? (k·G's parity differs from v.)
      high_s += (made[i].recovery_id != ours[64] - 27) ? 1 : 0;
      v28 += ours[64] == 28 ? 1 : 0;
    }
  }
  // Both branches of each choice were exercised.
  EXPECT_EQ(checked, 330);
  EXPECT_GT(high_s, 50);
  EXPECT_LT(high_s, 280);
  EXPECT_GT(v28, 50);
  EXPECT_LT(v28, 280);
  secp256k1_context_destroy(ctx);
}

TEST(PresignTest, InvalidNoncesAreDroppedAndTheRestStillMatch) {
  secp256k1_context* ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
  std::vector<std::array<uint8_t, 32>> nonces(4);
  nonces[0].fill(0x22);
  nonces[1] = {};      // zero: not a scalar
  nonces[2] = kOrder;  // n: not below n
  nonces[3].fill(0x33);
  const auto k0 = nonces[0];
  const auto k3 = nonces[3];
  std::array<uint8_t, 32> blind{};
  blind.fill(0x44);
  std::vector<Presignature> made;
  ASSERT_EQ(make_presignatures(ctx, nonces, blind, made), 2u);
  const Hash32 digest = DigestOf(1);
  const SigningKey key = Key(kKeyHex);
  for (auto [p, k] : {std::pair{made[0], k0}, std::pair{made[1], k3}}) {
    std::array<uint8_t, 65> ours{};
    ASSERT_TRUE(sign_with_presignature(ctx, p, digest, key.secret_bytes(), ours));
    secp256k1_ecdsa_recoverable_signature sig;
    ASSERT_TRUE(secp256k1_ecdsa_sign_recoverable(ctx, &sig, digest.data(),
                                                 key.secret_bytes().data(), FixedNonce, k.data()));
    std::array<uint8_t, 65> theirs{};
    int recid = 0;
    secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, theirs.data(), &recid, &sig);
    theirs[64] = static_cast<uint8_t>(27 + recid);
    EXPECT_EQ(ours, theirs);
  }
  secp256k1_context_destroy(ctx);
}

TEST(PresignTest, ADigestThatIsZeroModNIsRefusedSoTheSignerFallsBack) {
  secp256k1_context* ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
  std::array<std::array<uint8_t, 32>, 1> nonce{};
  nonce[0].fill(0x11);
  std::array<uint8_t, 32> blind{};
  blind.fill(0x12);
  std::vector<Presignature> made;
  ASSERT_EQ(make_presignatures(ctx, nonce, blind, made), 1u);
  const Presignature& p = made[0];
  std::array<uint8_t, 65> out{};
  EXPECT_FALSE(sign_with_presignature(ctx, p, kOrder, Key(kKeyHex).secret_bytes(), out));
  EXPECT_FALSE(sign_with_presignature(ctx, p, Hash32{}, Key(kKeyHex).secret_bytes(), out));
  EXPECT_EQ(out, (std::array<uint8_t, 65>{})) << "nothing written";
  secp256k1_context_destroy(ctx);

  // Through a Signer: the pool's presignature is spent, and the signature is RFC 6979's.
  auto pool = Pool(2, false);
  ASSERT_TRUE(pool->make_half().ok());
  Signer with_pool = MakeSigner(kKeyHex, pool);
  Signer plain = MakeSigner(kKeyHex, nullptr);
  EXPECT_EQ(with_pool.sign_digest(kOrder), plain.sign_digest(kOrder));
  EXPECT_EQ(pool->taken(), 1u);
}

TEST(PresignTest, SignerUsesEachPresignatureOnceAndFallsBackWhenEmpty) {
  auto pool = Pool(100, false);
  Signer with_pool = MakeSigner(kKeyHex, pool);
  Signer plain = MakeSigner(kKeyHex, nullptr);
  const Hash32 digest = DigestOf(7);

  // Empty: RFC 6979, the same bytes as a signer without a pool.
  EXPECT_EQ(with_pool.sign_digest(digest), plain.sign_digest(digest));
  EXPECT_EQ(pool->missed(), 1u);

  ASSERT_TRUE(pool->make_half().ok());
  EXPECT_EQ(pool->ready(), 50u);
  std::set<std::array<uint8_t, 32>> rs;
  std::vector<Signature> sigs(50);
  start_counting_allocations();
  for (auto& sig : sigs) sig = with_pool.sign_digest(digest);
  EXPECT_EQ(stop_counting_allocations(), 0) << "signing with a presignature allocates nothing";
  for (const auto& sig : sigs) {
    std::array<uint8_t, 32> r{};
    std::copy_n(sig.begin(), 32, r.begin());
    rs.insert(r);
    Result<Address> who = recover_signer(digest, sig);
    ASSERT_TRUE(who.ok()) << who.status().ToString();
    EXPECT_EQ(*who, with_pool.address());
    EXPECT_NE(sig, plain.sign_digest(digest)) << "a random nonce, not RFC 6979's";
  }
  EXPECT_EQ(rs.size(), 50u) << "every signature has its own nonce";
  EXPECT_EQ(pool->taken(), 50u);
  EXPECT_EQ(pool->ready(), 0u);

  // Used up: the next one is RFC 6979's again.
  EXPECT_EQ(with_pool.sign_digest(digest), plain.sign_digest(digest));
  EXPECT_EQ(pool->missed(), 2u);
}

TEST(PresignTest, SignedRecordsVerifyLikeAnyOther) {
  auto pool = Pool(8, false);
  ASSERT_TRUE(pool->make_half().ok());
  Signer signer = MakeSigner(kKeyHex, pool);
  ObservationDomain domain(1);
  for (int i = 0; i < 4; ++i) {
    ValueRecord r;
    r.feed = FeedId("random_int");
    r.round = 100 + i;
    r.slot = slot_from_unix_ms(1795813000000 + 2000 * i);
    r.value = std::to_string(500 + i);
    r.decimals = 0;
    ASSERT_TRUE(signer.sign_record(r, domain).ok());
    Status st = verify_record(r, domain, signer.address());
    EXPECT_TRUE(st.ok()) << st.ToString();
    EXPECT_TRUE(parse_signature(r.signature).ok()) << "low s, v 27 or 28";
  }
  EXPECT_EQ(pool->taken(), 4u);
  EXPECT_EQ(pool->missed(), 0u);
}

TEST(PresignTest, BackgroundMakerRefillsAndConcurrentTakersNeverShareANonce) {
  auto pool = Pool(64, true);
  std::mutex mu;
  std::set<std::array<uint8_t, 32>> rs;
  std::atomic<int> duplicates{0};
  std::vector<std::jthread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      int got = 0;
      // 4 × 100 = 400 takes from a pool of 64: the maker refills it several times.
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (got < 100 && std::chrono::steady_clock::now() < give_up) {
        Presignature p;
        if (!pool->take(p)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));  // idle: the maker runs
          continue;
        }
        ++got;
        std::lock_guard lock(mu);
        if (!rs.insert(p.r).second) ++duplicates;
      }
    });
  }
  threads.clear();
  EXPECT_EQ(duplicates.load(), 0);
  EXPECT_EQ(rs.size(), 400u);
  EXPECT_EQ(pool->taken(), 400u);
  // The pool is destroyed below, usually while its maker waits to hand over the next half.
}

// The maker waits before its next batch while any hold is not released, and goes on when the
// last one is; a pool is destroyed without waiting for its holds.
TEST(PresignTest, AHeldMakerWaitsUntilEveryHoldIsReleased) {
  auto pool = Pool(2 * kPresignBatch, false);
  pool->hold();
  pool->hold();
  EXPECT_EQ(pool->holds(), 2);
  std::atomic<bool> made{false};
  std::jthread maker([&] {
    EXPECT_TRUE(pool->make_half().ok());
    made = true;
  });
  // One batch takes a few milliseconds: had the maker not waited, it would be done by now.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(made.load());
  EXPECT_EQ(pool->ready(), 0u);
  pool->release();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(made.load()) << "one hold is left";
  pool->release();
  maker.join();
  EXPECT_TRUE(made.load());
  EXPECT_EQ(pool->ready(), kPresignBatch);
  EXPECT_EQ(pool->holds(), 0);

  auto held = Pool(2 * kPresignBatch, true);
  held->hold();
  held.reset();  // its maker, held, stops; nothing waits for the release
}

TEST(PresignTest, AnInvalidBlindingMakesNothing) {
  secp256k1_context* ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
  std::vector<std::array<uint8_t, 32>> nonces(3);
  for (auto& k : nonces) k.fill(0x55);
  std::array<uint8_t, 32> blind{};  // zero: not a scalar
  std::vector<Presignature> made;
  EXPECT_EQ(make_presignatures(ctx, nonces, blind, made), 0u);
  EXPECT_TRUE(made.empty());
  for (const auto& k : nonces) EXPECT_EQ(k, (std::array<uint8_t, 32>{})) << "wiped all the same";
  secp256k1_context_destroy(ctx);
}

TEST(PresignTest, CapacityZeroIsRefused) {
  auto pool = PresignPool::Create(PresignPool::Options{0, false});
  ASSERT_FALSE(pool.ok());
  EXPECT_THAT(pool.status().ToString(), HasSubstr("capacity must be at least 1"));
}

}  // namespace
}  // namespace metronome
