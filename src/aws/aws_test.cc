#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "aws/aws_credentials.h"
#include "aws/aws_region.h"

namespace metronome {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(AwsRegionTest, AcceptsRegionNamesOnly) {
  for (const char* ok : {"us-east-1", "eu-central-1", "ap-southeast-2", "us-gov-west-1",
                         "cn-north-1", "il-central-1"}) {
    EXPECT_TRUE(is_valid_aws_region(ok)) << ok;
  }
  for (const char* bad : {"", "us-east", "US-EAST-1", "us_east_1", "useast1", "us-east-1a",
                          "u-east-1", "us--1", "us-east-1-", "us-east-100", "http://x"}) {
    EXPECT_FALSE(is_valid_aws_region(bad)) << bad;
  }
}

class CredentialsFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("aws_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_ / ".aws");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& text) { std::ofstream(dir_ / ".aws" / "credentials") << text; }
  std::filesystem::path dir_;
};

TEST_F(CredentialsFile, EnvironmentComesFirst) {
  write("[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = filesecret\n");
  auto c = load_aws_credentials(env_of({{"AWS_ACCESS_KEY_ID", "FROMENV"},
                                        {"AWS_SECRET_ACCESS_KEY", "envsecret"},
                                        {"AWS_SESSION_TOKEN", "tok"},
                                        {"HOME", dir_.string()}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "FROMENV");
  EXPECT_EQ(c->secret_access_key, "envsecret");
  EXPECT_EQ(c->session_token, "tok");
  EXPECT_EQ(c->source, "environment");
}

TEST_F(CredentialsFile, HalfSetEnvironmentNamesTheMissingVariable) {
  auto c = load_aws_credentials(env_of({{"AWS_ACCESS_KEY_ID", "FROMENV"}}));
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("AWS_SECRET_ACCESS_KEY is not"));
}

TEST_F(CredentialsFile, SharedFileDefaultAndNamedProfile) {
  write(
      "# comment\n[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = d/s+k\n\n"
      "[oracle]\naws_access_key_id=ORACLEKEY\naws_secret_access_key=osecret\n"
      "aws_session_token = otoken\n");
  auto c = load_aws_credentials(env_of({{"HOME", dir_.string()}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "DEFAULTKEY");
  EXPECT_EQ(c->secret_access_key, "d/s+k");
  EXPECT_EQ(c->session_token, "");
  c = load_aws_credentials(env_of({{"HOME", dir_.string()}, {"AWS_PROFILE", "oracle"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ORACLEKEY");
  EXPECT_EQ(c->session_token, "otoken");
  EXPECT_THAT(c->source, HasSubstr("profile oracle"));
  // AWS_SHARED_CREDENTIALS_FILE wins over HOME.
  c = load_aws_credentials(
      env_of({{"HOME", "/nonexistent"},
              {"AWS_SHARED_CREDENTIALS_FILE", (dir_ / ".aws" / "credentials").string()}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "DEFAULTKEY");
}

TEST_F(CredentialsFile, MissingEverythingNamesWhereItLooked) {
  auto c = load_aws_credentials(env_of({{"HOME", dir_.string() + "/nohome"}}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"));
  EXPECT_THAT(c.status().message(), HasSubstr(dir_.string() + "/nohome/.aws/credentials"));

  write("[default]\naws_access_key_id = K\naws_secret_access_key = hidden-secret\n");
  c = load_aws_credentials(env_of({{"HOME", dir_.string()}, {"AWS_PROFILE", "prod"}}));
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("no profile [prod]"));
  EXPECT_THAT(c.status().message(), Not(HasSubstr("hidden-secret")));

  write("[default]\naws_access_key_id = K\n");
  c = load_aws_credentials(env_of({{"HOME", dir_.string()}}));
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("has no aws_secret_access_key"));
}

}  // namespace
}  // namespace metronome
