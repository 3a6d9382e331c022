// Tests for base/process: how children start (signals, stdin), what comes
// back (exit status, captured and streamed output, bounds) and that no child
// outlives an error.
#include "base/process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/error.h"
#include "tests/test_support.h"

namespace {

using namespace dockless;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Sets a signal's disposition for one scope, as the network code does with
// SIGPIPE, and puts the old one back.
class ScopedDisposition {
 public:
  ScopedDisposition(int sig, void (*handler)(int)) : sig_(sig) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig_, &sa, &old_);
  }
  ~ScopedDisposition() { ::sigaction(sig_, &old_, nullptr); }

 private:
  int sig_;
  struct sigaction old_ {};
};

Command shell(const std::string& script) {
  Command c;
  c.argv = {"sh", "-c", script};
  return c;
}

}  // namespace

TEST_CASE("a child dies of SIGPIPE even when this process ignores it", "[process]") {
  ScopedDisposition ignored(SIGPIPE, SIG_IGN);
  // `yes` writing to a pipe nobody reads: with SIGPIPE left ignored it would
  // get EPIPE and exit 1 with a message instead of being killed.
  Pipe p = make_pipe("the test");
  p.read.reset();
  Command c;
  c.argv = {"yes"};
  c.out = ProcessOutput::fd(p.write.get());
  c.err = ProcessOutput::capture();
  ProcessResult r = run_process(c);
  CHECK(r.signal == SIGPIPE);
  CHECK(r.status == 128 + SIGPIPE);
  CHECK(r.err.empty());
}

TEST_CASE("a child starts with no signal blocked", "[process]") {
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  REQUIRE(::pthread_sigmask(SIG_BLOCK, &term, &old) == 0);
  ProcessResult r;
  try {
    // With SIGTERM blocked the shell would go on and exit 3.
    r = run_process(shell("kill -TERM $$; exit 3"));
  } catch (...) {
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw;
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  CHECK(r.status == 128 + SIGTERM);
  CHECK(r.signal == SIGTERM);
}

TEST_CASE("stdin is /dev/null unless given", "[process]") {
  Command c;
  c.argv = {"cat"};
  c.out = ProcessOutput::capture();
  c.timeout = std::chrono::seconds(20);
  auto start = Clock::now();
  ProcessResult r = run_process(c);
  CHECK_FALSE(r.timed_out);
  CHECK(r.status == 0);
  CHECK(r.out.empty());
  CHECK(seconds_since(start) < 10);

  std::string big(3 << 20, 'x');  // more than any pipe buffer
  big += "end";
  c.in = ProcessInput::text(big);
  r = run_process(c);
  CHECK(r.status == 0);
  CHECK(r.out == big);
}

TEST_CASE("exit status as a shell reports it", "[process]") {
  ProcessResult r = run_process(shell("exit 7"));
  CHECK(r.status == 7);
  CHECK(r.signal == 0);
  r = run_process(shell("kill -KILL $$"));
  CHECK(r.status == 128 + SIGKILL);
  CHECK(r.signal == SIGKILL);
}

TEST_CASE("a capture keeps its bound and the child still finishes", "[process]") {
  // About 600 KB, far past the pipe buffer: a child blocked on a full pipe
  // would never print END or exit.
  Command c = shell("yes | head -n 300000; echo END");
  c.out = ProcessOutput::capture(1000);
  ProcessResult r = run_process(c);
  CHECK(r.status == 0);
  CHECK(r.out_truncated);
  CHECK(r.out.size() == 1000);
  CHECK(r.out.substr(0, 4) == "y\ny\n");

  c.out = ProcessOutput::capture(1000, ProcessOutput::Keep::kTail);
  r = run_process(c);
  CHECK(r.status == 0);
  CHECK(r.out_truncated);
  CHECK(r.out.size() == 1000);
  CHECK(r.out.substr(r.out.size() - 6) == "y\nEND\n");

  c.out = ProcessOutput::capture();
  r = run_process(c);
  CHECK_FALSE(r.out_truncated);
  CHECK(r.out.size() == 600004);
}

TEST_CASE("stderr can be captured apart or merged with stdout", "[process]") {
  Command c = shell("echo out; echo err >&2");
  c.out = ProcessOutput::capture();
  c.err = ProcessOutput::capture();
  ProcessResult r = run_process(c);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");
  c.err = ProcessOutput::same_as_stdout();
  r = run_process(c);
  CHECK(r.out == "out\nerr\n");
  CHECK(r.err.empty());
}

TEST_CASE("output streamed line by line", "[process]") {
  std::vector<std::string> lines;
  Command c = shell("printf 'a\\nbb\\n\\nlast'");
  c.out = ProcessOutput::lines([&](std::string_view line) { lines.emplace_back(line); });
  ProcessResult r = run_process(c);
  CHECK(r.status == 0);
  CHECK(lines == std::vector<std::string>{"a", "bb", "", "last"});
}

TEST_CASE("environment and working directory", "[process]") {
  test::TempDir dir;
  Command c = shell("pwd; echo \"$FOO\"; echo \"${HOME-unset}\"");
  c.env = std::vector<std::string>{"FOO=bar", "PATH=/usr/bin:/bin"};
  c.cwd = dir.path();
  c.out = ProcessOutput::capture();
  ProcessResult r = run_process(c);
  CHECK(r.out == std::filesystem::canonical(dir.path()).string() + "\nbar\nunset\n");

  c.cwd = dir / "missing";
  CHECK_THROWS_WITH(run_process(c), Catch::Contains((dir / "missing").string()));
}

TEST_CASE("a missing program is one clear error", "[process]") {
  Command c;
  c.argv = {"dockless-no-such-program"};
  try {
    run_process(c);
    FAIL("no error");
  } catch (const SpawnError& e) {
    CHECK(std::string(e.what()) == "cannot run dockless-no-such-program: not found on PATH");
    CHECK(e.errnum() == ENOENT);
  }
  CHECK_THROWS_AS(spawn_process(c), Error);
}

TEST_CASE("a child is killed and reaped when the caller throws", "[process]") {
  pid_t pid = -1;
  auto start = Clock::now();
  try {
    Command c;
    c.argv = {"sleep", "30"};
    ChildGuard child = spawn_process(c);
    pid = child.pid();
    throw std::runtime_error("caller failed");
  } catch (const std::runtime_error&) {
  }
  REQUIRE(pid > 0);
  int status = 0;
  // Already reaped: no zombie left for us to collect.
  CHECK(::waitpid(pid, &status, WNOHANG) == -1);
  CHECK(errno == ECHILD);
  CHECK(seconds_since(start) < 10);

  // The same through run_process: a line callback that throws.
  start = Clock::now();
  Command c = shell("echo one; exec sleep 30");
  c.out = ProcessOutput::lines([](std::string_view) { throw Error("stop"); });
  CHECK_THROWS_WITH(run_process(c), "stop");
  CHECK(seconds_since(start) < 10);
}

TEST_CASE("reading stops when the child exits, whoever holds its pipes", "[process]") {
  // The background sleep keeps stdout open (like gpg-agent behind a helper).
  Command c = shell("sleep 5 & echo hi");
  c.out = ProcessOutput::capture();
  auto start = Clock::now();
  ProcessResult r = run_process(c);
  CHECK(r.status == 0);
  CHECK(r.out == "hi\n");
  CHECK(seconds_since(start) < 4);
}

TEST_CASE("a timeout kills the child", "[process]") {
  Command c;
  c.argv = {"sleep", "30"};
  c.timeout = std::chrono::milliseconds(200);
  auto start = Clock::now();
  ProcessResult r = run_process(c);
  CHECK(r.timed_out);
  CHECK(r.signal == SIGKILL);
  CHECK(seconds_since(start) < 10);
}
