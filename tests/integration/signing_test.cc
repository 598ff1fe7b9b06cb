// Signed records end to end: the daemon signs what it publishes; `metronome verify` and ethers
// (an independent implementation, from npm) both accept it; every kind of tampering is refused;
// a malformed key stops the start; a rotated key signs from the next window on.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "support/harness.h"

namespace metronome::itest {
namespace {

using namespace std::chrono_literals;

std::string config(const std::string& window = "1s", const std::string& service = "") {
  return R"(
[service]
listen = "127.0.0.1:0"
)" + service +
         R"(
[store]
path = "var/metronome.db"
[secrets.oracle_key]
file = "secrets/oracle_key"
[[feeds]]
id = "signed"
every = "100ms"
window = ")" +
         window + R"("
secret = "oracle_key"
decimals = 2
chain_id = 31337
source = { kind = "random_int", min = -1000, max = 1000 }
)";
}

void write_key(const TempDir& dir, const std::string& key) {
  std::filesystem::remove(dir / "secrets/oracle_key");
  dir.write("secrets/oracle_key.tmp", key + "\n");
  chmod((dir / "secrets/oracle_key.tmp").c_str(), 0600);
  std::filesystem::rename(dir / "secrets/oracle_key.tmp", dir / "secrets/oracle_key");
}

std::string source_dir() {
  const char* d = std::getenv("METRONOME_SOURCE_DIR");
  return d ? d : ".";
}

// Runs the daemon for `ms` and returns what it published (newest first); its log in `log`.
nlohmann::json publish_for(const TempDir& dir, int ms, std::string* log = nullptr) {
  Daemon d(dir.path(), {"--config", "metronome.toml"});
  d.start();
  EXPECT_TRUE(d.wait_for_log("metronome running", 10s)) << d.log();
  sleep_ms(ms);
  EXPECT_EQ(d.stop(), 0) << d.log();
  if (log != nullptr) *log = d.log();
  auto r = run({"--config", "metronome.toml", "values", "--limit", "1000", "--format", "json"},
               dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json_of(r);
}

constexpr const char* kKey = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
constexpr const char* kAddress = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";

// Both checks an outside client makes: `metronome verify`, and ethers recovering kAddress.
void expect_verified_by_metronome_and_ethers(const TempDir& dir, const nlohmann::json& values) {
  for (const auto& v : values) {
    EXPECT_EQ(v["signer"], kAddress);
    EXPECT_EQ(v["signature"].get<std::string>().size(), 132u);
    EXPECT_EQ(v["digest"].get<std::string>().size(), 66u);
  }
  dir.write("values.json", values.dump());

  auto ours =
      run({"--config", "metronome.toml", "verify", "--file", "values.json", "--signer", kAddress},
          dir.path());
  EXPECT_EQ(ours.exit_code, 0) << ours.out << ours.err;

  auto ethers =
      run_program({"/usr/bin/env", "node", source_dir() + "/tests/tools/verify_records.mjs",
                   "--chain-id", "31337"},
                  dir.path(), 30s, values.dump());
  ASSERT_EQ(ethers.exit_code, 0) << "ethers did not recover our signer (run `npm ci`?)\n"
                                 << ethers.out << ethers.err;
  std::istringstream lines(ethers.out);
  int ok = 0;
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j["ok"].get<bool>()) << line;
    EXPECT_EQ(j["recovered"], kAddress);
    ++ok;
  }
  EXPECT_EQ(ok, static_cast<int>(values.size()));
}

TEST(Signing, PublishedRecordsVerifyWithMetronomeAndWithEthers) {
  TempDir dir("signed");
  dir.write("metronome.toml", config());
  write_key(dir, kKey);
  auto values = publish_for(dir, 1200);
  ASSERT_GE(values.size(), 8u);
  expect_verified_by_metronome_and_ethers(dir, values);
}

// [service] presign: the signatures come from presignatures (random nonces, sign/presign.h) and
// verify exactly as RFC 6979's do.
TEST(Signing, PresignedRecordsVerifyWithMetronomeAndWithEthers) {
  TempDir dir("presigned");
  dir.write("metronome.toml", config("1s", "presign = 64\n"));
  write_key(dir, kKey);
  std::string log;
  auto values = publish_for(dir, 1200, &log);
  ASSERT_GE(values.size(), 8u);
  EXPECT_NE(log.find("signing with presignatures: 64 kept ready"), std::string::npos) << log;
  // The pool fills within milliseconds of the start, long before most of these slots.
  std::smatch used;
  ASSERT_TRUE(
      std::regex_search(log, used, std::regex(R"(presignatures: (\d+) signatures used one)")))
      << log;
  EXPECT_GE(std::stoi(used[1]), 4) << log;
  expect_verified_by_metronome_and_ethers(dir, values);
}

// [service] sign_batch (ADR 0018): the feeds due at one slot share one signature over the Merkle
// root of their records; each record carries its proof and verifies on its own, with Metronome
// and with ethers; a proof taken from another record is refused.
TEST(Signing, BatchSignedRecordsVerifyWithMetronomeAndWithEthers) {
  TempDir dir("batch-signed");
  std::string toml = R"(
[service]
listen = "127.0.0.1:0"
sign_batch = 64
[store]
path = "var/metronome.db"
[secrets.oracle_key]
file = "secrets/oracle_key"
)";
  for (int i = 0; i < 6; ++i) {
    toml += "[[feeds]]\nid = \"f" + std::to_string(i) +
            "\"\nevery = \"100ms\"\nwindow = \"1s\"\nsecret = \"oracle_key\"\ndecimals = 2\n"
            "chain_id = 31337\nsource = { kind = \"random_int\", min = -1000, max = 1000 }\n";
  }
  dir.write("metronome.toml", toml);
  write_key(dir, kKey);
  std::string log;
  auto values = publish_for(dir, 1200, &log);
  ASSERT_GE(values.size(), 6u * 8);
  EXPECT_NE(log.find("batch signatures: up to 64 records"), std::string::npos) << log;
  // The records of one slot share a signature, each with its own proof. A record that its
  // worker published alone (its slot dispatched late, on a loaded machine) is signed alone and
  // has none; it verifies all the same, below.
  std::map<std::string, std::set<std::string>> signatures_by_slot;
  size_t with_proof = 0;
  for (const auto& v : values) {
    if (v.contains("proof")) {
      ++with_proof;
      EXPECT_EQ(v["proof"].get<std::string>().size() % 64, 2u) << v.dump();
    }
    signatures_by_slot[v["slot_ms"].get<std::string>()].insert(v["signature"].get<std::string>());
  }
  EXPECT_GE(with_proof, values.size() / 2) << "most records are signed in a batch";
  size_t shared = 0;
  for (const auto& [slot, signatures] : signatures_by_slot) shared += signatures.size() == 1;
  EXPECT_GE(shared, signatures_by_slot.size() / 2) << "most slots: one signature for all 6 feeds";
  expect_verified_by_metronome_and_ethers(dir, values);

  // Another record's proof, from the same batch: the root differs, so the signature recovers
  // someone else.
  std::optional<nlohmann::json> swapped;
  for (const auto& a : values) {
    for (const auto& b : values) {
      if (!swapped && a.contains("proof") && b.contains("proof") &&
          a["signature"] == b["signature"] && a["proof"] != b["proof"]) {
        swapped = a;
        (*swapped)["proof"] = b["proof"];
      }
    }
  }
  ASSERT_TRUE(swapped.has_value()) << "no two records of one batch";
  dir.write("swapped.json", swapped->dump());
  auto refused =
      run({"--config", "metronome.toml", "verify", "--file", "swapped.json"}, dir.path());
  EXPECT_NE(refused.exit_code, 0) << refused.out;
  EXPECT_NE((refused.out + refused.err).find("signature recovers"), std::string::npos)
      << refused.out << refused.err;
}

TEST(Signing, VerifyRejectsEveryKindOfTampering) {
  TempDir dir("tamper");
  dir.write("metronome.toml", config());
  write_key(dir, kKey);
  auto values = publish_for(dir, 600);
  ASSERT_GE(values.size(), 2u);
  const nlohmann::json good = values[0];

  struct Case {
    const char* name;
    std::function<void(nlohmann::json&)> tamper;
    const char* expect;
  };
  std::vector<Case> cases = {
      {"value",
       [](auto& r) { r["value"] = r["value"].template get<std::string>() == "1" ? "2" : "1"; },
       "digest mismatch"},
      {"round", [](auto& r) { r["round"] = "1"; }, "digest mismatch"},
      {"slot",
       [](auto& r) {
         r["slot_ms"] = std::to_string(std::stoll(r["slot_ms"].template get<std::string>()) + 100);
       },
       "digest mismatch"},
      {"feed", [](auto& r) { r["feed"] = "other"; }, "digest mismatch"},
      {"signer", [](auto& r) { r["signer"] = "0x0000000000000000000000000000000000000001"; },
       "signature recovers"},
      {"malformed hex", [](auto& r) { r["signature"] = "0xzz"; }, "malformed signature hex"},
  };
  // High-s: s' = n - s, v flipped; the same signer, a malleated signature.
  cases.push_back({"high-s",
                   [](auto& r) {
                     std::string sig = r["signature"];
                     // n - s computed with the node tool would be simpler; do it by hand in hex.
                     static const char* kN =
                         "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
                     std::string s = sig.substr(66, 64);
                     std::string out(64, '0');
                     int borrow = 0;
                     for (int i = 63; i >= 0; --i) {
                       auto val = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
                       int d = val(kN[i]) - val(s[i]) - borrow;
                       borrow = d < 0;
                       if (d < 0) d += 16;
                       out[i] = "0123456789abcdef"[d];
                     }
                     std::string v = sig.substr(130, 2) == "1b" ? "1c" : "1b";
                     r["signature"] = sig.substr(0, 66) + out + v;
                   },
                   "high-s signature"});

  for (const auto& c : cases) {
    nlohmann::json bad = good;
    c.tamper(bad);
    dir.write("bad.json", nlohmann::json::array({good, bad}).dump());
    auto r = run({"--config", "metronome.toml", "verify", "--file", "bad.json"}, dir.path());
    EXPECT_EQ(r.exit_code, 1) << c.name << ": " << r.out;
    EXPECT_NE(r.out.find("FAIL record 1"), std::string::npos) << c.name << ": " << r.out;
    EXPECT_EQ(r.out.find("FAIL record 0"), std::string::npos) << c.name << ": " << r.out;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.name << ": " << r.out;
  }
  // Another chain id is another domain: nothing verifies.
  dir.write("good.json", good.dump());
  auto other_chain =
      run({"--config", "metronome.toml", "verify", "--file", "good.json", "--chain-id", "1"},
          dir.path());
  EXPECT_EQ(other_chain.exit_code, 1) << other_chain.out;
}

TEST(Signing, MalformedKeysAreRefusedAtStartNamingTheSecretNotTheValue) {
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"short", "abcdef"},
      {"not hex", std::string(63, 'a') + "g"},
      {"zero", std::string(64, '0')},
      {"curve order", "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"},
  };
  for (const auto& [name, key] : keys) {
    TempDir dir("badkey");
    dir.write("metronome.toml", config());
    write_key(dir, key);
    auto r = run({"run", "--config", "metronome.toml"}, dir.path(), 20s);
    EXPECT_EQ(r.exit_code, 2) << name << ": " << r.err;
    EXPECT_NE(r.err.find("oracle_key"), std::string::npos) << name << ": " << r.err;
    if (key.size() > 8) {
      EXPECT_EQ(r.err.find(key), std::string::npos) << "the key leaked";
    }
  }
}

TEST(Signing, RotatedKeySignsFromTheNextWindowAndIsLogged) {
  TempDir dir("rotate");
  dir.write("metronome.toml", config("1s"));
  write_key(dir, kKey);
  Daemon d(dir.path(), {"--config", "metronome.toml"});
  d.start();
  ASSERT_TRUE(d.wait_for_log("metronome running", 10s)) << d.log();
  sleep_ms(500);
  auto keygen = run({"keygen", "--out", "new_key"}, dir.path());
  ASSERT_EQ(keygen.exit_code, 0) << keygen.err;
  std::string new_address = keygen.out.substr(0, 42);
  write_key(dir, dir.read("new_key").substr(0, 64));
  ASSERT_TRUE(d.wait_for_log("rotated", 5s)) << d.log();
  EXPECT_NE(d.log().find(new_address), std::string::npos) << d.log();
  sleep_ms(1500);
  EXPECT_EQ(d.stop(), 0);
  auto values = json_of(run(
      {"--config", "metronome.toml", "values", "--limit", "1000", "--format", "json"}, dir.path()));
  // Newest first: the new signer, then (going back) the old one; one switch, at a window start.
  std::set<std::string> signers;
  std::string previous;
  int switches = 0;
  for (auto it = values.rbegin(); it != values.rend(); ++it) {
    std::string signer = (*it)["signer"];
    signers.insert(signer);
    if (!previous.empty() && signer != previous) {
      ++switches;
      EXPECT_EQ(std::stoll((*it)["slot_ms"].get<std::string>()) % 1000, 0)
          << "the key changed inside a window: " << it->dump();
    }
    previous = signer;
  }
  EXPECT_EQ(switches, 1);
  EXPECT_EQ(signers, (std::set<std::string>{kAddress, new_address}));
  dir.write("values.json", values.dump());
  EXPECT_EQ(
      run({"--config", "metronome.toml", "verify", "--file", "values.json"}, dir.path()).exit_code,
      0);
}

}  // namespace
}  // namespace metronome::itest
