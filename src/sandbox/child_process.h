// The fork/exec plumbing every isolation mode shares: the failure protocol
// between a child and its parent (a child that cannot set up writes a
// ChildFailure record to a close-on-exec pipe and exits, and the parent
// turns the record into one Error line), the async-signal-safe helpers the
// children use, the command's exec plan, and the parent's side of a child
// (process-group guard, output pump, pipes).
//
// Between fork() and exec() the children only make system calls on data the
// parent prepared (strings, argv/envp arrays, mount plans): the parent may be
// multithreaded, so the children take no locks (no malloc, no iostreams).
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/file_util.h"
#include "base/process.h"
#include "src/sandbox/sandbox.h"

namespace dockless::sandbox_detail {

// ---------------------------------------------------------------------------
// The failure protocol between children and parent.

// Exit status of a child whose setup failed; the reason is in the error pipe.
constexpr int kSetupFailedStatus = 125;

struct ChildFailure {
  int step = -1;   ///< index into Steps
  int err = 0;     ///< errno; 0 when `status` tells what happened
  int status = 0;  ///< exit status of a helper (fuse-overlayfs) when err == 0
};

/// Descriptions of what a child does, by index, so that a child only sends
/// two numbers and the parent writes the sentence.
class Steps {
 public:
  int add(std::string what) {
    items_.push_back(std::move(what));
    return static_cast<int>(items_.size()) - 1;
  }
  std::string describe(const ChildFailure& f) const {
    std::string what = f.step >= 0 && static_cast<std::size_t>(f.step) < items_.size()
                           ? items_[static_cast<std::size_t>(f.step)]
                           : "set up the sandbox";
    if (f.err != 0) return what + ": " + std::strerror(f.err);
    return what + ": exited with status " + std::to_string(f.status);
  }

 private:
  std::vector<std::string> items_;
};

/// Child-side: sends the failure record (a step of Steps, errno or a
/// helper's exit status) on errfd and exits with kSetupFailedStatus.
[[noreturn]] void child_fail(int errfd, int step, int err, int status = 0);

/// The first failure record a child sent, if any. All writers are gone when
/// this is called (the direct child has been reaped).
std::optional<ChildFailure> read_failure(int errfd);

// ---------------------------------------------------------------------------
// Async-signal-safe helpers for the children.

/// Default dispositions for every signal and an empty signal mask.
void reset_signals();

/// Closes every fd >= 3 except those in keep (sorted ascending).
void close_fds_except(const int* keep, int count);

/// "/proc/self/fd/N" without allocating.
void fd_path(int fd, char (&buf)[32]);

/// The exit status a wait status stands for: 128+N when killed by signal N.
int status_code(int wait_status);

// ---------------------------------------------------------------------------
// Running the command: PATH lookup from the sandbox's own environment.

struct ExecPlan {
  std::vector<std::string> argv_store;
  std::vector<std::string> env_store;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::vector<std::string> candidates;  ///< full paths to try, in order
  std::string workdir;
  int step_workdir = -1;
  int step_exec = -1;
  // SandboxSpec::user: switched to after the sandbox is set up.
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  int step_user = -1;
};

/// The argv/envp arrays and the PATH candidates for spec.argv[0], prepared in
/// the parent; adds the steps "change to the working directory" and "run".
ExecPlan make_exec_plan(const SandboxSpec& spec, Steps& steps, const std::string& workdir);

/// Makes `p` run as spec.user: the ids resolved against the image's files
/// (layers over rootfs), and HOME from passwd unless spec.env has one.
/// No-op when spec.user is empty.
void set_exec_user(ExecPlan& p, const SandboxSpec& spec, const std::vector<std::filesystem::path>& layers,
                   const std::filesystem::path& rootfs, Steps& steps);

/// Child-side: brings the loopback interface of this (new) network
/// namespace up. Returns 0, or -1 with errno set.
int bring_loopback_up();

/// Child-side: resets signals, switches user (p.switch_user), changes to
/// p.workdir and execs the first candidate that runs; reports a failure on
/// errfd.
[[noreturn]] void child_exec(const ExecPlan& p, int errfd);

// ---------------------------------------------------------------------------
// The parent's side of a child: the output pump. (ChildGuard, Pipe and
// make_pipe are base/process.h's; guards here kill the whole process group.)

/// Forwards the child's output line by line until the child exits, then
/// kills what is left of its process group (daemons it started), drains the
/// pipe and reaps the child. Returns the wait status.
int pump_output(pid_t pid, int outfd, const std::function<void(std::string_view)>& on_output);

/// /dev/null open for reading and writing, at fd 3 or above.
UniqueFd open_devnull(const std::string& prefix);

// ---------------------------------------------------------------------------
// kChroot and kHost: one child that (maybe) chroots and execs.

/// Forks a child that chroots into `root` (unless it is null) and execs
/// `exec`, and forwards its output; the wait status and the child's failure
/// record, if any.
/// With `step_net` >= 0 the child first enters a new network namespace
/// with only loopback (SandboxSpec::network == kNone; needs root).
std::pair<int, std::optional<ChildFailure>> run_simple(const SandboxSpec& spec, const char* root,
                                                      int step_chroot, const ExecPlan& exec,
                                                      const std::string& prefix, int step_net = -1);

}  // namespace dockless::sandbox_detail
