#include "secret/env_secret.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

namespace metronome {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kVar[] = "METRONOME_ENV_SECRET_TEST";

class EnvSecretTest : public ::testing::Test {
 protected:
  void TearDown() override { ::unsetenv(kVar); }
};

TEST_F(EnvSecretTest, ReadsTheVariable) {
  ASSERT_EQ(::setenv(kVar, "env-value-1", 1), 0);
  EnvSecret s(SecretName("api"), kVar);
  Result<SecretValue> v = s.read();
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->reveal(), "env-value-1");
  EXPECT_EQ(s.describe(), std::string("env ") + kVar);

  ASSERT_EQ(::setenv(kVar, "env-value-2", 1), 0);
  EXPECT_EQ(s.read()->reveal(), "env-value-2");
}

TEST_F(EnvSecretTest, UnsetIsNotFoundNamingTheVariable) {
  ::unsetenv(kVar);
  Result<SecretValue> v = EnvSecret(SecretName("api"), kVar).read();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(v.status().message(),
            fmt::format("secret api: environment variable {} is not set", kVar));
}

TEST_F(EnvSecretTest, EmptyIsNotFound) {
  ASSERT_EQ(::setenv(kVar, "", 1), 0);
  Result<SecretValue> v = EnvSecret(SecretName("api"), kVar).read();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(v.status().message(), HasSubstr(kVar));
  EXPECT_THAT(v.status().message(), HasSubstr("is empty"));
}

}  // namespace
}  // namespace metronome
