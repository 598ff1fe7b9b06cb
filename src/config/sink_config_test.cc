// [[feeds]] sinks and [secrets.NAME] aws_secrets_manager: parsing, defaults, errors, dump.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"

namespace metronome {
namespace {

using ::testing::HasSubstr;

std::string feed_with(const std::string& every, const std::string& sinks) {
  return "[[feeds]]\nid = \"random_int\"\nevery = \"" + every + "\"\nsinks = " + sinks + "\n";
}

TEST(SinkConfigTest, DynamoDbSinkDefaultsToTheSeedLayout) {
  auto c = parse_config(
      feed_with("2s",
                "[{ kind = \"dynamodb\", table = \"RandomIntegers\", region = \"us-east-1\" }, "
                "{ kind = \"dynamodb\", table = \"Records\", region = \"eu-west-1\", "
                "endpoint = \"http://127.0.0.1:8000\", layout = \"record\" }]"),
      "m.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->feeds[0].sinks.size(), 2u);
  const auto& seed = std::get<DynamoDbSinkConfig>(c->feeds[0].sinks[0]);
  EXPECT_EQ(seed.table, "RandomIntegers");
  EXPECT_EQ(seed.region, "us-east-1");
  EXPECT_EQ(seed.endpoint, "");
  EXPECT_EQ(seed.layout, DynamoDbSinkConfig::Layout::kSeed);
  const auto& record = std::get<DynamoDbSinkConfig>(c->feeds[0].sinks[1]);
  EXPECT_EQ(record.endpoint, "http://127.0.0.1:8000");
  EXPECT_EQ(record.layout, DynamoDbSinkConfig::Layout::kRecord);

  // The dump parses back to the same sinks.
  auto again = parse_config(dump_config(*c), "dump.toml");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << dump_config(*c);
  const auto& back = std::get<DynamoDbSinkConfig>(again->feeds[0].sinks[1]);
  EXPECT_EQ(back.table, "Records");
  EXPECT_EQ(back.endpoint, "http://127.0.0.1:8000");
  EXPECT_EQ(back.layout, DynamoDbSinkConfig::Layout::kRecord);
}

TEST(SinkConfigTest, BadSinksAreRefusedNamingTheKey) {
  struct Case {
    std::string every, sinks, expected;
  };
  const Case cases[] = {
      {"2s", R"([{ kind = "dynamodb", table = "T", region = "US_EAST_1" }])",
       "m.toml:4: feeds[0].sinks[0].region: unknown region format 'US_EAST_1'"},
      {"2s", R"([{ kind = "dynamodb", table = "T" }])", "feeds[0].sinks[0].region: missing"},
      {"2s", R"([{ kind = "dynamodb", region = "us-east-1" }])",
       "feeds[0].sinks[0].table: missing"},
      {"2s", R"([{ kind = "s3", table = "T", region = "us-east-1" }])",
       "unknown sink kind 's3' (supported: dynamodb, evm)"},
      {"2s", R"([{ kind = "dynamodb", table = "T", region = "us-east-1", layout = "wide" }])",
       "unknown layout 'wide' (expected seed or record)"},
      {"2s",
       R"([{ kind = "dynamodb", table = "T", region = "us-east-1", endpoint = "localhost" }])",
       "feeds[0].sinks[0].endpoint: invalid URL 'localhost'"},
      {"2s", R"([{ kind = "dynamodb", table = "T", region = "us-east-1", tabel = "x" }])",
       "feeds[0].sinks[0].tabel: unknown key"},
      {"200ms", R"([{ kind = "dynamodb", table = "T", region = "us-east-1" }])",
       "layout seed keys items by the second"},
      {"2s",
       R"([{ kind = "dynamodb", table = "T", region = "us-east-1" }, { kind = "dynamodb", table = "T", region = "us-east-1" }])",
       "table 'T' is already a sink of this feed"},
      {"2s", R"("dynamodb")", "feeds[0].sinks: expected an array of tables"},
  };
  for (const Case& c : cases) {
    auto r = parse_config(feed_with(c.every, c.sinks), "m.toml");
    ASSERT_FALSE(r.ok()) << c.sinks;
    EXPECT_THAT(r.status().message(), HasSubstr(c.expected)) << c.sinks;
  }
  // Sub-second slots are fine in the record layout.
  EXPECT_TRUE(parse_config(feed_with("200ms",
                                     "[{ kind = \"dynamodb\", table = \"T\", region = "
                                     "\"us-east-1\", layout = \"record\" }]"),
                           "m.toml")
                  .ok());
}

TEST(SinkConfigTest, AwsSecretsManagerSecret) {
  auto c = parse_config(R"(
[secrets.oracle_key]
aws_secrets_manager = { secret_id = "prod/oracle", region = "us-east-1", json_key = "my_secret" }
[secrets.token]
aws_secrets_manager = { secret_id = "arn:aws:secretsmanager:eu-west-1:1:secret:t", region = "eu-west-1", endpoint = "http://127.0.0.1:4566", refresh = "30s" }
[[feeds]]
id = "random_int"
secret = "oracle_key"
)",
                        "m.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const auto& a = *c->secrets.at(SecretName("oracle_key")).aws_secrets_manager;
  EXPECT_EQ(a.secret_id, "prod/oracle");
  EXPECT_EQ(a.json_key, "my_secret");
  EXPECT_EQ(a.refresh, std::chrono::minutes(5));
  const auto& t = *c->secrets.at(SecretName("token")).aws_secrets_manager;
  EXPECT_EQ(t.endpoint, "http://127.0.0.1:4566");
  EXPECT_EQ(t.refresh, std::chrono::seconds(30));
  auto again = parse_config(dump_config(*c), "dump.toml");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->secrets.at(SecretName("token")).aws_secrets_manager->refresh,
            std::chrono::seconds(30));

  const std::pair<std::string, std::string> bad[] = {
      {R"(aws_secrets_manager = { secret_id = "s", region = "mars" })",
       "secrets.k.aws_secrets_manager.region: unknown region format 'mars'"},
      {R"(aws_secrets_manager = { region = "us-east-1" })",
       "secrets.k.aws_secrets_manager.secret_id: missing"},
      {R"(aws_secrets_manager = { secret_id = "s", region = "us-east-1", json_key = "" })",
       "json_key: must not be empty"},
      {"env = \"X\"\naws_secrets_manager = { secret_id = \"s\", region = \"us-east-1\" }",
       "set exactly one of 'file', 'env' or 'aws_secrets_manager' (got several)"},
  };
  for (const auto& [text, expected] : bad) {
    auto r = parse_config("[secrets.k]\n" + text + "\n[[feeds]]\nid = \"f\"\n", "m.toml");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_THAT(r.status().message(), HasSubstr(expected)) << text;
  }
}

}  // namespace
}  // namespace metronome
