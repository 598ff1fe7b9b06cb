// The AWS Secrets Manager provider against FakeSecretsManager: a local HTTP server in this test
// that implements GetSecretValue (not AWS, and not a replacement for it), checks that each
// request is SigV4-signed for service secretsmanager in the expected region, and serves whatever
// value the test sets (so rotation can be tested).
#include "secret/aws_secrets_manager_secret.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
// Debian's libcpp-httplib.so is built with these (see its cpp-httplib.pc); the header must be
// compiled with the same ones, or its classes' layout differs from the library's.
#define CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT
#include <httplib.h>

#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include "secret/secret_registry.h"
#include "testing/manual_clock.h"

namespace metronome {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class FakeSecretsManager {
 public:
  explicit FakeSecretsManager(std::string region) : region_(std::move(region)) {
    server_.Post("/",
                 [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~FakeSecretsManager() {
    server_.stop();
    thread_.join();
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void set(const std::string& id, const std::string& value) {
    std::lock_guard lock(mu_);
    secrets_[id] = value;
  }
  int requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::string last_token() {
    std::lock_guard lock(mu_);
    return last_token_;
  }

 private:
  void error(httplib::Response& res, int status, const std::string& type, const std::string& msg) {
    res.status = status;
    res.set_content(nlohmann::json{{"__type", type}, {"message", msg}}.dump(),
                    "application/x-amz-json-1.1");
  }

  void handle(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mu_);
    ++requests_;
    // "AWS4-HMAC-SHA256 Credential=KEY/YYYYMMDD/REGION/SERVICE/aws4_request,
    //  SignedHeaders=..., Signature=<64 hex>"
    static const std::regex kAuth(
        R"(AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?)"
        R"(SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64}))");
    std::smatch m;
    const std::string auth = req.get_header_value("Authorization");
    if (!std::regex_match(auth, m, kAuth)) {
      return error(res, 400, "IncompleteSignatureException", "not SigV4: " + auth);
    }
    if (m[3] != region_ || m[4] != "secretsmanager") {
      return error(res, 403, "InvalidSignatureException",
                   "credential scope " + m[3].str() + "/" + m[4].str());
    }
    if (m[5].str().find("x-amz-target") == std::string::npos || !req.has_header("X-Amz-Date")) {
      return error(res, 400, "IncompleteSignatureException", "X-Amz-Target is not signed");
    }
    last_token_ = req.get_header_value("x-amz-security-token");
    if (req.get_header_value("X-Amz-Target") != "secretsmanager.GetSecretValue") {
      return error(res, 400, "UnknownOperationException", req.get_header_value("X-Amz-Target"));
    }
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    std::string id = body.is_object() ? body.value("SecretId", "") : "";
    auto it = secrets_.find(id);
    if (it == secrets_.end()) {
      return error(res, 400, "ResourceNotFoundException",
                   "Secrets Manager can't find the specified secret.");
    }
    res.set_content(nlohmann::json{{"ARN", "arn:aws:secretsmanager:" + region_ + ":1:secret:" + id},
                                   {"Name", id},
                                   {"SecretString", it->second}}
                        .dump(),
                    "application/x-amz-json-1.1");
  }

  std::string region_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::map<std::string, std::string> secrets_;  // guarded by mu_
  int requests_ = 0;                            // guarded by mu_
  std::string last_token_;                      // guarded by mu_
};

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

EnvLookup test_credentials() {
  return env_of({{"AWS_ACCESS_KEY_ID", "AKIDTEST"},
                 {"AWS_SECRET_ACCESS_KEY", "test/secret+key"},
                 {"AWS_SESSION_TOKEN", "session-token-1"}});
}

AwsSecretsManagerConfig config_for(const FakeSecretsManager& fake, std::string json_key = "") {
  AwsSecretsManagerConfig c;
  c.secret_id = "prod/oracle";
  c.region = "eu-west-3";
  c.endpoint = fake.endpoint();
  c.json_key = std::move(json_key);
  c.refresh = std::chrono::minutes(5);
  return c;
}

TEST(AwsSecretsManagerSecretTest, ReadsOneKeyOfAJsonSecretSignedForTheService) {
  FakeSecretsManager fake("eu-west-3");
  fake.set("prod/oracle", R"({"my_secret": "s3cr3t-value", "other": "x"})");
  testing::ManualClock clock;
  AwsSecretsManagerSecret secret(SecretName("oracle"), config_for(fake, "my_secret"), clock,
                                 test_credentials());
  auto v = secret.read();
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->reveal(), "s3cr3t-value");
  EXPECT_EQ(fake.requests(), 1);
  EXPECT_EQ(fake.last_token(), "session-token-1");
  EXPECT_THAT(secret.describe(), HasSubstr("prod/oracle"));
  EXPECT_THAT(secret.describe(), Not(HasSubstr("s3cr3t")));
}

TEST(AwsSecretsManagerSecretTest, CachesAndPicksUpARotatedValueAfterRefresh) {
  FakeSecretsManager fake("eu-west-3");
  fake.set("prod/oracle", "first");
  testing::ManualClock clock;
  AwsSecretsManagerSecret secret(SecretName("oracle"), config_for(fake), clock, test_credentials());
  ASSERT_EQ(secret.read()->reveal(), "first");
  fake.set("prod/oracle", "second");
  clock.advance(std::chrono::minutes(4));
  EXPECT_EQ(secret.read()->reveal(), "first");  // cached
  EXPECT_EQ(fake.requests(), 1);
  clock.advance(std::chrono::minutes(1));
  EXPECT_EQ(secret.read()->reveal(), "second");
  EXPECT_EQ(fake.requests(), 2);
}

TEST(AwsSecretsManagerSecretTest, KeepsTheCachedValueWhenARefreshFails) {
  auto fake = std::make_unique<FakeSecretsManager>("eu-west-3");
  fake->set("prod/oracle", "first");
  testing::ManualClock clock;
  AwsSecretsManagerSecret secret(SecretName("oracle"), config_for(*fake), clock,
                                 test_credentials());
  ASSERT_EQ(secret.read()->reveal(), "first");
  fake.reset();  // the service is gone
  clock.advance(std::chrono::minutes(6));
  auto v = secret.read();
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->reveal(), "first");
}

TEST(AwsSecretsManagerSecretTest, WrongRegionIsRefusedByTheSignatureCheck) {
  FakeSecretsManager fake("us-east-1");
  fake.set("prod/oracle", "v");
  testing::ManualClock clock;
  AwsSecretsManagerSecret secret(SecretName("oracle"), config_for(fake), clock,
                                 test_credentials());  // signs for eu-west-3
  auto v = secret.read();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kPermissionDenied);
  EXPECT_THAT(v.status().message(), HasSubstr("InvalidSignatureException"));
  EXPECT_THAT(v.status().message(), HasSubstr("prod/oracle"));
}

TEST(AwsSecretsManagerSecretTest, NonJsonSecretWithJsonKeyIsAClearErrorWithoutTheValue) {
  FakeSecretsManager fake("eu-west-3");
  fake.set("prod/oracle", "plain-text-secret");
  testing::ManualClock clock;
  AwsSecretsManagerSecret secret(SecretName("oracle"), config_for(fake, "my_secret"), clock,
                                 test_credentials());
  auto v = secret.read();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("json_key 'my_secret'"));
  EXPECT_THAT(v.status().message(), HasSubstr("not a JSON object"));
  EXPECT_THAT(v.status().message(), Not(HasSubstr("plain-text")));

  fake.set("prod/oracle", R"({"other": "x"})");
  clock.advance(std::chrono::minutes(10));
  v = secret.read();
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("no key 'my_secret'"));
}

TEST(AwsSecretsManagerSecretTest, UnknownSecretAndMissingCredentialsNameWhatIsWrong) {
  FakeSecretsManager fake("eu-west-3");
  testing::ManualClock clock;
  AwsSecretsManagerSecret unknown(SecretName("oracle"), config_for(fake), clock,
                                  test_credentials());
  auto v = unknown.read();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(v.status().message(), HasSubstr("ResourceNotFoundException"));

  AwsSecretsManagerSecret no_credentials(SecretName("oracle"), config_for(fake), clock,
                                         env_of({{"HOME", "/nonexistent-home"}}));
  v = no_credentials.read();
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("AWS_ACCESS_KEY_ID"));
  EXPECT_THAT(v.status().message(), HasSubstr("/nonexistent-home/.aws/credentials"));
  EXPECT_EQ(fake.requests(), 1);  // the second never reached the service
}

TEST(AwsSecretsManagerSecretTest, RegistryBuildsItFromConfigWithAClock) {
  FakeSecretsManager fake("eu-west-3");
  SecretConfig c;
  c.name = SecretName("oracle");
  c.aws_secrets_manager = config_for(fake);
  std::map<SecretName, SecretConfig> secrets{{c.name, c}};
  testing::ManualClock clock;
  auto registry = SecretRegistry::from_config(secrets, clock);
  ASSERT_TRUE(registry.ok()) << registry.status().ToString();
  EXPECT_THAT(registry->describe(c.name), HasSubstr("AWS Secrets Manager secret 'prod/oracle'"));
  EXPECT_FALSE(SecretRegistry::from_config(secrets).ok());  // no clock: refused, not guessed
}

}  // namespace
}  // namespace metronome
