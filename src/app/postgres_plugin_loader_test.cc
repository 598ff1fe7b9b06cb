#include "app/postgres_plugin_loader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace metronome {
namespace {

namespace fs = std::filesystem;

// The plugin of this build sits beside the test binary (build/src/), as beside `metronome`.
fs::path built_plugin() {
  return fs::read_symlink("/proc/self/exe").parent_path() / "metronome-postgres.so";
}

class PostgresPluginLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("metronome-plugin-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(PostgresPluginLoaderTest, LoadsThePluginOfThisBuildAndItsStoreAnswers) {
  ASSERT_TRUE(fs::exists(built_plugin())) << built_plugin();
  auto backend = load_postgres_backend_from({dir_ / "absent.so", built_plugin()});
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  EXPECT_STREQ((*backend)->version, METRONOME_VERSION);
  EXPECT_EQ((*backend)->layout, postgres_backend_layout());
  EXPECT_EQ((*backend)->redact_url("postgresql://m:secret@db:5432/oracle"),
            "postgresql://m@db:5432/oracle");
  // A store on a closed port: the plugin's own error, through the table.
  PostgresStoreOptions options{.url = "postgresql://m:secret@127.0.0.1:1/db"};
  options.connect_timeout = std::chrono::milliseconds(2000);
  auto store = (*backend)->open_store(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kUnavailable) << store.status().ToString();
  EXPECT_NE(store.status().message().find("postgresql://m@127.0.0.1:1/db"), std::string::npos)
      << store.status().message();
  EXPECT_EQ(store.status().message().find("secret"), std::string::npos) << "password leaked";
  // The cached entry point finds the same plugin beside the binary.
  auto cached = load_postgres_backend();
  ASSERT_TRUE(cached.ok()) << cached.status().ToString();
  EXPECT_EQ(*cached, *backend);
}

TEST_F(PostgresPluginLoaderTest, AMissingPluginNamesEveryPathTried) {
  auto backend = load_postgres_backend_from({dir_ / "a.so", dir_ / "b.so"});
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), Status::Code::kNotFound);
  const std::string& m = backend.status().message();
  EXPECT_NE(m.find("is not installed"), std::string::npos) << m;
  EXPECT_NE(m.find((dir_ / "a.so").string()), std::string::npos) << m;
  EXPECT_NE(m.find((dir_ / "b.so").string()), std::string::npos) << m;
}

TEST_F(PostgresPluginLoaderTest, ABrokenPluginIsRefusedWithItsPath) {
  const fs::path garbage = dir_ / "metronome-postgres.so";
  std::ofstream(garbage) << "not an ELF file\n";
  // The first file that exists is the answer, even when a good one comes later.
  auto backend = load_postgres_backend_from({garbage, built_plugin()});
  ASSERT_FALSE(backend.ok());
  const std::string& m = backend.status().message();
  EXPECT_NE(m.find("could not be loaded"), std::string::npos) << m;
  EXPECT_NE(m.find(garbage.string()), std::string::npos) << m;
}

TEST_F(PostgresPluginLoaderTest, ALibraryWithoutTheEntryPointIsRefused) {
  // Any shared library that is not the plugin: libc's, found through the loader's own path.
  auto backend = load_postgres_backend_from({"/lib/x86_64-linux-gnu/libm.so.6"});
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.status().message().find("has no symbol metronome_postgres_backend_v1"),
            std::string::npos)
      << backend.status().message();
}

}  // namespace
}  // namespace metronome
