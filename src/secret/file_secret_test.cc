#include "secret/file_secret.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <sstream>
#include <string>

namespace metronome {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::string content_of(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FileSecretTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "metronome_secret_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `content` to `p` in place (same inode when it exists) and sets `mode` exactly.
  static void write_file(const fs::path& p, std::string_view content, mode_t mode = 0600) {
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
    ASSERT_GE(fd, 0) << p;
    ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ASSERT_EQ(::fchmod(fd, mode), 0);
    ::close(fd);
  }

  // The error of `r`, checked to be free of the secret `value`.
  static Status error_of(const Result<SecretValue>& r, std::string_view value) {
    EXPECT_FALSE(r.ok());
    if (r.ok()) return Status::Internal("unexpectedly ok");
    EXPECT_THAT(r.status().message(), Not(HasSubstr(std::string(value))));
    return r.status();
  }

  fs::path dir_;
};

TEST_F(FileSecretTest, ReadsTheValueWithoutTrailingWhitespace) {
  fs::path p = dir_ / "oracle_key";
  write_file(p, "  abc def \t\r\n\n");
  FileSecret s(SecretName("oracle_key"), p);
  Result<SecretValue> v = s.read();
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->reveal(), "  abc def");
  EXPECT_EQ(s.describe(), "file " + p.string());
}

TEST_F(FileSecretTest, OwnerOnlyModesAreAccepted) {
  for (mode_t mode : {0600, 0400, 0700}) {
    fs::path p = dir_ / fmt::format("k{:o}", mode);
    write_file(p, "value", mode);
    FileSecret s(SecretName("k"), p);
    Result<SecretValue> v = s.read();
    ASSERT_TRUE(v.ok()) << fmt::format("{:o}: ", mode) << v.status().ToString();
    EXPECT_EQ(v->reveal(), "value");
  }
}

TEST_F(FileSecretTest, GroupOrOtherBitsAreRefusedWithTheMode) {
  for (mode_t mode : {0640, 0604, 0644, 0660, 0620, 0602, 0610}) {
    fs::path p = dir_ / "oracle_key";
    write_file(p, "hunter2-secret", mode);
    FileSecret s(SecretName("oracle_key"), p);
    Status st = error_of(s.read(), "hunter2-secret");
    EXPECT_EQ(st.code(), Status::Code::kPermissionDenied);
    EXPECT_THAT(st.message(), HasSubstr(fmt::format("has mode {:04o}", mode)));
    EXPECT_THAT(st.message(), HasSubstr("chmod 600 " + p.string()));
  }
  fs::path p = dir_ / "oracle_key";
  ASSERT_EQ(::chmod(p.c_str(), 0644), 0);
  Status st = error_of(FileSecret(SecretName("oracle_key"), p).read(), "hunter2-secret");
  EXPECT_EQ(st.message(),
            fmt::format("secret oracle_key: file {0} has mode 0644, which lets group/others read "
                        "it; chmod 600 {0}",
                        p.string()));
}

TEST_F(FileSecretTest, MissingFileIsNotFoundNamingSecretAndPath) {
  fs::path p = dir_ / "nope";
  FileSecret s(SecretName("oracle_key"), p);
  Status st = error_of(s.read(), "no-such-value");
  EXPECT_EQ(st.code(), Status::Code::kNotFound);
  EXPECT_EQ(st.message(), fmt::format("secret oracle_key: file {} does not exist", p.string()));
}

TEST_F(FileSecretTest, EmptyFileIsInvalid) {
  fs::path p = dir_ / "k";
  for (std::string_view content : {"", " \n\t\n"}) {
    write_file(p, content);
    Status st = error_of(FileSecret(SecretName("k"), p).read(), "no-such-value");
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
    EXPECT_THAT(st.message(), HasSubstr("secret k: file " + p.string() + " is empty"));
  }
}

TEST_F(FileSecretTest, DirectoryIsRefused) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0700), 0);
  Status st = error_of(FileSecret(SecretName("k"), dir_).read(), "no-such-value");
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("is not a regular file"));
}

TEST_F(FileSecretTest, RotationIsPickedUp) {
  fs::path p = dir_ / "k";
  write_file(p, "first\n");
  FileSecret s(SecretName("k"), p);
  ASSERT_EQ(s.read()->reveal(), "first");

  // Replaced by rename (a new inode), as tools that rotate atomically do.
  fs::path tmp = dir_ / "k.new";
  write_file(tmp, "second\n");
  fs::rename(tmp, p);
  ASSERT_EQ(s.read()->reveal(), "second");

  // Rewritten in place with another size.
  write_file(p, "the third value\n");
  ASSERT_EQ(s.read()->reveal(), "the third value");
}

TEST_F(FileSecretTest, UnchangedStampIsServedFromTheCache) {
  fs::path p = dir_ / "k";
  write_file(p, "aaaa\n");
  FileSecret s(SecretName("k"), p);
  ASSERT_EQ(s.read()->reveal(), "aaaa");

  struct stat before {};
  ASSERT_EQ(::stat(p.c_str(), &before), 0);
  // Same inode, same size, and the old modification time restored: the file is not re-read.
  write_file(p, "bbbb\n");
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0);
  EXPECT_EQ(s.read()->reveal(), "aaaa");

  // A different modification time makes it re-read.
  times[1].tv_nsec = (times[1].tv_nsec + 1) % 1'000'000'000;
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0);
  EXPECT_EQ(s.read()->reveal(), "bbbb");
}

TEST_F(FileSecretTest, ModeIsCheckedEvenWhenCached) {
  fs::path p = dir_ / "k";
  write_file(p, "cached-secret\n");
  FileSecret s(SecretName("k"), p);
  ASSERT_TRUE(s.read().ok());
  ASSERT_EQ(::chmod(p.c_str(), 0644), 0);
  EXPECT_EQ(error_of(s.read(), "cached-secret").code(), Status::Code::kPermissionDenied);
  ASSERT_EQ(::chmod(p.c_str(), 0600), 0);
  EXPECT_EQ(s.read()->reveal(), "cached-secret");
  // Removing the file is noticed too.
  fs::remove(p);
  EXPECT_EQ(error_of(s.read(), "cached-secret").code(), Status::Code::kNotFound);
}

TEST_F(FileSecretTest, CreateRandomMakesAPrivateHexKey) {
  fs::path p = dir_ / "a" / "b" / "oracle_key";
  mode_t old_umask = ::umask(0);  // even with a permissive umask the modes are 0700 / 0600
  Status st = FileSecret::create_random(p);
  ::umask(old_umask);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(mode_of(p), 0600u);
  EXPECT_EQ(mode_of(dir_ / "a"), 0700u);
  EXPECT_EQ(mode_of(dir_ / "a" / "b"), 0700u);

  std::string content = content_of(p);
  ASSERT_EQ(content.size(), 65u);
  EXPECT_EQ(content.back(), '\n');
  for (char c : content.substr(0, 64)) {
    EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f')) << c;
  }
  Result<SecretValue> v = FileSecret(SecretName("oracle_key"), p).read();
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->reveal(), content.substr(0, 64));

  fs::path q = dir_ / "a" / "b" / "other";
  ASSERT_TRUE(FileSecret::create_random(q).ok());
  EXPECT_NE(content_of(q), content);
}

TEST_F(FileSecretTest, CreateRandomNeverOverwrites) {
  fs::path p = dir_ / "k";
  write_file(p, "existing-secret\n");
  Status st = FileSecret::create_random(p);
  EXPECT_EQ(st.code(), Status::Code::kAlreadyExists);
  EXPECT_THAT(st.message(), HasSubstr(p.string()));
  EXPECT_THAT(st.message(), Not(HasSubstr("existing-secret")));
  EXPECT_EQ(content_of(p), "existing-secret\n");

  fs::path q = dir_ / "fresh";
  ASSERT_TRUE(FileSecret::create_random(q).ok());
  std::string first = content_of(q);
  EXPECT_EQ(FileSecret::create_random(q).code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(content_of(q), first);
}

TEST_F(FileSecretTest, CreateRandomLeavesExistingParentsAlone) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  ASSERT_TRUE(FileSecret::create_random(dir_ / "k").ok());
  EXPECT_EQ(mode_of(dir_), 0755u);
  EXPECT_EQ(mode_of(dir_ / "k"), 0600u);
}

}  // namespace
}  // namespace metronome
