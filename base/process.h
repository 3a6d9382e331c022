// Running other programs: the one place that spawns a host process (git, uv,
// credential helpers, cp). Every child starts with default signal
// dispositions and an empty signal mask (we ignore SIGPIPE for the network
// code; a child like `yes | head` must not inherit that), stdin from
// /dev/null unless told otherwise, and is killed and reaped if the caller
// throws, so no zombie or orphan outlives an error.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/file_util.h"

namespace dockless {

/// A program could not be started. what() names it; errnum() is the errno
/// of the failed spawn (ENOENT: not on PATH), for callers that word it.
class SpawnError : public Error {
 public:
  SpawnError(const std::string& program, int errnum);
  int errnum() const { return errnum_; }

 private:
  int errnum_;
};

/// Where a child's stdin comes from.
class ProcessInput {
 public:
  /// /dev/null: a child that reads stdin sees end of file at once.
  static ProcessInput null() { return ProcessInput(Kind::kNull); }
  /// These bytes, then end of file. They go through a memory file, so any
  /// size works and the child can never block us or die of SIGPIPE on them.
  static ProcessInput text(std::string bytes);
  /// A descriptor the caller owns (dup'd onto 0 in the child).
  static ProcessInput fd(int fd);
  static ProcessInput inherit() { return ProcessInput(Kind::kInherit); }

  enum class Kind { kNull, kText, kFd, kInherit };
  Kind kind() const { return kind_; }
  const std::string& bytes() const { return bytes_; }
  int descriptor() const { return fd_; }

 private:
  explicit ProcessInput(Kind kind) : kind_(kind) {}
  Kind kind_;
  std::string bytes_;
  int fd_ = -1;
};

/// Where a child's stdout or stderr goes.
class ProcessOutput {
 public:
  enum class Keep { kHead, kTail };
  static constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();

  static ProcessOutput inherit() { return ProcessOutput(Kind::kInherit); }
  /// A descriptor the caller owns (dup'd onto 1 or 2 in the child).
  static ProcessOutput fd(int fd);
  /// Collected into ProcessResult::out/err. Past `max_bytes` we keep reading
  /// (the child never blocks on a full pipe) and keep the first or the last
  /// `max_bytes` as `keep` says; ProcessResult says the text was cut.
  static ProcessOutput capture(std::size_t max_bytes = kUnbounded, Keep keep = Keep::kHead);
  /// Each line, without its '\n', as it arrives; a line longer than 1 MiB
  /// is passed on in pieces, and a last line without '\n' is passed at the end.
  static ProcessOutput lines(std::function<void(std::string_view)> on_line);
  /// For stderr only: the same place as stdout (one merged capture).
  static ProcessOutput same_as_stdout() { return ProcessOutput(Kind::kSameAsStdout); }

  enum class Kind { kInherit, kFd, kCapture, kLines, kSameAsStdout };
  Kind kind() const { return kind_; }
  int descriptor() const { return fd_; }
  std::size_t max_bytes() const { return max_bytes_; }
  Keep keep() const { return keep_; }
  const std::function<void(std::string_view)>& on_line() const { return on_line_; }

 private:
  explicit ProcessOutput(Kind kind) : kind_(kind) {}
  Kind kind_;
  int fd_ = -1;
  std::size_t max_bytes_ = kUnbounded;
  Keep keep_ = Keep::kHead;
  std::function<void(std::string_view)> on_line_;
};

/// What to run and how.
struct Command {
  std::vector<std::string> argv;  ///< argv[0] is looked up on PATH unless it has a '/'
  std::optional<std::vector<std::string>> env;  ///< "K=V" entries; nullopt: ours
  std::filesystem::path cwd;                    ///< empty: ours
  ProcessInput in = ProcessInput::null();
  ProcessOutput out = ProcessOutput::inherit();
  ProcessOutput err = ProcessOutput::inherit();
  /// After this the child is killed and ProcessResult::timed_out is set.
  std::optional<std::chrono::milliseconds> timeout;
};

struct ProcessResult {
  int status = 0;       ///< as a shell reports it: the exit code, or 128+N
  int signal = 0;       ///< N when killed by signal N, else 0
  bool timed_out = false;
  std::string out;      ///< captured stdout (and stderr when merged)
  std::string err;      ///< captured stderr
  bool out_truncated = false;
  bool err_truncated = false;
};

/// Owns a child process: unless it was waited for or released, the
/// destructor kills it (its process group too with kill_group, for a child
/// that leads one) and reaps it.
class ChildGuard {
 public:
  ChildGuard() = default;
  explicit ChildGuard(pid_t pid, bool kill_group = false) : pid_(pid), kill_group_(kill_group) {}
  ChildGuard(ChildGuard&& other) noexcept;
  ChildGuard& operator=(ChildGuard&& other) noexcept;
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard();

  pid_t pid() const { return pid_; }
  /// Blocks until the child exits (EINTR retried); returns its shell status.
  int wait();
  /// The shell status if the child has exited, else nullopt; never blocks.
  std::optional<int> try_wait();
  /// The raw waitpid status of the last wait()/try_wait() that reaped it.
  int wait_status() const { return wait_status_; }
  /// SIGKILL (to the group too with kill_group) and reap now.
  void kill_and_reap() noexcept;
  /// Forget the child (the caller reaps it some other way).
  void release() { pid_ = -1; }

 private:
  pid_t pid_ = -1;
  bool kill_group_ = false;
  int wait_status_ = 0;
};

/// A waitpid status as a shell reports it: the exit code, or 128+N.
int shell_status(int wait_status);

/// A close-on-exec pipe whose ends are both above fd 2 (so dup2'ing them onto
/// 0/1/2 in a child never clobbers one another); `what` goes into errors.
/// fd moved to 3 or above (closing the original): a child dup2()s its stdio
/// over 0..2, which would clobber a pipe the kernel gave a low number (when
/// dockless runs with stdin closed). Throws Error(what) when fd < 0.
UniqueFd above_stdio(int fd, const std::string& what);

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};
Pipe make_pipe(const std::string& what);

/// Starts the command and returns at once. Only inherit/fd/null streams are
/// allowed here (capture and lines need run_process to pump them).
ChildGuard spawn_process(const Command& command);

/// Runs the command to its end, pumping captured and line-streamed output.
/// Once the child has exited, what is already in its pipes is taken and
/// reading stops, even if a grandchild (an agent, a daemon) keeps them open.
ProcessResult run_process(const Command& command);

}  // namespace dockless
