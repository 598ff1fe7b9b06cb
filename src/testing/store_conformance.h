// StoreConformanceTest: the one test suite every Store backend must pass (STYLE.md habit 8).
//
// It states the Store contract as tests: exactly-once commits, idempotent execution creation,
// query order and paging, the DLQ round-tripping every field, alarm states, and concurrent
// commits. A backend's own test file instantiates it with a factory that opens a fresh, empty
// store in a given temporary folder:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
//                            ::testing::Values(StoreFactory{"sqlite", [](const auto& dir) {
//                              return open_my_store(dir);
//                            }}),
//                            StoreFactoryName);
//
// Pass StoreFactoryName as the name generator: besides naming the instantiation, referencing it
// links store_conformance.o (and so the tests) out of the metronome_testing static library.
//
// Contract choices the suite pins down for every backend (beyond store.h):
// - commit_slots() rejects the whole batch with kInvalidArgument, writing nothing, when a commit
//   is published without a record, carries a record without being published, or its record's
//   feed/slot differ from the commit's.
// - A slot whose outcome is published stays published: a later commit for the same
//   (execution, slot) does not change it.
// - list_values(): newest slot first, ties (same slot, several feeds) by feed ascending.
//   list_executions(): newest window first, ties by id ascending. Limits must be positive
//   (kInvalidArgument otherwise), also for dlq_list().
// - set_execution_state() and dlq_delete() of an unknown id are kNotFound.
//
// Thread-safety: a test fixture, used by GoogleTest on one thread (tests may start threads).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "store/store.h"

namespace metronome::testing {

// A folder under the system temp folder with a unique name, removed with everything in it when
// the object goes away.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "metronome-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Opens a fresh store whose files (if any) live in `tmpdir`. Opening again with the same folder
// must reach the same data (backends that can, e.g. SQLite, rely on it for reopen tests).
// Returns nullptr when the store cannot be opened (the test then fails, naming the factory).
using StoreFactoryFn = std::function<std::unique_ptr<Store>(const std::filesystem::path& tmpdir)>;

struct StoreFactory {
  std::string name;  // a GoogleTest name: letters, digits and '_'
  StoreFactoryFn make;
};

// The parameter name generator to pass to INSTANTIATE_TEST_SUITE_P (see above).
std::string StoreFactoryName(const ::testing::TestParamInfo<StoreFactory>& info);
void PrintTo(const StoreFactory& factory, std::ostream* os);

class StoreConformanceTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;

  Store& store() { return *store_; }
  const std::filesystem::path& dir() const { return dir_->path(); }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace metronome::testing
