#include "evm/evm_sink.h"

#include <gtest/gtest.h>

#include "config/config.h"

namespace metronome {
namespace {

std::string Toml(const std::string& sink) {
  return R"(
[secrets.feed_key]
file = "feed_key"
[secrets.sender_key]
file = "sender_key"
[[feeds]]
id = "eth_usd"
secret = "feed_key"
chain_id = 31337
[[feeds.sinks]]
kind = "evm"
)" + sink;
}

TEST(EvmSinkConfigTest, ParsesWithDefaultsAndRoundTripsThroughTheDump) {
  auto c = parse_config(Toml(R"(rpc_urls = ["http://127.0.0.1:8545", "http://127.0.0.1:8546"]
sender_secret = "sender_key"
deviation_pct = "0.5"
heartbeat = "3s"
)"),
                        "/etc/metronome/m.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const auto& e = std::get<EvmSinkConfig>(c->feeds[0].sinks[0]);
  EXPECT_EQ(e.rpc_urls.size(), 2u);
  EXPECT_EQ(e.chain_id, 31337u);  // the feed's
  EXPECT_EQ(e.deviation_pct.to_string(), "0.5");
  EXPECT_EQ(e.heartbeat, Millis(3000));
  EXPECT_EQ(e.bump_pct, 12);
  auto again = parse_config(dump_config(*c), "/etc/metronome/m.toml");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << dump_config(*c);
  const auto& e2 = std::get<EvmSinkConfig>(again->feeds[0].sinks[0]);
  EXPECT_EQ(e2.rpc_urls, e.rpc_urls);
  EXPECT_EQ(e2.heartbeat, e.heartbeat);
  EXPECT_EQ(e2.deviation_pct, e.deviation_pct);
}

TEST(EvmSinkConfigTest, RefusesWhatCannotWork) {
  struct Case {
    std::string sink, error;
  };
  const Case cases[] = {
      {R"(rpc_urls = ["http://x:1"]
sender_secret = "feed_key")",
       "is the feed's signing secret"},
      {R"(rpc_urls = ["http://x:1"]
sender_secret = "nope")",
       "unknown secret 'nope'"},
      {R"(rpc_urls = []
sender_secret = "sender_key")",
       "non-empty array"},
      {R"(rpc_urls = ["ftp://x"]
sender_secret = "sender_key")",
       "is not an http:// or https:// URL"},
      {R"(rpc_urls = ["http://x:1"]
sender_secret = "sender_key"
chain_id = 1)",
       "differs from the feed's chain_id 31337"},
      {R"(rpc_urls = ["http://x:1"]
sender_secret = "sender_key"
bump_pct = 5)",
       "out of range 10..1000"},
      {R"(rpc_urls = ["http://x:1"]
sender_secret = "sender_key"
contract = "0x123")",
       "is not an address"},
      {R"(rpc_urls = ["http://x:1"]
sender_secret = "sender_key"
colour = "red")",
       "unknown key"},
  };
  for (const Case& c : cases) {
    auto r = parse_config(Toml(c.sink), "m.toml");
    ASSERT_FALSE(r.ok()) << c.sink;
    EXPECT_NE(r.status().message().find(c.error), std::string::npos)
        << r.status().message() << " should contain " << c.error;
  }
}

TEST(EvmSinkConfigTest, RefusesASenderSharedByTwoFeedsOnOneChain) {
  std::string toml = Toml(R"(rpc_urls = ["http://x:1"]
sender_secret = "sender_key"
)") + R"(
[[feeds]]
id = "btc_usd"
secret = "feed_key"
chain_id = 31337
[[feeds.sinks]]
kind = "evm"
rpc_urls = ["http://x:1"]
sender_secret = "sender_key"
)";
  auto r = parse_config(toml, "m.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("already sends feed eth_usd's transactions on chain 31337"),
            std::string::npos)
      << r.status().message();
}

TEST(EvmPolicyTest, DeviationHeartbeatFirstAndSuperseded) {
  EvmSinkConfig config;
  config.deviation_pct = *Decimal::parse("0.5");
  config.heartbeat = Millis(3000);
  auto D = [](const char* s) { return *Decimal::parse(s); };
  EXPECT_EQ(evm_policy(config, 1000, D("1"), false, 0, D("0")).reason, "first");
  // 0.5 % of 1000 is 5: 1005 submits, 1004.99 does not.
  EXPECT_EQ(evm_policy(config, 2000, D("1005"), true, 1000, D("1000")).reason, "deviation");
  EXPECT_EQ(evm_policy(config, 2000, D("995"), true, 1000, D("1000")).reason, "deviation");
  EXPECT_EQ(evm_policy(config, 2000, D("1004.99"), true, 1000, D("1000")).decision, "skip");
  // Heartbeat: 3 s after the chain's value.
  EXPECT_EQ(evm_policy(config, 3999, D("1000"), true, 1000, D("1000")).decision, "skip");
  EXPECT_EQ(evm_policy(config, 4000, D("1000"), true, 1000, D("1000")).reason, "heartbeat");
  // Not newer than the chain's.
  EXPECT_EQ(evm_policy(config, 1000, D("2000"), true, 1000, D("1000")).decision, "superseded");
  // A chain value of zero: any move is a deviation.
  EXPECT_EQ(evm_policy(config, 2000, D("0.01"), true, 1000, D("0")).reason, "deviation");
  EXPECT_EQ(evm_policy(config, 2000, D("0"), true, 1000, D("0")).decision, "skip");
}

TEST(EvmSinkReadingTest, StalenessPendingAgeAndBalanceFromTheStatus) {
  const int64_t now_ms = 1'800'000'010'000;
  EvmFeedStatus s;  // never read: nothing but "no pending transaction"
  EvmSinkReading r = evm_sink_reading(FeedId("eth_usd"), s, now_ms);
  EXPECT_EQ(r.feed, FeedId("eth_usd"));
  EXPECT_FALSE(r.onchain_staleness.has_value());
  EXPECT_EQ(r.pending_tx_age, Millis(0));
  EXPECT_FALSE(r.sender_balance_eth.has_value());

  s.has_value = true;
  s.chain_timestamp_ms = now_ms - 4500;
  s.pending = TxRecord{};
  s.pending->first_sent_ms = now_ms - 1200;
  s.balance_known = true;
  s.balance_eth = 999.5;
  r = evm_sink_reading(FeedId("eth_usd"), s, now_ms);
  EXPECT_EQ(r.onchain_staleness, Millis(4500));
  EXPECT_EQ(r.pending_tx_age, Millis(1200));
  EXPECT_EQ(r.sender_balance_eth, 999.5);

  // A chain value stamped ahead of this clock is fresh, not negative.
  s.chain_timestamp_ms = now_ms + 300;
  EXPECT_EQ(evm_sink_reading(FeedId("eth_usd"), s, now_ms).onchain_staleness, Millis(0));
}

}  // namespace
}  // namespace metronome
