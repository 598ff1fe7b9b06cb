#include "secret/secret_registry.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

namespace metronome {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kVar[] = "METRONOME_REGISTRY_TEST_TOKEN";

// A provider that counts its reads, to show the registry passes them through.
class FakeSecret final : public SecretProvider {
 public:
  explicit FakeSecret(int* reads) : reads_(reads) {}
  Result<SecretValue> read() override {
    ++*reads_;
    return SecretValue("fake-value");
  }
  std::string describe() const override { return "fake"; }

 private:
  int* reads_;
};

class SecretRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "metronome_registry_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    key_ = dir_ / "oracle_key";
    int fd = ::open(key_.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "file-value\n", 11), 11);
    ::close(fd);
    ASSERT_EQ(::setenv(kVar, "env-value", 1), 0);
  }
  void TearDown() override {
    ::unsetenv(kVar);
    fs::remove_all(dir_);
  }

  std::map<SecretName, SecretConfig> configs() const {
    std::map<SecretName, SecretConfig> m;
    m[SecretName("oracle_key")] = SecretConfig{SecretName("oracle_key"), key_, std::nullopt};
    m[SecretName("token")] = SecretConfig{SecretName("token"), std::nullopt, kVar};
    return m;
  }

  fs::path dir_;
  fs::path key_;
};

TEST_F(SecretRegistryTest, ReadsEachConfiguredSecret) {
  Result<SecretRegistry> r = SecretRegistry::from_config(configs());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->read(SecretName("oracle_key"))->reveal(), "file-value");
  EXPECT_EQ(r->read(SecretName("token"))->reveal(), "env-value");
  EXPECT_TRUE(r->contains(SecretName("token")));
  EXPECT_EQ(r->describe(SecretName("oracle_key")), "secret oracle_key: file " + key_.string());
  EXPECT_EQ(r->describe(SecretName("token")), fmt::format("secret token: env {}", kVar));
}

TEST_F(SecretRegistryTest, UnknownNameIsNotFound) {
  Result<SecretRegistry> r = SecretRegistry::from_config(configs());
  ASSERT_TRUE(r.ok());
  Result<SecretValue> v = r->read(SecretName("signing_key"));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(v.status().message(), "unknown secret 'signing_key' (configured: oracle_key, token)");
  EXPECT_FALSE(r->contains(SecretName("signing_key")));
  EXPECT_EQ(r->describe(SecretName("signing_key")), "unknown secret 'signing_key'");

  Result<SecretRegistry> empty = SecretRegistry::from_config({});
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT(empty->read(SecretName("x")).status().message(), HasSubstr("(configured: none)"));
}

TEST_F(SecretRegistryTest, ProviderErrorsPassThrough) {
  fs::remove(key_);
  Result<SecretRegistry> r = SecretRegistry::from_config(configs());
  ASSERT_TRUE(r.ok());
  Result<SecretValue> v = r->read(SecretName("oracle_key"));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(v.status().message(), HasSubstr(key_.string()));
}

TEST_F(SecretRegistryTest, EntryNeedsExactlyOneOfFileAndEnv) {
  auto both = configs();
  both[SecretName("token")].file = key_;
  Result<SecretRegistry> r = SecretRegistry::from_config(both);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("secret token"));

  std::map<SecretName, SecretConfig> neither;
  neither[SecretName("n")] = SecretConfig{SecretName("n"), std::nullopt, std::nullopt};
  EXPECT_EQ(SecretRegistry::from_config(neither).status().code(), Status::Code::kInvalidArgument);
}

TEST_F(SecretRegistryTest, IsMovable) {
  Result<SecretRegistry> r = SecretRegistry::from_config(configs());
  ASSERT_TRUE(r.ok());
  SecretRegistry moved = std::move(*r);
  EXPECT_EQ(moved.read(SecretName("token"))->reveal(), "env-value");
  SecretRegistry assigned = SecretRegistry::from_providers({});
  assigned = std::move(moved);
  EXPECT_EQ(assigned.read(SecretName("oracle_key"))->reveal(), "file-value");
}

TEST_F(SecretRegistryTest, FromProvidersUsesTheGivenProviders) {
  int reads = 0;
  std::map<SecretName, std::unique_ptr<SecretProvider>> providers;
  providers[SecretName("k")] = std::make_unique<FakeSecret>(&reads);
  SecretRegistry r = SecretRegistry::from_providers(std::move(providers));
  EXPECT_EQ(r.read(SecretName("k"))->reveal(), "fake-value");
  EXPECT_EQ(r.read(SecretName("k"))->reveal(), "fake-value");
  EXPECT_EQ(reads, 2);
  EXPECT_EQ(r.describe(SecretName("k")), "secret k: fake");
}

}  // namespace
}  // namespace metronome
