#include "process/child.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <string>

#include "clock/system_clock.h"

namespace metronome {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

ChildSpec spec(std::vector<std::string> argv, std::optional<size_t> stdout_limit = std::nullopt,
               std::optional<std::string_view> input = std::nullopt) {
  ChildSpec spec;
  spec.argv = std::move(argv);
  spec.stdout_limit = stdout_limit;
  spec.input = input;
  return spec;
}

class ChildTest : public ::testing::Test {
 protected:
  Result<ChildExit> run(ChildSpec spec, Millis limit = 5000ms) {
    return run_child(spec, clock_.monotonic_now() + limit, clock_);
  }
  SystemClock clock_;
};

TEST_F(ChildTest, CapturesStdoutAndExitStatus) {
  auto exit = run(spec({"/bin/sh", "-c", "printf 42; exit 0"}, 100));
  ASSERT_TRUE(exit.ok()) << exit.status().ToString();
  EXPECT_TRUE(exit->succeeded());
  EXPECT_EQ(exit->out, "42");
}

TEST_F(ChildTest, FailureIsDescribedWithTheFirstLineOfStderr) {
  auto exit = run(spec({"/bin/sh", "-c", "echo '  no route\nmore' >&2; exit 3"}));
  ASSERT_TRUE(exit.ok());
  EXPECT_FALSE(exit->succeeded());
  EXPECT_EQ(exit->end, ChildExit::End::kExited);
  EXPECT_EQ(exit->describe(), "exited with status 3 (stderr: no route)");
}

TEST_F(ChildTest, InputReachesStdinAndStdoutCanBeDiscarded) {
  // The child compares its stdin with the expected text; stdout goes to /dev/null.
  const std::string input(200'000, 'x');  // more than a socket buffer: written as it reads
  auto exit = run(
      spec({"/bin/sh", "-c", "test \"$(wc -c)\" -eq 200000 && echo ignored"}, std::nullopt, input));
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->succeeded()) << exit->describe();
  EXPECT_EQ(exit->out, "");
}

TEST_F(ChildTest, AChildThatDoesNotReadItsInputIsNoProblem) {
  const std::string input(1'000'000, 'x');
  auto exit = run(spec({"/bin/true"}, std::nullopt, input));
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->succeeded());
}

TEST_F(ChildTest, TooMuchStdoutKillsIt) {
  auto exit = run(spec({"/bin/sh", "-c", "yes"}, 1000));
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->end, ChildExit::End::kStdoutTooLong);
  EXPECT_EQ(exit->out.size(), 1000u);
}

TEST_F(ChildTest, TimeLimitKillsTheWholeGroup) {
  // The shell's background child holds stdout open: both are killed at the limit.
  auto exit = run(spec({"/bin/sh", "-c", "sleep 30 & sleep 30"}, 100), 150ms);
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->end, ChildExit::End::kTimedOut);
  EXPECT_TRUE(WIFSIGNALED(exit->wait_status));
  EXPECT_EQ(WTERMSIG(exit->wait_status), SIGKILL);
}

TEST_F(ChildTest, StdoutIsCompleteOnlyAtEndOfFile) {
  // The shell exits at once; its background child writes the rest later.
  auto exit = run(spec({"/bin/sh", "-c", "printf 1; (sleep 0.2; printf 2) &"}, 100));
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->succeeded());
  EXPECT_EQ(exit->out, "12");
}

TEST_F(ChildTest, AProgramThatCannotStartIsAnError) {
  auto exit = run(spec({"/nonexistent/tool"}));
  ASSERT_FALSE(exit.ok());
  EXPECT_EQ(exit.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(exit.status().message(), HasSubstr("cannot start: No such file"));
  EXPECT_FALSE(run(spec({})).ok());
}

}  // namespace
}  // namespace metronome
