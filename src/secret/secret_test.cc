#include "secret/secret.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "secret/env_secret.h"
#include "secret/file_secret.h"
#include "secret/secret_registry.h"

namespace metronome {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(SecretValueTest, HoldsAndComparesTheValue) {
  SecretValue empty;
  EXPECT_TRUE(empty.empty());
  SecretValue a("abc");
  SecretValue b = a;
  EXPECT_EQ(a, b);
  EXPECT_EQ(b.reveal(), "abc");
  b = SecretValue("a much longer value than the small string buffer holds");
  EXPECT_FALSE(a == b);
  EXPECT_EQ(b.reveal(), "a much longer value than the small string buffer holds");
}

// Drives every error path of every provider and the registry with a secret whose value is known,
// and checks that no message contains the value (nor a recognisable piece of it).
TEST(SecretErrorsTest, NoErrorMessageContainsTheSecretValue) {
  constexpr std::string_view kValue = "Zx9-very-secret-value-Qw7";
  constexpr char kVar[] = "METRONOME_SECRET_LEAK_TEST";
  std::string tmpl = (fs::temp_directory_path() / "metronome_leak_test_XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  fs::path dir = tmpl;
  fs::path key = dir / "oracle_key";
  auto write = [&](std::string_view content, mode_t mode) {
    int fd = ::open(key.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ASSERT_EQ(::fchmod(fd, mode), 0);
    ::close(fd);
  };

  std::vector<Status> errors;
  auto note = [&](const Status& st) {
    EXPECT_FALSE(st.ok());
    errors.push_back(st);
  };
  FileSecret file(SecretName("oracle_key"), key);
  note(file.read().status());  // missing
  write(std::string(kValue) + "\n", 0644);
  note(file.read().status());  // readable by others
  write(std::string(kValue) + "\n", 0600);
  ASSERT_EQ(file.read()->reveal(), kValue);
  ASSERT_EQ(::chmod(key.c_str(), 0604), 0);
  note(file.read().status());  // cached, then opened up
  std::string huge;
  while (huge.size() <= 64 * 1024) huge += kValue;
  write(huge, 0600);
  note(file.read().status());  // too large
  write(std::string(kValue) + "\n", 0600);
  note(FileSecret::create_random(key));                             // exists
  note(FileSecret(SecretName("oracle_key"), dir).read().status());  // a directory

  ASSERT_EQ(::setenv(kVar, "", 1), 0);
  note(EnvSecret(SecretName("token"), kVar).read().status());
  ::unsetenv(kVar);
  note(EnvSecret(SecretName("token"), kVar).read().status());

  std::map<SecretName, SecretConfig> configs;
  configs[SecretName("oracle_key")] = SecretConfig{SecretName("oracle_key"), key, std::nullopt};
  Result<SecretRegistry> registry = SecretRegistry::from_config(configs);
  ASSERT_TRUE(registry.ok());
  ASSERT_EQ(registry->read(SecretName("oracle_key"))->reveal(), kValue);
  note(registry->read(SecretName("unknown")).status());
  ASSERT_EQ(::chmod(key.c_str(), 0640), 0);
  note(registry->read(SecretName("oracle_key")).status());
  EXPECT_THAT(registry->describe(SecretName("oracle_key")), Not(HasSubstr(std::string(kValue))));

  ASSERT_EQ(errors.size(), 10u);
  for (const Status& st : errors) {
    EXPECT_THAT(st.ToString(), Not(HasSubstr(std::string(kValue))));
    EXPECT_THAT(st.ToString(), Not(HasSubstr("very-secret")));
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace metronome
