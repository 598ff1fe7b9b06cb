// Config of the data sources (http_json, command, file, median) and of the feeds' sanity bounds.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "config/config.h"

namespace metronome {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class SourceConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "metronome_source_config_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(std::string_view text) {
    fs::path p = dir_ / "m.toml";
    std::ofstream(p) << text;
    return p;
  }

  Config load_ok(std::string_view text) {
    Result<Config> c = load_config(write(text));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? *c : Config{};
  }

  void expect_error(std::string_view text, int line, std::string_view key, std::string_view what) {
    fs::path p = write(text);
    Result<Config> c = load_config(p);
    ASSERT_FALSE(c.ok()) << "accepted:\n" << text;
    EXPECT_EQ(c.status().code(), Status::Code::kInvalidArgument);
    EXPECT_THAT(c.status().message(), StartsWith(fmt::format("{}:{}: {}: ", p.string(), line, key)))
        << text;
    EXPECT_THAT(c.status().message(), HasSubstr(what)) << text;
  }

  fs::path dir_;
};

constexpr std::string_view kSecrets = "[secrets.k]\nenv = \"K\"\n";

TEST_F(SourceConfigTest, HttpJsonWithEveryKey) {
  Config c = load_ok(R"([secrets.k]
env = "K"
[[feeds]]
id = "p"
decimals = 2
[feeds.source]
kind = "http_json"
url = "https://example.com/price?x=1"
pointer = "/data/0/price"
method = "POST"
body = '{"q": 1}'
headers = { "X-Api-Key" = "Bearer ${secret:k}", Accept = "application/json" }
timeout = "750ms"
)");
  ASSERT_EQ(c.feeds.size(), 1u);
  const auto& h = std::get<HttpJsonSourceConfig>(c.feeds[0].source);
  EXPECT_EQ(h.url, "https://example.com/price?x=1");
  EXPECT_EQ(h.pointer, "/data/0/price");
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.body, R"({"q": 1})");
  ASSERT_EQ(h.headers.size(), 2u);
  EXPECT_EQ(h.headers[1].first, "X-Api-Key");
  EXPECT_EQ(h.headers[1].second, "Bearer ${secret:k}");
  EXPECT_EQ(h.timeout, Millis(750));
}

TEST_F(SourceConfigTest, HttpJsonErrorsNameFileLineAndKey) {
  const std::string feed = "[[feeds]]\nid = \"p\"\n[feeds.source]\nkind = \"http_json\"\n";
  expect_error(feed, 3, "feeds[0].source.url", "missing");
  expect_error(feed + "url = \"ftp://x/y\"\n", 5, "feeds[0].source.url", "invalid URL 'ftp://x/y'");
  expect_error(feed + "url = \"http://x/\"\npointer = \"data\"\n", 6, "feeds[0].source.pointer",
               "must be empty or start with '/'");
  expect_error(feed + "url = \"http://x/\"\npointer = \"/a~2\"\n", 6, "feeds[0].source.pointer",
               "'~' must be followed by 0 or 1");
  expect_error(feed + "url = \"http://x/\"\nmethod = \"PUT\"\n", 6, "feeds[0].source.method",
               "unsupported method 'PUT'");
  expect_error(feed + "url = \"http://x/\"\nbody = \"x\"\n", 6, "feeds[0].source.body",
               "needs method = \"POST\"");
  expect_error(feed + "url = \"http://x/\"\nheaders = { \"X-Key\" = \"${secret:nope}\" }\n", 6,
               "feeds[0].source.headers.X-Key", "unknown secret 'nope'");
  expect_error(feed + "url = \"http://x/\"\nheaders = { \"X-Key\" = \"${env:HOME}\" }\n", 6,
               "feeds[0].source.headers.X-Key", "unsupported '${'");
  expect_error(feed + "url = \"http://x/\"\nheaders = { \"Bad Name\" = \"v\" }\n", 6,
               "feeds[0].source.headers.Bad Name", "invalid header name");
  expect_error(feed + "url = \"http://x/\"\ntimeout = \"1x\"\n", 6, "feeds[0].source.timeout",
               "invalid duration");
  expect_error(feed + "url = \"http://x/\"\nurll = 1\n", 6, "feeds[0].source.urll", "unknown key");
}

TEST_F(SourceConfigTest, CommandAndFile) {
  Config c = load_ok(R"([[feeds]]
id = "c"
source = { kind = "command", argv = ["/usr/bin/price", "--pair", "ETH-USD"], timeout = "1s" }
[[feeds]]
id = "f"
source = { kind = "file", path = "data/price.txt" }
)");
  const auto& cmd = std::get<CommandSourceConfig>(c.feeds[0].source);
  EXPECT_EQ(cmd.argv, (std::vector<std::string>{"/usr/bin/price", "--pair", "ETH-USD"}));
  EXPECT_EQ(cmd.timeout, Millis(1000));
  EXPECT_EQ(std::get<FileSourceConfig>(c.feeds[1].source).path, dir_ / "data" / "price.txt");

  const std::string feed = "[[feeds]]\nid = \"c\"\n";
  expect_error(feed + "source = { kind = \"command\" }\n", 3, "feeds[0].source.argv", "missing");
  expect_error(feed + "source = { kind = \"command\", argv = [] }\n", 3, "feeds[0].source.argv",
               "non-empty array");
  expect_error(feed + "source = { kind = \"command\", argv = [\"a\", 3] }\n", 3,
               "feeds[0].source.argv[1]", "expected a string");
  expect_error(feed + "source = { kind = \"command\", argv = \"ls\" }\n", 3, "feeds[0].source.argv",
               "expected a non-empty array of strings, got a string");
  expect_error(feed + "source = { kind = \"file\" }\n", 3, "feeds[0].source.path", "missing");
  expect_error(feed + "source = { kind = \"file\", path = \"\" }\n", 3, "feeds[0].source.path",
               "must not be empty");
}

TEST_F(SourceConfigTest, MedianOfSources) {
  Config c = load_ok(R"([[feeds]]
id = "m"
decimals = 2
[feeds.source]
kind = "median"
quorum = 2
max_spread_pct = 1.25
[[feeds.source.sources]]
name = "a"
kind = "http_json"
url = "http://127.0.0.1:1/a"
[[feeds.source.sources]]
kind = "file"
path = "/tmp/b"
[[feeds.source.sources]]
kind = "command"
argv = ["/bin/echo", "1"]
)");
  const auto& m = std::get<MedianSourceConfig>(c.feeds[0].source);
  ASSERT_EQ(m.sources.size(), 3u);
  EXPECT_EQ(m.sources[0].name, "a");
  EXPECT_EQ(m.sources[1].name, "file#1");
  EXPECT_EQ(m.sources[2].name, "command#2");
  EXPECT_EQ(m.quorum, 2);
  ASSERT_TRUE(m.max_spread_pct.has_value());
  EXPECT_EQ(m.max_spread_pct->to_string(), "1.25");  // from the text, not through a double

  // Quorum defaults to a majority.
  Config d = load_ok(R"([[feeds]]
id = "m"
source = { kind = "median", sources = [{ kind = "random_int" }, { kind = "random_int" }, { kind = "random_int" }] }
)");
  EXPECT_EQ(std::get<MedianSourceConfig>(d.feeds[0].source).quorum, 2);

  const std::string feed = "[[feeds]]\nid = \"m\"\n";
  expect_error(feed + "source = { kind = \"median\" }\n", 3, "feeds[0].source.sources", "missing");
  expect_error(
      feed + "source = { kind = \"median\", sources = [{ kind = \"random_int\" }], quorum = 2 }\n",
      3, "feeds[0].source.quorum", "out of range 1..1");
  expect_error(
      feed + "source = { kind = \"median\", sources = [{ kind = \"median\", sources = [] }] }\n", 3,
      "feeds[0].source.sources[0].kind", "cannot be medians");
  expect_error(
      feed + "source = { kind = \"median\", sources = [{ name = \"x\" }, { name = \"x\" }] }\n", 3,
      "feeds[0].source.sources[1].name", "duplicate name 'x'");
  expect_error(feed + "source = { kind = \"median\", sources = [{ kind = \"file\" }] }\n", 3,
               "feeds[0].source.sources[0].path", "missing");
  expect_error(feed +
                   "source = { kind = \"median\", sources = [{ kind = \"random_int\" }], "
                   "max_spread_pct = 0 }\n",
               3, "feeds[0].source.max_spread_pct", "greater than 0");
  expect_error(
      feed + "source = { kind = \"median\", sources = [{ kind = \"random_int\", x = 1 }] }\n", 3,
      "feeds[0].source.sources[0].x", "unknown key");
}

TEST_F(SourceConfigTest, SanityBoundsAreExactDecimals) {
  Config c = load_ok(R"([[feeds]]
id = "b"
decimals = 8
min_value = 0.1
max_value = "1e6"
max_change_pct = 2_5
)");
  const FeedConfig& f = c.feeds[0];
  ASSERT_TRUE(f.min_value && f.max_value && f.max_change_pct);
  EXPECT_EQ(f.min_value->to_string(), "0.1");
  EXPECT_EQ(f.max_value->to_string(), "1000000");
  EXPECT_EQ(f.max_change_pct->to_string(), "25");
  // A float with more digits than a double holds keeps every one (read from the file's text).
  Config precise = load_ok("[[feeds]]\nid = \"b\"\nmin_value = 0.12345678901234567890123\n");
  EXPECT_EQ(precise.feeds[0].min_value->to_string(), "0.12345678901234567890123");

  const std::string feed = "[[feeds]]\nid = \"b\"\n";
  expect_error(feed + "min_value = 5\nmax_value = 4\n", 3, "feeds[0].min_value",
               "min_value 5 is greater than max_value 4");
  expect_error(feed + "max_value = \"lots\"\n", 3, "feeds[0].max_value",
               "'lots' is not a decimal number");
  expect_error(feed + "max_value = nan\n", 3, "feeds[0].max_value", "is not a decimal number");
  expect_error(feed + "max_change_pct = -1\n", 3, "feeds[0].max_change_pct", "greater than 0");
  expect_error(feed + "max_change_pct = true\n", 3, "feeds[0].max_change_pct",
               "expected a number or a decimal string, got a boolean");
}

TEST_F(SourceConfigTest, DumpRoundTripsEverySource) {
  Config c = load_ok(std::string(kSecrets) + R"([[feeds]]
id = "m"
decimals = 2
min_value = "0.5"
max_change_pct = 10
[feeds.source]
kind = "median"
quorum = 2
max_spread_pct = "2.5"
sources = [
  { name = "h", kind = "http_json", url = "http://127.0.0.1:1/a", pointer = "/v", headers = { "X-K" = "${secret:k}" }, timeout = "1s" },
  { name = "c", kind = "command", argv = ["/bin/echo", "a \"b\""], timeout = "2s" },
  { name = "f", kind = "file", path = "/tmp/x" },
  { name = "r", kind = "random_int", min = 1, max = 2 },
]
)");
  std::string dumped = dump_config(c);
  fs::path again_path = dir_ / "again.toml";
  std::ofstream(again_path) << dumped;
  Result<Config> again = load_config(again_path);
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << dumped;
  std::string redumped = dump_config(*again);
  // The first line names the file; the rest is the same.
  EXPECT_EQ(redumped.substr(redumped.find('\n')), dumped.substr(dumped.find('\n')));
  const auto& m = std::get<MedianSourceConfig>(again->feeds[0].source);
  ASSERT_EQ(m.sources.size(), 4u);
  EXPECT_EQ(std::get<CommandSourceConfig>(m.sources[1].source).argv[1], "a \"b\"");
  EXPECT_EQ(std::get<HttpJsonSourceConfig>(m.sources[0].source).headers[0].second, "${secret:k}");
  EXPECT_EQ(again->feeds[0].min_value->to_string(), "0.5");
}

TEST_F(SourceConfigTest, ExampleMedianConfigLoads) {
  const char* env = std::getenv("METRONOME_SOURCE_DIR");
  fs::path repo = env != nullptr ? fs::path(env) : fs::current_path();
  Result<Config> c = load_config(repo / "examples" / "median.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->feeds.size(), 1u);
  const auto& m = std::get<MedianSourceConfig>(c->feeds[0].source);
  ASSERT_EQ(m.sources.size(), 3u);
  for (const MedianMember& member : m.sources) {
    EXPECT_TRUE(std::holds_alternative<HttpJsonSourceConfig>(member.source)) << member.name;
  }
  EXPECT_EQ(m.quorum, 2);
  EXPECT_EQ(m.max_spread_pct->to_string(), "1.5");
  EXPECT_EQ(c->feeds[0].decimals, 8);
  EXPECT_TRUE(c->feeds[0].min_value && c->feeds[0].max_value && c->feeds[0].max_change_pct);
}

}  // namespace
}  // namespace metronome
