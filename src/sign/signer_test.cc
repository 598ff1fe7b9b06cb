#include "sign/signer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "common/hex.h"
#include "sign/keccak.h"

namespace metronome {

// Defined in allocation_counter_test.cc.
void start_counting_allocations();
int stop_counting_allocations();

namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The key from web3.js's documentation; ethers gives it the address below.
constexpr std::string_view kKeyHex =
    "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
constexpr std::string_view kKeyAddress = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";
constexpr std::string_view kOtherKeyHex =
    "0000000000000000000000000000000000000000000000000000000000000001";

Signer MakeSigner(std::string_view hex) {
  Result<SigningKey> key = SigningKey::FromHex(SecretName("test_key"), hex);
  if (!key) ADD_FAILURE() << key.status().ToString();
  Result<Signer> signer = Signer::Create(std::move(*key));
  if (!signer) ADD_FAILURE() << signer.status().ToString();
  return std::move(*signer);
}

ValueRecord Record() {
  ValueRecord r;
  r.feed = FeedId("random_int");
  r.round = 897906500;
  r.slot = slot_from_unix_ms(1795813000000);
  r.value = "537";
  r.decimals = 0;
  r.execution = ExecutionId("random_int@2026-11-27T21:16:00Z");
  return r;
}

class SignerTest : public ::testing::Test {
 protected:
  SignerTest() : signer_(MakeSigner(kKeyHex)), domain_(1) {}

  ValueRecord Signed(ValueRecord r) {
    Status st = signer_.sign_record(r, domain_);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return r;
  }

  Signer signer_;
  ObservationDomain domain_;
};

TEST_F(SignerTest, SignsLikeEthers) {
  ValueRecord r = Signed(Record());
  // ethers: new SigningKey(key).sign(TypedDataEncoder.hash(...)).serialized, new
  // Wallet(key).address
  EXPECT_EQ(r.signer, kKeyAddress);
  EXPECT_EQ(signer_.address_text(), kKeyAddress);
  EXPECT_EQ(r.digest, "0x56f454326be24bd19faf8cff81e4c23a5dc831a3676b1f668f8d998b90ba0f10");
  EXPECT_EQ(
      r.signature,
      "0x081fe03652b6a0c40aff4b2d0161a2f473bc854ea3bd53a7a28c253338cbced02a8b48252da3878d91d56"
      "c75b71d1472f086c0b6e8a6bb44b375aa5b980234a71b");
  EXPECT_TRUE(verify_record(r, domain_).ok());
}

TEST_F(SignerTest, SignaturesAreDeterministicAndLowS) {
  ValueRecord a = Signed(Record());
  ValueRecord b = Signed(Record());
  EXPECT_EQ(a.signature, b.signature);
  for (int i = 0; i < 200; ++i) {
    ValueRecord r = Record();
    r.round = i;
    r = Signed(r);
    Result<Signature> sig = parse_signature(r.signature);  // refuses high-s and bad v
    ASSERT_TRUE(sig.ok()) << sig.status().ToString();
  }
}

// A feed's id hashed once (FeedSigner keeps it) signs exactly what hashing it per record signs.
TEST_F(SignerTest, AFeedIdHashedOnceSignsTheSameBytes) {
  ValueRecord plain = Record();
  ValueRecord cached = Record();
  const Hash32 feed_id_hash = keccak256(std::string_view(cached.feed.str()));
  ASSERT_TRUE(signer_.sign_record(plain, domain_).ok());
  ASSERT_TRUE(signer_.sign_record(cached, domain_, &feed_id_hash).ok());
  EXPECT_EQ(cached.digest, plain.digest);
  EXPECT_EQ(cached.signature, plain.signature);
  EXPECT_TRUE(verify_record(cached, domain_, signer_.address()).ok());
}

TEST_F(SignerTest, SignErrorsNameTheFieldAndLeaveTheRecordUnchanged) {
  ValueRecord r = Record();
  r.value = "12.5";  // decimals 0
  Status st = signer_.sign_record(r, domain_);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("value '12.5'"));
  EXPECT_THAT(st.message(), HasSubstr("random_int"));
  EXPECT_TRUE(r.signature.empty());
  EXPECT_TRUE(r.signer.empty());
  EXPECT_TRUE(r.digest.empty());
}

TEST_F(SignerTest, SigningDoesNotAllocate) {
  ValueRecord r = Signed(Record());  // the record's strings now have their capacity
  SignedObservation out;
  bool all_ok = true;
  start_counting_allocations();
  for (int i = 0; i < 10; ++i) {
    r.round = i;
    all_ok = all_ok && signer_.sign_observation(r, domain_, out).ok();
    Signature sig = signer_.sign_digest(out.digest);
    all_ok = all_ok && sig == out.signature;
    all_ok = all_ok && signer_.sign_record(r, domain_).ok();
  }
  int allocations = stop_counting_allocations();
  EXPECT_TRUE(all_ok);
  EXPECT_EQ(allocations, 0);
  EXPECT_TRUE(verify_record(r, domain_).ok());
}

TEST_F(SignerTest, ConcurrentSigningFromManyThreadsAgrees) {
  ValueRecord expected = Signed(Record());
  std::atomic<int> mismatches{0};
  std::vector<std::jthread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        ValueRecord r = Record();
        if (!signer_.sign_record(r, domain_).ok() || r.signature != expected.signature) {
          ++mismatches;
        }
      }
    });
  }
  threads.clear();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST_F(SignerTest, VerifyAcceptsWithAndWithoutExpectedSigner) {
  ValueRecord r = Signed(Record());
  EXPECT_TRUE(verify_record(r, domain_, *parse_address(kKeyAddress)).ok());
  ValueRecord decimal = Record();
  decimal.value = "-0.000000000000000001";
  decimal.decimals = 18;
  EXPECT_TRUE(verify_record(Signed(decimal), domain_).ok());
}

// Each kind of field tampering: the recomputed digest no longer matches.
TEST_F(SignerTest, VerifyRejectsEachTamperedField) {
  const ValueRecord good = Signed(Record());
  std::vector<std::pair<std::string, ValueRecord>> cases;
  ValueRecord r = good;
  r.value = "538";
  cases.emplace_back("value", r);
  r = good;
  r.round += 1;
  cases.emplace_back("round", r);
  r = good;
  r.slot += Millis(2000);
  cases.emplace_back("slot", r);
  r = good;
  r.feed = FeedId("random_int2");
  cases.emplace_back("feed", r);
  r = good;
  r.decimals = 1;  // "537" now means 5370
  cases.emplace_back("decimals", r);
  for (const auto& [field, tampered] : cases) {
    Status st = verify_record(tampered, domain_);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << field;
    EXPECT_EQ(st.message(), "digest mismatch (a field was changed)") << field;
  }
  // Same fields, another chain: also a different digest.
  EXPECT_EQ(verify_record(good, ObservationDomain(5)).message(),
            "digest mismatch (a field was changed)");
}

TEST_F(SignerTest, VerifyRejectsFieldsWithoutEip712Form) {
  ValueRecord r = Signed(Record());
  r.value = "abc";
  EXPECT_THAT(verify_record(r, domain_).message(),
              StartsWith("record fields have no EIP-712 form: value 'abc'"));
}

TEST_F(SignerTest, VerifyRejectsDigestRewrittenToMatchTamperedFields) {
  // The tamperer also updates the digest field: the signature then recovers someone else.
  ValueRecord r = Signed(Record());
  r.value = "999";
  r.digest = to_hex_0x(*record_digest(domain_, r));
  EXPECT_THAT(verify_record(r, domain_).message(),
              ::testing::MatchesRegex("signature recovers 0x[0-9a-fA-F]{40}, record says "
                                      "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"));
}

TEST_F(SignerTest, VerifyRejectsWrongSigner) {
  Signer other = MakeSigner(kOtherKeyHex);
  ValueRecord r = Signed(Record());
  r.signer = std::string(other.address_text());
  EXPECT_EQ(verify_record(r, domain_).message(),
            "signature recovers 0x2c7536E3605D9C16a7a3D7b1898e529396a65c23, record says "
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");

  // Signed by the other key throughout: consistent, but not the expected signer.
  ValueRecord by_other = Record();
  ASSERT_TRUE(other.sign_record(by_other, domain_).ok());
  EXPECT_TRUE(verify_record(by_other, domain_).ok());
  EXPECT_EQ(verify_record(by_other, domain_, *parse_address(kKeyAddress)).message(),
            "signer 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf is not the expected "
            "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23");

  r = Signed(Record());
  r.signer = "0x1234";
  EXPECT_THAT(verify_record(r, domain_).message(), StartsWith("malformed signer address"));
}

// Batch signatures (merkle.h): one signature over the Merkle root of the records' digests.
class SignerBatchTest : public SignerTest {
 protected:
  // n records of consecutive rounds, prepared and signed as one batch.
  std::vector<ValueRecord> SignedBatch(size_t n) {
    std::vector<ValueRecord> records(n, Record());
    std::vector<Hash32> leaves;
    std::vector<ValueRecord*> pointers;
    for (size_t i = 0; i < n; ++i) {
      records[i].round += static_cast<int64_t>(i);
      records[i].slot += Millis(2000 * static_cast<int64_t>(i));
      records[i].value = std::to_string(100 + i);
      Result<Hash32> leaf = signer_.prepare_for_batch(records[i], domain_);
      EXPECT_TRUE(leaf.ok()) << leaf.status().ToString();
      leaves.push_back(*leaf);
      pointers.push_back(&records[i]);
    }
    signer_.sign_batch(domain_, leaves, pointers);
    return records;
  }
};

TEST_F(SignerBatchTest, EveryRecordOfABatchVerifiesAndSharesOneSignature) {
  for (size_t n : {2, 3, 5, 64}) {
    SCOPED_TRACE("batch of " + std::to_string(n));
    std::vector<ValueRecord> records = SignedBatch(n);
    for (const ValueRecord& r : records) {
      EXPECT_EQ(r.signature, records[0].signature);
      EXPECT_FALSE(r.proof.empty());
      EXPECT_EQ(r.signer, kKeyAddress);
      EXPECT_EQ(r.digest, to_hex_0x(*record_digest(domain_, r)));  // the digest is the record's own
      Status st = verify_record(r, domain_, *parse_address(kKeyAddress));
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
  }
}

TEST_F(SignerBatchTest, ABatchOfOneIsSignedAloneLikeSignRecord) {
  std::vector<ValueRecord> records = SignedBatch(1);
  EXPECT_TRUE(records[0].proof.empty());
  const ValueRecord alone = Signed(records[0]);
  EXPECT_EQ(records[0].signature, alone.signature);  // RFC 6979: the same bytes
  EXPECT_TRUE(verify_record(records[0], domain_).ok());
}

TEST_F(SignerBatchTest, VerifyRejectsATamperedFieldProofOrSignatureOfABatchRecord) {
  const std::vector<ValueRecord> records = SignedBatch(5);
  ValueRecord r = records[2];
  r.value = "7";
  EXPECT_EQ(verify_record(r, domain_).message(), "digest mismatch (a field was changed)");

  // The digest rewritten too: the proof folds into another root, which recovers someone else.
  r.digest = to_hex_0x(*record_digest(domain_, r));
  EXPECT_THAT(verify_record(r, domain_).message(), StartsWith("signature recovers 0x"));

  // Another record's proof, a proof cut short, or no proof at all: another signer.
  r = records[2];
  r.proof = records[3].proof;
  EXPECT_THAT(verify_record(r, domain_).message(), StartsWith("signature recovers 0x"));
  r.proof = records[2].proof.substr(0, records[2].proof.size() - 64);
  EXPECT_THAT(verify_record(r, domain_).message(), StartsWith("signature recovers 0x"));
  r.proof.clear();
  EXPECT_THAT(verify_record(r, domain_).message(), StartsWith("signature recovers 0x"));

  r.proof = records[2].proof + "a";
  EXPECT_EQ(verify_record(r, domain_).message(), "malformed proof: malformed proof hex");

  // Another chain: another domain, so another digest.
  EXPECT_EQ(verify_record(records[2], ObservationDomain(5)).message(),
            "digest mismatch (a field was changed)");
}

TEST_F(SignerBatchTest, PrepareNamesARecordWithoutEip712FormAndLeavesItUnchanged) {
  ValueRecord r = Record();
  r.value = "abc";
  const ValueRecord before = r;
  Result<Hash32> leaf = signer_.prepare_for_batch(r, domain_);
  EXPECT_EQ(leaf.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(leaf.status().message(), HasSubstr("value 'abc'"));
  EXPECT_EQ(r, before);
}

// s' = n - s with v flipped is a second valid ECDSA signature of the same digest by the same key
// (malleability); we refuse it, as Ethereum does since Homestead.
TEST_F(SignerTest, VerifyRejectsHighS) {
  ValueRecord r = Signed(Record());
  Signature sig = *parse_signature(r.signature);
  static constexpr std::array<uint8_t, 32> kOrder = {
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
      0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};
  int borrow = 0;
  for (int i = 31; i >= 0; --i) {
    int d = kOrder[i] - sig[32 + i] - borrow;
    borrow = d < 0 ? 1 : 0;
    sig[32 + i] = static_cast<uint8_t>(d + 256 * borrow);
  }
  sig[64] = sig[64] == 27 ? 28 : 27;
  r.signature = to_hex_0x(sig);
  Status st = verify_record(r, domain_);
  EXPECT_EQ(st.message(), "high-s signature");
  EXPECT_EQ(recover_signer(*record_digest(domain_, r), sig).status().message(), "high-s signature");
}

TEST_F(SignerTest, VerifyRejectsMalformedSignatures) {
  const ValueRecord good = Signed(Record());
  auto verify_with = [&](std::string signature) {
    ValueRecord r = good;
    r.signature = std::move(signature);
    return verify_record(r, domain_).message();
  };
  EXPECT_EQ(verify_with(""), "record is not signed");
  EXPECT_EQ(verify_with("0xzz" + good.signature.substr(4)), "malformed signature hex");
  EXPECT_EQ(verify_with(good.signature.substr(0, 131)), "malformed signature hex");  // odd digits
  EXPECT_EQ(verify_with(good.signature.substr(0, 130)), "signature is 64 bytes, expected 65");
  EXPECT_EQ(verify_with(good.signature + "00"), "signature is 66 bytes, expected 65");
  EXPECT_EQ(verify_with(good.signature.substr(0, 130) + "1d"),
            "signature v is 29, expected 27 or 28");
  EXPECT_EQ(verify_with(good.signature.substr(0, 130) + "00"),
            "signature v is 0, expected 27 or 28");
  EXPECT_EQ(verify_with("0x" + std::string(128, 'f') + "1b"),
            "signature r or s is not below the secp256k1 group order");
  EXPECT_EQ(verify_with("0x" + std::string(128, '0') + "1b"),
            "signature does not recover a public key");

  ValueRecord r = good;
  r.digest = "0x1234";
  EXPECT_EQ(verify_record(r, domain_).message(), "malformed digest hex");
  r.digest = "";
  EXPECT_EQ(verify_record(r, domain_).message(), "malformed digest hex");
}

}  // namespace
}  // namespace metronome
