#include "testing/store_conformance.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <latch>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "common/hex.h"
#include "store/signature_batch.h"

namespace metronome::testing {

// ---- TempDir ----

TempDir::TempDir(std::string_view prefix) {
  static std::atomic<uint64_t> counter{0};
  std::random_device random;
  const auto base = std::filesystem::temp_directory_path();
  for (int attempt = 0;; ++attempt) {
    path_ = base / fmt::format("{}-{}-{}-{:08x}", prefix, ::getpid(), counter++, random());
    std::error_code ec;
    if (std::filesystem::create_directory(path_, ec)) return;
    if (attempt == 100) {
      ADD_FAILURE() << "cannot create a temp folder under " << base << ": " << ec.message();
      return;
    }
  }
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// ---- fixture ----

std::string StoreFactoryName(const ::testing::TestParamInfo<StoreFactory>& info) {
  return info.param.name;
}

void PrintTo(const StoreFactory& factory, std::ostream* os) {
  *os << factory.name;
}

void StoreConformanceTest::SetUp() {
  dir_ = std::make_unique<TempDir>("metronome-store-" + GetParam().name);
  store_ = GetParam().make(dir_->path());
  ASSERT_NE(store_, nullptr) << "the " << GetParam().name << " factory opened no store in "
                             << dir_->path();
}

void StoreConformanceTest::TearDown() {
  store_.reset();
  dir_.reset();
}

// A backend linked into a binary that does not instantiate the suite is not an error.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StoreConformanceTest);

namespace {

std::string describe(const Status& s) {
  return s.ToString();
}
template <typename T>
std::string describe(const Result<T>& r) {
  return r.ok() ? "ok" : r.status().ToString();
}

#define CONFORMANCE_ASSERT_OK(expr)         \
  do {                                      \
    const auto& _st = (expr);               \
    ASSERT_TRUE(_st.ok()) << describe(_st); \
  } while (0)
#define CONFORMANCE_ASSERT_OK_AND_ASSIGN(decl, expr) \
  CONFORMANCE_ASSIGN_IMPL(METRONOME_CONCAT(_result_, __LINE__), decl, expr)
#define CONFORMANCE_ASSIGN_IMPL(tmp, decl, expr)    \
  auto tmp = (expr);                                \
  ASSERT_TRUE(tmp.ok()) << tmp.status().ToString(); \
  decl = std::move(tmp).value()

// A minute-aligned window start, and a wall time with every nanosecond digit set, so that a
// backend that rounds times fails.
const SlotTime kWindow = slot_from_unix_ms(1'795'000'020'000);
const WallTime kT0 = WallTime(Nanos(1'795'000'019'123'456'789));
constexpr Millis kInterval{2000};
constexpr Millis kWindowLength{60'000};

Execution make_execution(const std::string& feed, SlotTime window_start, int slots = 30) {
  Execution e;
  e.feed = FeedId(feed);
  e.id = make_execution_id(e.feed, window_start);
  e.window_start = window_start;
  e.window_end = window_start + kWindowLength;
  e.state = ExecutionState::kPlanned;
  e.created_at = kT0;
  for (int i = 0; i < slots; ++i) {
    SlotRecord s;
    s.slot = window_start + i * kInterval;
    e.slots.push_back(s);
  }
  return e;
}

ValueRecord make_record(const std::string& feed, SlotTime slot, std::string value) {
  ValueRecord r;
  r.feed = FeedId(feed);
  r.round = to_unix_ms(slot) / kInterval.count();
  r.slot = slot;
  r.value = std::move(value);
  r.decimals = 2;
  r.observed_at = WallTime(slot) + Nanos(1'234'567);
  r.published_at = WallTime(slot) + Nanos(2'345'678);
  r.execution = make_execution_id(r.feed, std::chrono::floor<std::chrono::minutes>(slot));
  r.signer = "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23";
  r.signature = "0x" + std::string(130, 'a');
  r.digest = "0x" + std::string(64, 'd');
  r.proof = "0x" + std::string(128, 'e');  // a batch signature's two levels (ADR 0018)
  return r;
}

SlotCommit published(const ValueRecord& record) {
  SlotCommit c;
  c.execution = record.execution;
  c.feed = record.feed;
  c.slot.slot = record.slot;
  c.slot.outcome = SlotOutcome::kPublished;
  c.slot.fired_at = WallTime(record.slot) + Nanos(345'678);
  c.slot.lateness_us = 345;
  c.slot.attempts = 1;
  c.record = record;
  return c;
}

SlotCommit not_published(const std::string& feed, SlotTime slot, SlotOutcome outcome,
                         std::string error = "source timed out") {
  SlotCommit c;
  c.feed = FeedId(feed);
  c.execution = make_execution_id(c.feed, std::chrono::floor<std::chrono::minutes>(slot));
  c.slot.slot = slot;
  c.slot.outcome = outcome;
  if (outcome == SlotOutcome::kFailed) {
    c.slot.fired_at = WallTime(slot) + Nanos(1'000);
    c.slot.lateness_us = 1;
    c.slot.attempts = 3;
  }
  c.slot.error = std::move(error);
  return c;
}

// Query builders (designated initializers that skip fields trip -Wmissing-field-initializers).
ValueQuery values_query(std::optional<FeedId> feed = {}, std::optional<SlotTime> since = {},
                        std::optional<SlotTime> before = {}, int limit = 100) {
  ValueQuery q;
  q.feed = std::move(feed);
  q.since = since;
  q.before = before;
  q.limit = limit;
  return q;
}

ExecutionQuery executions_query(std::optional<FeedId> feed = {},
                                std::optional<SlotTime> before = {}, int limit = 20) {
  ExecutionQuery q;
  q.feed = std::move(feed);
  q.before = before;
  q.limit = limit;
  return q;
}

SlotTime slot_at(int i) {
  return kWindow + i * kInterval;
}

// The slot record of `slot` in `execution`, or a failure.
const SlotRecord* find_slot(const Execution& e, SlotTime slot) {
  for (const SlotRecord& s : e.slots) {
    if (s.slot == slot) return &s;
  }
  return nullptr;
}

std::vector<int64_t> slots_ms(const std::vector<ValueRecord>& values) {
  std::vector<int64_t> out;
  for (const auto& v : values) out.push_back(to_unix_ms(v.slot));
  return out;
}

DlqMessage make_dlq(const std::string& feed, std::optional<SlotTime> slot, bool with_record) {
  DlqMessage m;
  m.feed = FeedId(feed);
  m.slot = slot;
  m.execution = make_execution_id(m.feed, kWindow);
  m.stage = "publish";
  m.error = "unavailable: source http://127.0.0.1:1/ refused the connection";
  m.attempts = 4;
  m.first_failure = kT0 + Nanos(1);
  m.last_failure = kT0 + Nanos(999'999'999);
  if (with_record) m.record = make_record(feed, slot.value_or(kWindow), "-12.5");
  return m;
}

}  // namespace

// ---- executions ----

TEST_P(StoreConformanceTest, CreatedExecutionReadsBackWithSlotsAscending) {
  Execution e = make_execution("random_int", kWindow);
  CONFORMANCE_ASSERT_OK(store().create_execution(e));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_execution(e.id));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, e);
  ASSERT_EQ(got->slots.size(), 30u);
  for (size_t i = 1; i < got->slots.size(); ++i) {
    EXPECT_LT(got->slots[i - 1].slot, got->slots[i].slot);
  }
}

TEST_P(StoreConformanceTest, GetUnknownExecutionIsEmpty) {
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got,
                                   store().get_execution(ExecutionId("nope@2026-01-01T00:00:00Z")));
  EXPECT_FALSE(got.has_value());
}

TEST_P(StoreConformanceTest, CreateExecutionIsIdempotentAndChangesNothing) {
  Execution e = make_execution("random_int", kWindow);
  CONFORMANCE_ASSERT_OK(store().create_execution(e));
  CONFORMANCE_ASSERT_OK(store().set_execution_state(e.id, ExecutionState::kRunning, std::nullopt));
  CONFORMANCE_ASSERT_OK(
      store().commit_slots(std::vector{published(make_record("random_int", slot_at(0), "537"))}));

  // A restart re-plans the same window: nothing of the first run is lost or duplicated.
  Execution again = make_execution("random_int", kWindow);
  again.created_at = kT0 + Seconds(90);
  CONFORMANCE_ASSERT_OK(store().create_execution(again));

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_execution(e.id));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->state, ExecutionState::kRunning);
  EXPECT_EQ(got->created_at, e.created_at);
  ASSERT_EQ(got->slots.size(), 30u);
  EXPECT_EQ(got->slots[0].outcome, SlotOutcome::kPublished);
  EXPECT_EQ(got->slots[1].outcome, SlotOutcome::kPlanned);
}

TEST_P(StoreConformanceTest, SetExecutionStateRecordsFinishTime) {
  Execution e = make_execution("random_int", kWindow);
  CONFORMANCE_ASSERT_OK(store().create_execution(e));
  const WallTime finished = kT0 + Seconds(61) + Nanos(7);
  CONFORMANCE_ASSERT_OK(store().set_execution_state(e.id, ExecutionState::kFailed, finished));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_execution(e.id));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->state, ExecutionState::kFailed);
  EXPECT_EQ(got->finished_at, finished);

  Status missing = store().set_execution_state(ExecutionId("nope@2026-01-01T00:00:00Z"),
                                               ExecutionState::kSucceeded, finished);
  EXPECT_EQ(missing.code(), Status::Code::kNotFound) << missing.ToString();
}

// Many executions at once: each answered on its own; one without an id is refused without
// failing the others; one that exists already is left as it was.
TEST_P(StoreConformanceTest, CreateExecutionsAnswersEachExecution) {
  Execution existing = make_execution("feed_a", kWindow);
  CONFORMANCE_ASSERT_OK(store().create_execution(existing));
  CONFORMANCE_ASSERT_OK(
      store().set_execution_state(existing.id, ExecutionState::kRunning, std::nullopt));
  Execution nameless = make_execution("feed_b", kWindow);
  nameless.id = ExecutionId("");
  const std::vector<Execution> batch{make_execution("feed_c", kWindow), nameless, existing,
                                     make_execution("feed_d", kWindow, 3)};
  std::vector<Status> answers = store().create_executions(batch);
  ASSERT_EQ(answers.size(), 4u);
  EXPECT_TRUE(answers[0].ok()) << answers[0].ToString();
  EXPECT_EQ(answers[1].code(), Status::Code::kInvalidArgument) << answers[1].ToString();
  EXPECT_TRUE(answers[2].ok()) << answers[2].ToString();
  EXPECT_TRUE(answers[3].ok()) << answers[3].ToString();
  for (size_t i : {size_t{0}, size_t{3}}) {
    CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_execution(batch[i].id));
    ASSERT_TRUE(got.has_value()) << batch[i].id.str();
    EXPECT_EQ(*got, batch[i]);
  }
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto kept, store().get_execution(existing.id));
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->state, ExecutionState::kRunning);
  EXPECT_TRUE(store().create_executions({}).empty());
}

// Many state changes at once: each answered on its own, in order; an unknown execution is
// NotFound without failing the others; a later change of the same execution wins.
TEST_P(StoreConformanceTest, SetExecutionStatesAnswersEachChangeInOrder) {
  Execution a = make_execution("feed_a", kWindow);
  Execution b = make_execution("feed_b", kWindow);
  CONFORMANCE_ASSERT_OK(store().create_execution(a));
  CONFORMANCE_ASSERT_OK(store().create_execution(b));
  const WallTime finished = kT0 + Seconds(60) + Nanos(3);
  const std::vector<ExecutionStateChange> changes{
      {a.id, ExecutionState::kRunning, std::nullopt},
      {ExecutionId("nope@2026-01-01T00:00:00Z"), ExecutionState::kRunning, std::nullopt},
      {b.id, ExecutionState::kRunning, std::nullopt},
      {a.id, ExecutionState::kSucceeded, finished},
  };
  std::vector<Status> answers = store().set_execution_states(changes);
  ASSERT_EQ(answers.size(), 4u);
  EXPECT_TRUE(answers[0].ok()) << answers[0].ToString();
  EXPECT_EQ(answers[1].code(), Status::Code::kNotFound) << answers[1].ToString();
  EXPECT_TRUE(answers[2].ok()) << answers[2].ToString();
  EXPECT_TRUE(answers[3].ok()) << answers[3].ToString();
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got_a, store().get_execution(a.id));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got_b, store().get_execution(b.id));
  ASSERT_TRUE(got_a.has_value() && got_b.has_value());
  EXPECT_EQ(got_a->state, ExecutionState::kSucceeded);
  EXPECT_EQ(got_a->finished_at, finished);
  EXPECT_EQ(got_b->state, ExecutionState::kRunning);
  EXPECT_FALSE(got_b->finished_at.has_value());
  EXPECT_TRUE(store().set_execution_states({}).empty());
}

TEST_P(StoreConformanceTest, ListExecutionsNewestFirstFilteredAndPaged) {
  for (int i = 0; i < 5; ++i) {
    CONFORMANCE_ASSERT_OK(
        store().create_execution(make_execution("a", kWindow + i * kWindowLength, 3)));
  }
  for (int i = 0; i < 3; ++i) {
    CONFORMANCE_ASSERT_OK(
        store().create_execution(make_execution("b", kWindow + i * kWindowLength, 3)));
  }

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto all,
                                   store().list_executions(executions_query({}, {}, 100)));
  ASSERT_EQ(all.size(), 8u);
  for (size_t i = 1; i < all.size(); ++i) {
    ASSERT_TRUE(all[i - 1].window_start > all[i].window_start ||
                (all[i - 1].window_start == all[i].window_start && all[i - 1].id < all[i].id))
        << i;
  }
  EXPECT_EQ(all[0].id, make_execution_id(FeedId("a"), kWindow + 4 * kWindowLength));
  for (const Execution& e : all) EXPECT_EQ(e.slots.size(), 3u) << e.id.str();

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto page1,
                                   store().list_executions(executions_query(FeedId("a"), {}, 2)));
  ASSERT_EQ(page1.size(), 2u);
  EXPECT_EQ(page1[0].window_start, kWindow + 4 * kWindowLength);
  EXPECT_EQ(page1[1].window_start, kWindow + 3 * kWindowLength);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto page2, store().list_executions(executions_query(
                                                   FeedId("a"), page1.back().window_start, 2)));
  ASSERT_EQ(page2.size(), 2u);
  EXPECT_EQ(page2[0].window_start, kWindow + 2 * kWindowLength);
  EXPECT_EQ(page2[1].window_start, kWindow + 1 * kWindowLength);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto page3, store().list_executions(executions_query(
                                                   FeedId("a"), page2.back().window_start, 2)));
  ASSERT_EQ(page3.size(), 1u);
  EXPECT_EQ(page3[0].window_start, kWindow);

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto b, store().list_executions(executions_query(FeedId("b"))));
  ASSERT_EQ(b.size(), 3u);
  for (const Execution& e : b) EXPECT_EQ(e.feed, FeedId("b"));
}

TEST_P(StoreConformanceTest, UnfinishedExecutionsAreOldestFirstAndNotFinal) {
  const ExecutionState states[] = {ExecutionState::kSucceeded, ExecutionState::kRunning,
                                   ExecutionState::kFailed, ExecutionState::kPlanned,
                                   ExecutionState::kInterrupted};
  for (int i = 0; i < 5; ++i) {
    Execution e = make_execution("a", kWindow + i * kWindowLength, 2);
    CONFORMANCE_ASSERT_OK(store().create_execution(e));
    if (states[i] != ExecutionState::kPlanned) {
      std::optional<WallTime> finished;
      if (is_final(states[i])) finished = kT0 + Seconds(60 * (i + 1));
      CONFORMANCE_ASSERT_OK(store().set_execution_state(e.id, states[i], finished));
    }
  }
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto unfinished, store().unfinished_executions());
  ASSERT_EQ(unfinished.size(), 2u);
  EXPECT_EQ(unfinished[0].window_start, kWindow + 1 * kWindowLength);
  EXPECT_EQ(unfinished[0].state, ExecutionState::kRunning);
  EXPECT_EQ(unfinished[1].window_start, kWindow + 3 * kWindowLength);
  EXPECT_EQ(unfinished[1].state, ExecutionState::kPlanned);
  EXPECT_EQ(unfinished[0].slots.size(), 2u);
}

// ---- commits ----

TEST_P(StoreConformanceTest, CommitIsExactlyOncePerFeedAndSlot) {
  Execution e = make_execution("random_int", kWindow);
  CONFORMANCE_ASSERT_OK(store().create_execution(e));
  ValueRecord first = make_record("random_int", slot_at(1), "537");
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto r1, store().commit_slots(std::vector{published(first)}));
  EXPECT_EQ(r1, std::vector<bool>{true});

  // A retry after an ambiguous failure, a redrive or a second replica: the first value stays.
  ValueRecord second = make_record("random_int", slot_at(1), "999");
  second.signature = "0x" + std::string(130, 'b');
  SlotCommit again = published(second);
  again.slot.attempts = 2;
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto r2, store().commit_slots(std::vector{again}));
  EXPECT_EQ(r2, std::vector<bool>{false});

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto value, store().get_value(first.feed, first.slot));
  ASSERT_TRUE(value.has_value());
  EXPECT_EQ(*value, first);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_execution(e.id));
  ASSERT_TRUE(got.has_value());
  const SlotRecord* slot = find_slot(*got, first.slot);
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(slot->outcome, SlotOutcome::kPublished);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto values, store().list_values({}));
  EXPECT_EQ(values.size(), 1u);
}

// Many writers at once (a boundary of many feeds): every commit lands exactly once with its own
// answer, and a writer whose operation fails (an unknown execution) fails alone.
TEST_P(StoreConformanceTest, ConcurrentWritersEachGetTheirOwnAnswer) {
  constexpr int kThreads = 16;
  constexpr int kSlotsEach = 20;
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string feed = "feed_" + std::to_string(t);
      Execution e = make_execution(feed, kWindow, kSlotsEach);
      if (Status st = store().create_execution(e); !st.ok()) {
        errors[t] = "create: " + st.ToString();
        return;
      }
      for (int i = 0; i < kSlotsEach; ++i) {
        auto r = store().commit_slots(std::vector{published(make_record(feed, slot_at(i), "1"))});
        if (!r.ok() || *r != std::vector<bool>{true}) {
          errors[t] = "commit " + std::to_string(i) + ": " + describe(r);
          return;
        }
        // Interleaved with the others' commits: an operation that fails on its own.
        Status missing = store().set_execution_state(ExecutionId(feed + "@nowhere"),
                                                     ExecutionState::kFailed, kT0);
        if (missing.code() != Status::Code::kNotFound) {
          errors[t] = "unknown execution: " + missing.ToString();
          return;
        }
      }
      if (Status st = store().set_execution_state(e.id, ExecutionState::kSucceeded, kT0);
          !st.ok()) {
        errors[t] = "finish: " + st.ToString();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "writer " << t;
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto values,
                                   store().list_values(values_query({}, {}, {}, 1000)));
  EXPECT_EQ(values.size(), size_t{kThreads * kSlotsEach});
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto unfinished, store().unfinished_executions());
  EXPECT_TRUE(unfinished.empty());
}

TEST_P(StoreConformanceTest, CommittedSlotRecordsEveryField) {
  Execution e = make_execution("random_int", kWindow);
  CONFORMANCE_ASSERT_OK(store().create_execution(e));
  SlotCommit c = published(make_record("random_int", slot_at(2), "537"));
  CONFORMANCE_ASSERT_OK(store().commit_slots(std::vector{c}));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_execution(e.id));
  ASSERT_TRUE(got.has_value());
  const SlotRecord* slot = find_slot(*got, c.slot.slot);
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(*slot, c.slot);
}

// Batch-signed records (ADR 0018): a store may keep the batch once and each record's leaf
// (SQLite does), but reads back exactly the texts each record carried, whether its batch came in
// one commit or in two.
TEST_P(StoreConformanceTest, BatchSignedRecordsReadBackWithTheirOwnTexts) {
  auto batch = std::make_shared<SignatureBatch>();
  batch->signature = "0x" + std::string(128, 'b') + "1b";
  batch->leaves = 5;
  batch->nodes.resize(merkle_node_count(5));
  for (size_t i = 0; i < batch->nodes.size(); ++i) {
    batch->nodes[i].fill(static_cast<uint8_t>(0x10 + i));  // distinct, not real hashes
  }
  std::vector<SlotCommit> commits;
  std::vector<ValueRecord> records;
  for (uint32_t leaf = 0; leaf < 5; ++leaf) {
    const std::string feed = "batched_" + std::to_string(leaf);
    CONFORMANCE_ASSERT_OK(store().create_execution(make_execution(feed, kWindow)));
    ValueRecord r = make_record(feed, slot_at(3), std::to_string(100 + leaf));
    r.signature = batch->signature;
    r.digest = to_hex_0x(batch->nodes[leaf]);
    merkle_proof_hex(batch->nodes, batch->leaves, leaf, r.proof);
    ASSERT_FALSE(r.proof.empty());
    records.push_back(r);
    SlotCommit c = published(r);
    c.batch = batch;
    c.batch_leaf = leaf;
    commits.push_back(std::move(c));
  }
  // Leaves 0-2 in one commit, 3-4 in the next.
  CONFORMANCE_ASSERT_OK(store().commit_slots(std::span<const SlotCommit>(commits).first(3)));
  CONFORMANCE_ASSERT_OK(store().commit_slots(std::span<const SlotCommit>(commits).subspan(3)));
  for (const ValueRecord& r : records) {
    CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_value(r.feed, r.slot));
    ASSERT_TRUE(got.has_value()) << r.feed.str();
    EXPECT_EQ(*got, r) << r.feed.str();
    CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto latest, store().latest_value(r.feed));
    ASSERT_TRUE(latest.has_value()) << r.feed.str();
    EXPECT_EQ(*latest, r) << r.feed.str();
  }
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto listed, store().list_values({}));
  ASSERT_EQ(listed.size(), records.size());
  for (const ValueRecord& got : listed) {
    EXPECT_EQ(got, records[static_cast<size_t>(std::stoi(got.value) - 100)]) << got.feed.str();
  }
}

// A commit whose record does not match the batch it names (another signature, a leaf the batch
// lacks) reads back its own texts all the same.
TEST_P(StoreConformanceTest, ARecordThatDoesNotMatchItsBatchReadsBackItsOwnTexts) {
  auto batch = std::make_shared<SignatureBatch>();
  batch->signature = "0x" + std::string(128, 'b') + "1b";
  batch->leaves = 2;
  batch->nodes.resize(merkle_node_count(2));
  for (size_t i = 0; i < batch->nodes.size(); ++i) batch->nodes[i].fill(static_cast<uint8_t>(i));
  std::vector<ValueRecord> records;
  std::vector<SlotCommit> commits;
  for (uint32_t k = 0; k < 2; ++k) {
    const std::string feed = "mismatched_" + std::to_string(k);
    CONFORMANCE_ASSERT_OK(store().create_execution(make_execution(feed, kWindow)));
    ValueRecord r = make_record(feed, slot_at(4), "7");  // its own signature, digest and proof
    records.push_back(r);
    SlotCommit c = published(r);
    c.batch = batch;
    c.batch_leaf = k == 0 ? 0 : 5;  // k 0: another signature; k 1: also a leaf out of range
    if (k == 1) {
      c.record->signature = batch->signature;
      records.back().signature = batch->signature;
    }
    commits.push_back(std::move(c));
  }
  CONFORMANCE_ASSERT_OK(store().commit_slots(commits));
  for (const ValueRecord& r : records) {
    CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_value(r.feed, r.slot));
    ASSERT_TRUE(got.has_value()) << r.feed.str();
    EXPECT_EQ(*got, r) << r.feed.str();
  }
}

TEST_P(StoreConformanceTest, PublishedSlotStaysPublished) {
  Execution e = make_execution("random_int", kWindow);
  CONFORMANCE_ASSERT_OK(store().create_execution(e));
  CONFORMANCE_ASSERT_OK(
      store().commit_slots(std::vector{published(make_record("random_int", slot_at(0), "1"))}));
  // E.g. the caller saw an error for a commit that did land, retried until the deadline and
  // then recorded a failure: the value exists, so the slot is published.
  CONFORMANCE_ASSERT_OK(store().commit_slots(
      std::vector{not_published("random_int", slot_at(0), SlotOutcome::kFailed)}));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_execution(e.id));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->slots[0].outcome, SlotOutcome::kPublished);
  EXPECT_EQ(got->slots[0].error, "");
}

TEST_P(StoreConformanceTest, FailedSlotCanLaterBePublished) {
  Execution e = make_execution("random_int", kWindow);
  CONFORMANCE_ASSERT_OK(store().create_execution(e));
  CONFORMANCE_ASSERT_OK(store().commit_slots(
      std::vector{not_published("random_int", slot_at(3), SlotOutcome::kFailed)}));
  // A redrive delivers the record that was observed at that slot.
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(
      auto inserted,
      store().commit_slots(std::vector{published(make_record("random_int", slot_at(3), "7"))}));
  EXPECT_EQ(inserted, std::vector<bool>{true});
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_execution(e.id));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->slots[3].outcome, SlotOutcome::kPublished);
  EXPECT_EQ(got->slots[3].error, "");
}

// Each (execution, slot) has one outcome, whatever the order of the commits that reach it:
// a failure then its redrive, a late failure after the value landed, and a second execution
// (e.g. a replica's) whose value was already written by the first.
TEST_P(StoreConformanceTest, EachSlotHasOneOutcomeWhateverTheOrderOfItsCommits) {
  Execution e = make_execution("random_int", kWindow);
  CONFORMANCE_ASSERT_OK(store().create_execution(e));
  SlotCommit redriven = published(make_record("random_int", slot_at(1), "8"));
  redriven.slot.error = "redriven from DLQ message 1; first failure: timeout";
  redriven.slot.attempts = 4;
  for (const auto& batch : std::vector<std::vector<SlotCommit>>{
           {not_published("random_int", slot_at(1), SlotOutcome::kFailed)},
           {redriven},
           {published(make_record("random_int", slot_at(2), "9"))},
           {not_published("random_int", slot_at(2), SlotOutcome::kFailed)},
           {not_published("random_int", slot_at(2), SlotOutcome::kSkipped)},
           // Both in one batch: the outcome row the batch wrote goes too.
           {not_published("random_int", slot_at(4), SlotOutcome::kFailed),
            published(make_record("random_int", slot_at(4), "11"))},
       }) {
    CONFORMANCE_ASSERT_OK(store().commit_slots(batch));
  }
  // Another execution of the same feed and slot: the value exists, so nothing is inserted,
  // and that execution's slot is published too.
  SlotCommit other = published(make_record("random_int", slot_at(2), "10"));
  other.execution = other.record->execution = ExecutionId("random_int@other");
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto inserted, store().commit_slots(std::vector{other}));
  EXPECT_EQ(inserted, std::vector<bool>{false});

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_execution(e.id));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->slots[1], redriven.slot);
  EXPECT_EQ(got->slots[2].outcome, SlotOutcome::kPublished);
  EXPECT_EQ(got->slots[2].attempts, 1);
  EXPECT_EQ(got->slots[2].error, "");
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto value, store().get_value(FeedId("random_int"), slot_at(2)));
  ASSERT_TRUE(value.has_value());
  EXPECT_EQ(value->value, "9");

  auto count = [&](SlotOutcome o) { return store().count_outcomes(o, kWindow); };
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto pub, count(SlotOutcome::kPublished));
  EXPECT_EQ(pub, 4);  // slots 1, 2 and 4 of e, and slot 2 of the other execution
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto failed, count(SlotOutcome::kFailed));
  EXPECT_EQ(failed, 0);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto skipped, count(SlotOutcome::kSkipped));
  EXPECT_EQ(skipped, 0);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto planned, count(SlotOutcome::kPlanned));
  EXPECT_EQ(planned, static_cast<int64_t>(e.slots.size()) - 3);
  EXPECT_EQ(got->slots[4].outcome, SlotOutcome::kPublished);
}

TEST_P(StoreConformanceTest, BatchCommitMixesOutcomes) {
  Execution e = make_execution("random_int", kWindow);
  CONFORMANCE_ASSERT_OK(store().create_execution(e));
  std::vector<SlotCommit> batch = {
      published(make_record("random_int", slot_at(0), "10")),
      not_published("random_int", slot_at(1), SlotOutcome::kFailed, "deadline exceeded"),
      published(make_record("random_int", slot_at(2), "12")),
      not_published("random_int", slot_at(3), SlotOutcome::kMissed, "daemon was not running"),
      not_published("random_int", slot_at(4), SlotOutcome::kSkipped, "previous slot running"),
  };
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto inserted, store().commit_slots(batch));
  EXPECT_EQ(inserted, (std::vector<bool>{true, false, true, false, false}));

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_execution(e.id));
  ASSERT_TRUE(got.has_value());
  for (size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(got->slots[i], batch[i].slot) << i;
  }
  EXPECT_EQ(got->slots[5].outcome, SlotOutcome::kPlanned);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto values, store().list_values({}));
  EXPECT_EQ(slots_ms(values), (std::vector{to_unix_ms(slot_at(2)), to_unix_ms(slot_at(0))}));
}

TEST_P(StoreConformanceTest, InvalidCommitRejectsTheWholeBatch) {
  Execution e = make_execution("random_int", kWindow);
  CONFORMANCE_ASSERT_OK(store().create_execution(e));
  SlotCommit good = published(make_record("random_int", slot_at(0), "1"));

  SlotCommit no_record = published(make_record("random_int", slot_at(1), "2"));
  no_record.record.reset();
  SlotCommit record_but_failed = published(make_record("random_int", slot_at(1), "2"));
  record_but_failed.slot.outcome = SlotOutcome::kFailed;
  SlotCommit other_slot = published(make_record("random_int", slot_at(1), "2"));
  other_slot.record->slot = slot_at(5);
  SlotCommit other_feed = published(make_record("random_int", slot_at(1), "2"));
  other_feed.record->feed = FeedId("other");

  for (const SlotCommit& bad : {no_record, record_but_failed, other_slot, other_feed}) {
    auto result = store().commit_slots(std::vector{good, bad});
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), Status::Code::kInvalidArgument) << describe(result);
  }
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto values, store().list_values({}));
  EXPECT_TRUE(values.empty());
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_execution(e.id));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->slots[0].outcome, SlotOutcome::kPlanned);
}

TEST_P(StoreConformanceTest, EmptyCommitIsANoOp) {
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto inserted, store().commit_slots({}));
  EXPECT_TRUE(inserted.empty());
}

TEST_P(StoreConformanceTest, CommitForAnExecutionNeverCreatedIsRecorded) {
  ValueRecord r = make_record("random_int", slot_at(0), "5");
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto inserted, store().commit_slots(std::vector{published(r)}));
  EXPECT_EQ(inserted, std::vector<bool>{true});
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto value, store().get_value(r.feed, r.slot));
  EXPECT_EQ(value, r);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto count,
                                   store().count_outcomes(SlotOutcome::kPublished, kWindow));
  EXPECT_EQ(count, 1);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto e, store().get_execution(r.execution));
  EXPECT_FALSE(e.has_value());
}

// ---- values ----

TEST_P(StoreConformanceTest, ListValuesNewestFirstWithFiltersAndPaging) {
  std::vector<SlotCommit> batch;
  for (int i = 0; i < 5; ++i) {
    batch.push_back(published(make_record("a", slot_at(i), std::to_string(i))));
    batch.push_back(published(make_record("b", slot_at(i), std::to_string(100 + i))));
  }
  CONFORMANCE_ASSERT_OK(store().commit_slots(batch));

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto all, store().list_values({}));
  ASSERT_EQ(all.size(), 10u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].slot, slot_at(4 - static_cast<int>(i) / 2)) << i;
    EXPECT_EQ(all[i].feed, FeedId(i % 2 == 0 ? "a" : "b")) << i;
  }

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto a, store().list_values(values_query(FeedId("a"))));
  EXPECT_EQ(slots_ms(a),
            (std::vector{to_unix_ms(slot_at(4)), to_unix_ms(slot_at(3)), to_unix_ms(slot_at(2)),
                         to_unix_ms(slot_at(1)), to_unix_ms(slot_at(0))}));
  EXPECT_EQ(a[0], batch[8].record);

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(
      auto window, store().list_values(values_query(FeedId("b"), slot_at(1), slot_at(4))));
  EXPECT_EQ(slots_ms(window),
            (std::vector{to_unix_ms(slot_at(3)), to_unix_ms(slot_at(2)), to_unix_ms(slot_at(1))}));

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto page1,
                                   store().list_values(values_query(FeedId("a"), {}, {}, 2)));
  EXPECT_EQ(slots_ms(page1), (std::vector{to_unix_ms(slot_at(4)), to_unix_ms(slot_at(3))}));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(
      auto page2, store().list_values(values_query(FeedId("a"), {}, page1.back().slot, 2)));
  EXPECT_EQ(slots_ms(page2), (std::vector{to_unix_ms(slot_at(2)), to_unix_ms(slot_at(1))}));

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto since, store().list_values(values_query({}, slot_at(4))));
  EXPECT_EQ(since.size(), 2u);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto none, store().list_values(values_query(FeedId("c"))));
  EXPECT_TRUE(none.empty());
}

TEST_P(StoreConformanceTest, GetAndLatestValue) {
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto empty, store().latest_value(FeedId("a")));
  EXPECT_FALSE(empty.has_value());
  ValueRecord old_a = make_record("a", slot_at(1), "1");
  ValueRecord new_a = make_record("a", slot_at(7), "2");
  ValueRecord newer_b = make_record("b", slot_at(9), "3");
  // Committed out of order on purpose: "latest" is by slot time, not by insertion.
  CONFORMANCE_ASSERT_OK(
      store().commit_slots(std::vector{published(new_a), published(newer_b), published(old_a)}));

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto latest, store().latest_value(FeedId("a")));
  EXPECT_EQ(latest, new_a);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_value(FeedId("a"), slot_at(1)));
  EXPECT_EQ(got, old_a);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto missing, store().get_value(FeedId("a"), slot_at(2)));
  EXPECT_FALSE(missing.has_value());
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto other, store().get_value(FeedId("b"), slot_at(1)));
  EXPECT_FALSE(other.has_value());

  // A later batch: an older slot and a value kept once (not inserted) leave "latest" as it was;
  // a newer slot moves it, each feed on its own.
  ValueRecord again_b = make_record("b", slot_at(9), "4");
  ValueRecord newest_a = make_record("a", slot_at(8), "5");
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(
      auto inserted, store().commit_slots(std::vector{published(make_record("a", slot_at(3), "6")),
                                                      published(again_b)}));
  EXPECT_EQ(inserted, (std::vector<bool>{true, false}));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(latest, store().latest_value(FeedId("a")));
  EXPECT_EQ(latest, new_a);
  CONFORMANCE_ASSERT_OK(store().commit_slots(std::vector{published(newest_a)}));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(latest, store().latest_value(FeedId("a")));
  EXPECT_EQ(latest, newest_a);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto latest_b, store().latest_value(FeedId("b")));
  EXPECT_EQ(latest_b, newer_b);
}

TEST_P(StoreConformanceTest, ValueKeepsTheSourcesThatAnswered) {
  ValueRecord median = make_record("m", slot_at(3), "101.5");
  median.sources = {{"coinbase", "101.5"}, {"kraken", "100"}, {"bitstamp\"x", "102.25"}};
  ValueRecord single = make_record("m", slot_at(4), "7");
  CONFORMANCE_ASSERT_OK(store().commit_slots(std::vector{published(median), published(single)}));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().get_value(FeedId("m"), slot_at(3)));
  EXPECT_EQ(got, median);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto latest, store().latest_value(FeedId("m")));
  EXPECT_EQ(latest, single);

  DlqMessage message = make_dlq("m", slot_at(5), true);
  message.record->sources = median.sources;
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(int64_t id, store().dlq_push(message));
  message.id = id;
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto from_dlq, store().dlq_get(id));
  EXPECT_EQ(from_dlq, message);
}

TEST_P(StoreConformanceTest, CountOutcomesBySlotTime) {
  std::vector<SlotCommit> batch = {
      not_published("a", slot_at(0), SlotOutcome::kMissed),
      not_published("a", slot_at(1), SlotOutcome::kMissed),
      not_published("b", slot_at(2), SlotOutcome::kMissed),
      not_published("a", slot_at(3), SlotOutcome::kFailed),
      published(make_record("a", slot_at(4), "1")),
  };
  CONFORMANCE_ASSERT_OK(store().commit_slots(batch));
  auto count = [&](SlotOutcome o, SlotTime since) { return store().count_outcomes(o, since); };
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto missed, count(SlotOutcome::kMissed, kWindow));
  EXPECT_EQ(missed, 3);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto missed_since, count(SlotOutcome::kMissed, slot_at(1)));
  EXPECT_EQ(missed_since, 2);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto failed, count(SlotOutcome::kFailed, kWindow));
  EXPECT_EQ(failed, 1);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto pub, count(SlotOutcome::kPublished, slot_at(5)));
  EXPECT_EQ(pub, 0);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto skipped, count(SlotOutcome::kSkipped, kWindow));
  EXPECT_EQ(skipped, 0);
}

TEST_P(StoreConformanceTest, LimitsMustBePositive) {
  for (int limit : {0, -1}) {
    auto values = store().list_values(values_query({}, {}, {}, limit));
    EXPECT_EQ(values.status().code(), Status::Code::kInvalidArgument) << describe(values);
    auto executions = store().list_executions(executions_query({}, {}, limit));
    EXPECT_EQ(executions.status().code(), Status::Code::kInvalidArgument) << describe(executions);
    auto dlq = store().dlq_list(limit);
    EXPECT_EQ(dlq.status().code(), Status::Code::kInvalidArgument) << describe(dlq);
  }
}

// ---- dead-letter queue ----

TEST_P(StoreConformanceTest, DlqRoundTripsEveryFieldWithAndWithoutRecord) {
  DlqMessage with_record = make_dlq("random_int", slot_at(4), true);
  DlqMessage without_record = make_dlq("random_int", std::nullopt, false);
  without_record.stage = "plan";

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(int64_t id1, store().dlq_push(with_record));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(int64_t id2, store().dlq_push(without_record));
  EXPECT_GT(id2, id1);
  with_record.id = id1;
  without_record.id = id2;

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got1, store().dlq_get(id1));
  EXPECT_EQ(got1, with_record);
  ASSERT_TRUE(got1.has_value() && got1->record.has_value());
  EXPECT_EQ(got1->record->signature, with_record.record->signature);
  EXPECT_EQ(got1->record->observed_at, with_record.record->observed_at);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got2, store().dlq_get(id2));
  EXPECT_EQ(got2, without_record);

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto list, store().dlq_list(100));
  EXPECT_EQ(list, (std::vector{with_record, without_record}));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto first, store().dlq_list(1));
  EXPECT_EQ(first, std::vector{with_record});
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto depth, store().dlq_depth());
  EXPECT_EQ(depth, 2);
}

TEST_P(StoreConformanceTest, DlqDeleteAndDepth) {
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto empty_depth, store().dlq_depth());
  EXPECT_EQ(empty_depth, 0);
  std::vector<int64_t> ids;
  for (int i = 0; i < 3; ++i) {
    CONFORMANCE_ASSERT_OK_AND_ASSIGN(int64_t id,
                                     store().dlq_push(make_dlq("a", slot_at(i), i == 1)));
    ids.push_back(id);
  }
  CONFORMANCE_ASSERT_OK(store().dlq_delete(ids[2]));
  Status again = store().dlq_delete(ids[2]);
  EXPECT_EQ(again.code(), Status::Code::kNotFound) << again.ToString();
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto gone, store().dlq_get(ids[2]));
  EXPECT_FALSE(gone.has_value());
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto depth, store().dlq_depth());
  EXPECT_EQ(depth, 2);

  // Ids keep growing after a delete: an id never names two messages.
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(int64_t next,
                                   store().dlq_push(make_dlq("a", slot_at(5), false)));
  EXPECT_GT(next, ids[2]);
  CONFORMANCE_ASSERT_OK(store().dlq_delete(ids[0]));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto list, store().dlq_list(10));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, ids[1]);
  EXPECT_EQ(list[1].id, next);
}

// ---- alarms ----

TEST_P(StoreConformanceTest, AlarmStatesPutGetList) {
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto none, store().alarm_state("dlq_not_empty"));
  EXPECT_FALSE(none.has_value());
  AlarmState dlq{"dlq_not_empty",    AlarmStatus::kAlarm, kT0,
                 "DLQ depth 3 >= 1", AlarmStatus::kOk,    true};
  AlarmState missed{"missed_slots", AlarmStatus::kOk, kT0 + Nanos(5), "", AlarmStatus::kAlarm,
                    false};
  CONFORMANCE_ASSERT_OK(store().put_alarm_state(missed));
  CONFORMANCE_ASSERT_OK(store().put_alarm_state(dlq));

  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto got, store().alarm_state("dlq_not_empty"));
  EXPECT_EQ(got, dlq);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto all, store().alarm_states());
  EXPECT_EQ(all, (std::vector{dlq, missed}));

  dlq.status = AlarmStatus::kOk;
  dlq.since = kT0 + Seconds(30) + Nanos(1);
  dlq.reason = "DLQ depth 0 < 1";
  dlq.previous = AlarmStatus::kAlarm;
  dlq.actions_pending = false;
  CONFORMANCE_ASSERT_OK(store().put_alarm_state(dlq));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto updated, store().alarm_state("dlq_not_empty"));
  EXPECT_EQ(updated, dlq);
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto still_two, store().alarm_states());
  EXPECT_EQ(still_two.size(), 2u);
}

TEST_P(StoreConformanceTest, PingAnswers) {
  CONFORMANCE_ASSERT_OK(store().ping());
}

// ---- concurrency ----

TEST_P(StoreConformanceTest, ConcurrentCommitsOfDistinctSlotsAllLandOnce) {
  constexpr int kThreads = 8;
  constexpr int kSlotsPerThread = 25;
  std::latch start(kThreads);
  std::vector<std::vector<Result<std::vector<bool>>>> results(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < kSlotsPerThread; ++i) {
          ValueRecord r = make_record(fmt::format("feed{}", t), slot_at(i), std::to_string(i));
          results[t].push_back(store().commit_slots(std::vector{published(r)}));
        }
      });
    }
  }
  for (int t = 0; t < kThreads; ++t) {
    for (const auto& r : results[t]) {
      ASSERT_TRUE(r.ok()) << describe(r);
      EXPECT_EQ(*r, std::vector<bool>{true});
    }
  }
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto values,
                                   store().list_values(values_query({}, {}, {}, 1000)));
  EXPECT_EQ(values.size(), static_cast<size_t>(kThreads * kSlotsPerThread));
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto count,
                                   store().count_outcomes(SlotOutcome::kPublished, kWindow));
  EXPECT_EQ(count, kThreads * kSlotsPerThread);
}

TEST_P(StoreConformanceTest, ConcurrentCommitsOfTheSameSlotHaveOneWinner) {
  constexpr int kThreads = 8;
  constexpr int kSlots = 20;
  std::latch start(kThreads);
  // inserted[t][i]: whether thread t's commit of slot i inserted.
  std::vector<std::vector<int>> inserted(kThreads, std::vector<int>(kSlots, -1));
  std::vector<std::string> errors(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < kSlots; ++i) {
          ValueRecord r = make_record("contended", slot_at(i), fmt::format("{}", t));
          auto result = store().commit_slots(std::vector{published(r)});
          if (!result.ok()) {
            errors[t] = describe(result);
            return;
          }
          inserted[t][i] = (*result)[0] ? 1 : 0;
        }
      });
    }
  }
  for (int t = 0; t < kThreads; ++t) ASSERT_EQ(errors[t], "") << "thread " << t;
  for (int i = 0; i < kSlots; ++i) {
    int winners = 0;
    int winner = -1;
    for (int t = 0; t < kThreads; ++t) {
      if (inserted[t][i] == 1) {
        ++winners;
        winner = t;
      }
    }
    ASSERT_EQ(winners, 1) << "slot " << i;
    CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto value,
                                     store().get_value(FeedId("contended"), slot_at(i)));
    ASSERT_TRUE(value.has_value());
    EXPECT_EQ(value->value, std::to_string(winner)) << "slot " << i;
  }
  CONFORMANCE_ASSERT_OK_AND_ASSIGN(auto values,
                                   store().list_values(values_query({}, {}, {}, 1000)));
  EXPECT_EQ(values.size(), static_cast<size_t>(kSlots));
}

}  // namespace metronome::testing
