// Tests for base/file_lock: which locks coexist, which wait, and that a
// signal during the wait does not turn into an error.
#include "base/file_lock.h"

#include <signal.h>
#include <sys/file.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <thread>

#include "base/error.h"
#include "tests/test_support.h"

namespace {

using namespace dockless;
using Clock = std::chrono::steady_clock;

volatile sig_atomic_t alarms = 0;
void on_alarm(int) { alarms = alarms + 1; }

}  // namespace

TEST_CASE("shared locks coexist; exclusive waits for them", "[file_lock]") {
  test::TempDir dir;
  const auto path = dir / "lock";
  FileLock first(path, LockMode::kShared);
  CHECK(std::filesystem::exists(path));  // created on demand
  // Each FileLock opens its own file description, so these conflict like
  // two processes would.
  std::optional<FileLock> second = FileLock::try_lock(path, LockMode::kShared);
  CHECK(second.has_value());
  CHECK_FALSE(FileLock::try_lock(path, LockMode::kExclusive).has_value());
  first.unlock();
  CHECK_FALSE(FileLock::try_lock(path, LockMode::kExclusive).has_value());
  second.reset();
  std::optional<FileLock> alone = FileLock::try_lock(path, LockMode::kExclusive);
  REQUIRE(alone.has_value());
  CHECK_FALSE(FileLock::try_lock(path, LockMode::kShared).has_value());
  alone->change(LockMode::kShared);
  CHECK(FileLock::try_lock(path, LockMode::kShared).has_value());
}

TEST_CASE("a blocking lock waits until the holder lets go", "[file_lock]") {
  test::TempDir dir;
  const auto path = dir / "lock";
  auto holder = std::make_unique<FileLock>(path, LockMode::kExclusive);
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    holder.reset();
  });
  auto start = Clock::now();
  FileLock mine(path, LockMode::kExclusive);
  auto waited = Clock::now() - start;
  release.join();
  CHECK(waited >= std::chrono::milliseconds(250));
}

TEST_CASE("a signal while waiting does not fail the lock", "[file_lock]") {
  test::TempDir dir;
  const auto path = dir / "lock";
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Another process holds the lock for a while (async-signal-safe calls only).
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || ::flock(fd, LOCK_EX) != 0) ::_exit(1);
    char c = 'x';
    if (::write(ready[1], &c, 1) != 1) ::_exit(1);
    ::usleep(500 * 1000);
    ::_exit(0);
  }
  ::close(ready[1]);
  char c;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);

  // No SA_RESTART: flock returns EINTR when the alarm fires.
  struct sigaction sa {}, old {};
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGALRM, &sa, &old);
  alarms = 0;
  itimerval once{};
  once.it_value.tv_usec = 100 * 1000;
  ::setitimer(ITIMER_REAL, &once, nullptr);
  bool locked = false;
  try {
    FileLock mine(path, LockMode::kExclusive);
    locked = mine.held();
  } catch (...) {
    ::sigaction(SIGALRM, &old, nullptr);
    ::waitpid(child, nullptr, 0);
    throw;
  }
  ::sigaction(SIGALRM, &old, nullptr);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(alarms == 1);
  CHECK(locked);
}

TEST_CASE("lock errors name the path", "[file_lock]") {
  test::TempDir dir;
  const auto path = dir / "missing" / "lock";
  CHECK_THROWS_WITH(FileLock(path, LockMode::kShared), Catch::Contains(path.string()));
}
