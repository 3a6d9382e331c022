// The sandbox uv runs in. Three modes (see sandbox.h and DESIGN.md "Isolation
// modes"); all share the output pump (one pipe for stdout+stderr, split into
// lines) and the failure protocol: a child that cannot set up writes a
// ChildFailure record to a close-on-exec pipe and exits, and the parent turns
// the record into one Error line.
//
// Between fork() and exec() the children only make system calls on data the
// parent prepared (strings, argv/envp arrays, mount plans): the parent may be
// multithreaded, so the children take no locks (no malloc, no iostreams).

#include "src/sandbox/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "base/error.h"
#include "base/file_util.h"

extern char** environ;

// System calls that older C libraries do not wrap or declare (the numbers are
// the same on every architecture since Linux 5.x's unified syscall table).
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

namespace dockless {
namespace {

namespace fs = std::filesystem;

// Own copies of the kernel ABI structs: <linux/mount.h> clashes with
// <sys/mount.h> on some glibc versions.
struct OpenHow {
  std::uint64_t flags;
  std::uint64_t mode;
  std::uint64_t resolve;
};
constexpr std::uint64_t kResolveNoMagiclinks = 0x02;
constexpr std::uint64_t kResolveInRoot = 0x10;

struct MountAttr {
  std::uint64_t attr_set;
  std::uint64_t attr_clr;
  std::uint64_t propagation;
  std::uint64_t userns_fd;
};
constexpr std::uint64_t kMountAttrRdonly = 0x1;
constexpr unsigned kAtRecursive = 0x8000;
constexpr unsigned kCloseRangeCloexec = 1U << 2;

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kUsernsHint = "; try --isolation chroot (as root) or --isolation host";

void note(const SandboxSpec& spec, const std::string& text) {
  if (spec.on_note) spec.on_note(text);
}

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

[[noreturn]] void child_fail(int errfd, int step, int err, int status = 0) {
  ChildFailure f;
  f.step = step;
  f.err = err;
  f.status = status;
  if (::write(errfd, &f, sizeof f) < 0) {
    // Nothing left to tell anyone; the exit status still says "setup failed".
  }
  ::_exit(kSetupFailedStatus);
}

/// The first failure record a child sent, if any. All writers are gone when
/// this is called (the direct child has been reaped).
std::optional<ChildFailure> read_failure(int errfd) {
  ChildFailure f;
  ssize_t n;
  do n = ::read(errfd, &f, sizeof f);
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof f)) return f;
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Async-signal-safe helpers for the children.

void reset_signals() {
  // Handlers and ignored signals of the parent (SIGPIPE ignored by network
  // code, Catch2's crash handlers) must not leak into the command.
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &sa, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

/// Closes every fd >= 3 except those in keep (sorted ascending).
void close_fds_except(const int* keep, int count) {
  unsigned first = 3;
  for (int i = 0; i <= count; ++i) {
    unsigned last = i < count ? static_cast<unsigned>(keep[i]) : ~0U;
    if (i < count && last < first) continue;
    if (i < count && last == first) {
      first = last + 1;
      continue;
    }
    unsigned upto = i < count ? last - 1 : ~0U;
    if (::syscall(SYS_close_range, first, upto, 0U) != 0) {
      unsigned stop = upto > 65535 ? 65535 : upto;
      for (unsigned fd = first; fd <= stop; ++fd) ::close(static_cast<int>(fd));
    }
    if (i < count) first = last + 1;
  }
}

/// Marks every fd >= 3 close-on-exec: nothing the parent opened reaches the
/// command, while the failure pipe stays usable until exec succeeds.
void cloexec_all_fds() {
  if (::syscall(SYS_close_range, 3U, ~0U, kCloseRangeCloexec) == 0) return;
  for (int fd = 3; fd < 65536; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/// "/proc/self/fd/N" without allocating.
void fd_path(int fd, char (&buf)[32]) {
  const char prefix[] = "/proc/self/fd/";
  std::memcpy(buf, prefix, sizeof prefix - 1);
  char digits[16];
  int n = 0;
  unsigned v = static_cast<unsigned>(fd);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  std::size_t pos = sizeof prefix - 1;
  while (n > 0) buf[pos++] = digits[--n];
  buf[pos] = '\0';
}

int status_code(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return kSetupFailedStatus;
}

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
};

ExecPlan make_exec_plan(const SandboxSpec& spec, Steps& steps, const std::string& workdir) {
  ExecPlan p;
  p.argv_store = spec.argv;
  p.env_store = spec.env;
  for (auto& a : p.argv_store) p.argv.push_back(a.data());
  p.argv.push_back(nullptr);
  for (auto& e : p.env_store) p.envp.push_back(e.data());
  p.envp.push_back(nullptr);
  p.workdir = workdir;

  const std::string& name = spec.argv[0];
  std::string path = kDefaultPath;
  for (const auto& e : spec.env) {
    if (e.rfind("PATH=", 0) == 0) {
      path = e.substr(5);
      break;  // the first one is what getenv() in the command would see
    }
  }
  if (name.find('/') != std::string::npos) {
    p.candidates.push_back(name);
  } else {
    std::size_t start = 0;
    for (;;) {
      std::size_t colon = path.find(':', start);
      std::string dir = path.substr(start, colon == std::string::npos ? colon : colon - start);
      if (dir.empty()) dir = ".";
      p.candidates.push_back(dir + "/" + name);
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }
  p.step_workdir = steps.add("change to the working directory " + workdir);
  p.step_exec = steps.add("run '" + name + "'" +
                          (name.find('/') == std::string::npos ? " (PATH=" + path + ")" : ""));
  return p;
}

[[noreturn]] void child_exec(const ExecPlan& p, int errfd) {
  reset_signals();
  ::umask(022);  // the files uv writes become layer content: same modes on every host
  if (::chdir(p.workdir.c_str()) != 0) child_fail(errfd, p.step_workdir, errno);
  cloexec_all_fds();
  bool denied = false;
  for (const auto& c : p.candidates) {
    ::execve(c.c_str(), p.argv.data(), p.envp.data());
    int e = errno;
    if (e == EACCES) {
      denied = true;
    } else if (e != ENOENT && e != ENOTDIR) {
      child_fail(errfd, p.step_exec, e);
    }
  }
  child_fail(errfd, p.step_exec, denied ? EACCES : ENOENT);
}

// ---------------------------------------------------------------------------
// The parent's side of a child: process-group kill on every exit path, and
// the output pump.

/// Kills the child's whole process group and reaps the child unless released.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  void release() { pid_ = -1; }

 private:
  pid_t pid_;
};

class LineSplitter {
 public:
  explicit LineSplitter(const std::function<void(std::string_view)>& fn) : fn_(fn) {}
  void feed(const char* data, std::size_t n) {
    buf_.append(data, n);
    std::size_t start = 0;
    for (;;) {
      std::size_t nl = buf_.find('\n', start);
      if (nl == std::string::npos) break;
      emit(std::string_view(buf_).substr(start, nl - start));
      start = nl + 1;
    }
    buf_.erase(0, start);
    // A command that never ends a line must not grow memory without bound.
    if (buf_.size() > kMaxLine) {
      emit(buf_);
      buf_.clear();
    }
  }
  void finish() {
    if (!buf_.empty()) emit(buf_);
    buf_.clear();
  }

 private:
  static constexpr std::size_t kMaxLine = 1 << 20;
  void emit(std::string_view line) {
    if (fn_) fn_(line);
  }
  const std::function<void(std::string_view)>& fn_;
  std::string buf_;
};

/// Forwards the child's output line by line until the child exits, then
/// kills what is left of its process group (daemons it started), drains the
/// pipe and reaps the child. Returns the wait status.
int pump_output(pid_t pid, int outfd, const std::function<void(std::string_view)>& on_output) {
  LineSplitter lines(on_output);
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  bool out_open = true;
  char buf[65536];
  for (;;) {
    pollfd pfd[2];
    int n = 0;
    if (out_open) pfd[n++] = {outfd, POLLIN, 0};
    if (pidfd) pfd[n++] = {pidfd.get(), POLLIN, 0};
    // Without a pidfd (Linux < 5.3) poll with a timeout and ask waitid.
    int r = ::poll(pfd, static_cast<nfds_t>(n), pidfd ? -1 : 50);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno("poll the sandbox output");
    }
    bool exited = false;
    for (int i = 0; i < n; ++i) {
      if (pfd[i].fd == outfd && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        ssize_t got = ::read(outfd, buf, sizeof buf);
        if (got > 0) {
          lines.feed(buf, static_cast<std::size_t>(got));
        } else if (got == 0 || errno != EINTR) {
          out_open = false;
        }
      } else if (pidfd && pfd[i].fd == pidfd.get() && pfd[i].revents != 0) {
        exited = true;
      }
    }
    if (!pidfd) {
      siginfo_t si;
      std::memset(&si, 0, sizeof si);
      if (::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          si.si_pid == pid)
        exited = true;
    }
    if (exited) break;
  }
  // The child is a zombie until reaped, so its pid (= the group id) cannot be
  // reused by an unrelated process before this kill.
  ::kill(-pid, SIGKILL);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) throw_errno("wait for the sandbox");
  }
  if (out_open) {
    ::fcntl(outfd, F_SETFL, ::fcntl(outfd, F_GETFL) | O_NONBLOCK);
    for (;;) {
      ssize_t got = ::read(outfd, buf, sizeof buf);
      if (got > 0) {
        lines.feed(buf, static_cast<std::size_t>(got));
        continue;
      }
      if (got < 0 && errno == EINTR) continue;
      break;
    }
  }
  lines.finish();
  return st;
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

/// fd moved to 3 or above: a child dup2()s its stdio over 0..2, which would
/// clobber a pipe the kernel gave a low number (dockless run with stdin closed).
UniqueFd above_stdio(int fd, const std::string& what) {
  if (fd < 0) throw_errno(what);
  if (fd > 2) return UniqueFd(fd);
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int e = errno;
  ::close(fd);
  if (moved < 0) throw_errno(what, e);
  return UniqueFd(moved);
}

Pipe make_pipe(const std::string& what) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("create a pipe for " + what);
  UniqueFd r = above_stdio(fds[0], "create a pipe for " + what);
  UniqueFd w = above_stdio(fds[1], "create a pipe for " + what);
  return Pipe{std::move(r), std::move(w)};
}

UniqueFd open_devnull(const std::string& prefix) {
  return above_stdio(::open("/dev/null", O_RDWR | O_CLOEXEC), prefix + "open /dev/null");
}

// ---------------------------------------------------------------------------
// Helpers for the parent: tools, files, paths.

struct ToolResult {
  int status = -1;  ///< exit status, 128+signal, or -1 when it could not start
  std::string output;
};

/// Runs a host tool (cp, newuidmap) with stdout+stderr captured.
ToolResult run_tool(const std::vector<std::string>& argv) {
  ToolResult result;
  Pipe p = make_pipe(argv[0]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p.write.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, p.write.get(), 2);
  std::vector<char*> args;
  std::vector<std::string> store = argv;
  for (auto& a : store) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawnp(&pid, store[0].c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  p.write.reset();
  if (rc != 0) {
    result.output = std::string("cannot run ") + argv[0] + ": " + std::strerror(rc);
    return result;
  }
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(p.read.get(), buf, sizeof buf);
    if (n > 0) {
      if (result.output.size() < 16384) result.output.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  result.status = status_code(st);
  // One line for an error message: the first, and how many more there were.
  std::istringstream in(result.output);
  std::string first;
  std::string line;
  int more = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (first.empty())
      first = line;
    else
      ++more;
  }
  result.output = first + (more > 0 ? " (and " + std::to_string(more) + " more lines)" : "");
  return result;
}

/// An executable on the host's PATH or in the usual system directories.
std::optional<std::string> find_program(const std::string& name) {
  std::string path;
  if (const char* p = std::getenv("PATH"); p != nullptr) path = p;
  path += ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  std::size_t start = 0;
  for (;;) {
    std::size_t colon = path.find(':', start);
    std::string dir = path.substr(start, colon == std::string::npos ? colon : colon - start);
    if (!dir.empty() && dir[0] == '/') {
      std::string full = dir + "/" + name;
      if (::access(full.c_str(), X_OK) == 0) return full;
    }
    if (colon == std::string::npos) return std::nullopt;
    start = colon + 1;
  }
}

/// cp -a of a file or directory to `to` (which must not exist). Reflinks
/// where the filesystem has them, so a copy of a rootfs is cheap on xfs/btrfs.
void copy_tree(const fs::path& from, const fs::path& to, const std::string& prefix) {
  ToolResult r = run_tool({"cp", "-a", "--reflink=auto", "-T", "--", from.string(), to.string()});
  if (r.status != 0 && r.output.find("reflink") != std::string::npos) {
    // busybox cp has no --reflink.
    std::error_code ec;
    fs::remove_all(to, ec);
    r = run_tool({"cp", "-a", "-T", "--", from.string(), to.string()});
  }
  if (r.status != 0)
    throw Error(prefix + "copy " + from.string() + " to " + to.string() + ": " +
                (r.output.empty() ? "cp failed with status " + std::to_string(r.status)
                                  : r.output));
}

/// A fresh directory for one sandbox run under the caller's scratch dir,
/// removed afterwards unless keep() was called.
class RunDir {
 public:
  RunDir(const fs::path& scratch, const std::string& prefix) {
    std::error_code ec;
    fs::create_directories(scratch, ec);
    std::string tmpl = (scratch / "sandbox-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw_errno(prefix + "create a directory in the scratch dir " + scratch.string());
    path_ = tmpl;
  }
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;
  ~RunDir() {
    if (!keep_) remove_tree(path_);
  }
  const fs::path& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  fs::path path_;
  bool keep_ = false;
};

/// "opt/out" for "/opt/out": the path below the sandbox root, lexically
/// normalised (".." cannot climb above the root).
std::string path_in_root(const std::string& abs, const std::string& what) {
  if (abs.empty() || abs[0] != '/') throw UsageError(what + " must be an absolute path: '" + abs + "'");
  std::string rel = fs::path(abs).lexically_normal().relative_path().string();
  while (!rel.empty() && rel.back() == '/') rel.pop_back();
  return rel;
}

std::vector<std::string> split_path(const std::string& p) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= p.size()) {
    std::size_t slash = p.find('/', start);
    if (slash == std::string::npos) slash = p.size();
    if (slash > start) out.push_back(p.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

/// `rel` resolved below `root` the way the kernel would after chroot(root):
/// absolute symlinks and ".." stay inside root. Missing components are kept
/// as they are. (openat2 RESOLVE_IN_ROOT does this, but chroot mode must work
/// on kernels older than 5.6.)
fs::path resolve_in_root(const fs::path& root, const std::string& rel) {
  std::deque<std::string> todo;
  for (auto& c : split_path(rel)) todo.push_back(c);
  std::vector<std::string> done;
  int links = 0;
  while (!todo.empty()) {
    std::string c = todo.front();
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    fs::path cur = root;
    for (const auto& d : done) cur /= d;
    cur /= c;
    struct stat st;
    if (::lstat(cur.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      if (++links > 40)
        throw Error("resolve /" + rel + " in " + root.string() + ": too many symbolic links");
      std::string target = fs::read_symlink(cur).string();
      if (!target.empty() && target[0] == '/') done.clear();
      auto parts = split_path(target);
      todo.insert(todo.begin(), parts.begin(), parts.end());
      continue;
    }
    done.push_back(c);
  }
  fs::path out = root;
  for (const auto& d : done) out /= d;
  return out;
}

void check_common(const SandboxSpec& spec, const std::string& prefix, bool needs_rootfs) {
  if (spec.argv.empty() || spec.argv[0].empty()) throw UsageError(prefix + "no command to run");
  if (spec.workdir.empty() || spec.workdir[0] != '/')
    throw UsageError(prefix + "the working directory must be absolute: '" + spec.workdir + "'");
  if (needs_rootfs) {
    std::error_code ec;
    if (spec.rootfs.empty() || !fs::is_directory(spec.rootfs, ec))
      throw Error(prefix + "the root filesystem " + spec.rootfs.string() + " is not a directory");
    if (spec.scratch.empty()) throw UsageError(prefix + "no scratch directory given");
  }
  for (const auto& b : spec.binds) {
    struct stat st;
    if (::stat(b.host.c_str(), &st) != 0) throw_errno(prefix + "bind source " + b.host.string());
    if (path_in_root(b.target, "bind target").empty())
      throw UsageError(prefix + "cannot bind " + b.host.string() + " over the whole root");
  }
}

// ---------------------------------------------------------------------------
// kUserns: user + mount + pid + ipc namespaces, overlay, pivot_root.
//
// Processes: the caller forks C1, which unshares the namespaces and waits
// while the caller writes its uid/gid maps; C1 forks C2, pid 1 of the new
// pid namespace, which mounts everything (a fresh /proc needs a process
// inside the pid namespace), pivots and forks C3, the command. C2 stays as a
// minimal init: it reaps orphans and exits with C3's status, and its exit
// kills whatever C3 left behind. Nothing is mounted in the caller's mount
// namespace.

struct MountOp {
  enum class Kind { kBind, kFs, kProc, kMkdir, kSymlink };
  Kind kind = Kind::kBind;
  std::string source;  ///< bind source, fs source name, or symlink content
  std::string target;  ///< below the new root, no leading '/'
  std::string fstype;
  std::string data;
  unsigned long flags = 0;
  bool is_file = false;    ///< the target is (created as) an empty file
  bool read_only = false;  ///< remount read-only after a bind
  bool optional = false;   ///< a failure is ignored (e.g. devpts)
  int step = -1;
};

struct UsernsPlan {
  RootfsMethod method = RootfsMethod::kOverlay;
  std::string merged;  ///< the new root: overlay mount point, or the private copy
  std::string overlay_data_userxattr;
  std::string overlay_data;
  std::vector<std::string> fuse_store;
  std::vector<char*> fuse_argv;
  std::string fuse_log;  ///< its messages: for the error, not the command's output
  std::vector<MountOp> ops;
  ExecPlan exec;
  int step_unshare = -1;
  int step_fork = -1;
  int step_private = -1;
  int step_rootfs = -1;
  int step_open_root = -1;
  int step_pivot = -1;
};

long openat2_in_root(int rootfd, const char* rel, int flags) {
  OpenHow how;
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.mode = 0;
  how.resolve = kResolveInRoot | kResolveNoMagiclinks;
  return ::syscall(SYS_openat2, rootfd, rel[0] != '\0' ? rel : ".", &how, sizeof how);
}

/// Child-side: creates `name` in dirfd as a dir or an empty file. A dangling
/// symlink in its place (the image's /etc/resolv.conf -> ../run/...) is
/// replaced: this only changes the sandbox's own tree.
int create_in(int dirfd, const char* name, bool is_file) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    int r;
    if (is_file) {
      r = ::openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (r >= 0) ::close(r);
    } else {
      r = ::mkdirat(dirfd, name, 0755);
    }
    if (r >= 0) return 0;
    if (errno != EEXIST || attempt > 0) return -1;
    ::unlinkat(dirfd, name, 0);
  }
  return -1;
}

/// Child-side: an O_PATH fd for `rel` below rootfd, resolved as if rootfd
/// were "/" (so an image's absolute symlinks never reach the host), creating
/// missing directories and, when is_file, the last component as a file.
/// Returns -1 with errno set on failure.
int open_in_root(int rootfd, const char* rel, bool is_file) {
  int fd = static_cast<int>(openat2_in_root(rootfd, rel, O_PATH));
  if (fd >= 0 || errno != ENOENT) return fd;
  char buf[4096];
  std::size_t len = std::strlen(rel);
  if (len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(buf, rel, len + 1);
  int parent = static_cast<int>(openat2_in_root(rootfd, "", O_PATH));
  if (parent < 0) return -1;
  std::size_t start = 0;
  for (;;) {
    std::size_t end = start;
    while (buf[end] != '\0' && buf[end] != '/') ++end;
    bool last = buf[end] == '\0';
    char saved = buf[end];
    buf[end] = '\0';
    fd = static_cast<int>(openat2_in_root(rootfd, buf, O_PATH));
    if (fd < 0 && errno == ENOENT) {
      if (create_in(parent, buf + start, last && is_file) == 0)
        fd = static_cast<int>(openat2_in_root(rootfd, buf, O_PATH));
    }
    int e = errno;
    ::close(parent);
    if (fd < 0) {
      errno = e;
      return -1;
    }
    if (last) return fd;
    buf[end] = saved;
    parent = fd;
    start = end + 1;
  }
}

/// Child-side: makes the mount at fd (and the mounts below it) read-only,
/// keeping the flags a user namespace may not clear (nosuid, nodev, ...).
int make_read_only(int fd) {
  MountAttr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.attr_set = kMountAttrRdonly;
  if (::syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | kAtRecursive, &attr, sizeof attr) == 0)
    return 0;
  if (errno != ENOSYS) return -1;
  struct statvfs sv;
  if (::fstatvfs(fd, &sv) != 0) return -1;
  unsigned long keep = sv.f_flag & (ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_NOATIME |
                                    ST_NODIRATIME | ST_RELATIME);
  char path[32];
  fd_path(fd, path);
  return ::mount(nullptr, path, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, nullptr);
}

void run_op(int rootfd, const MountOp& op, int errfd) {
  using Kind = MountOp::Kind;
  if (op.kind == Kind::kMkdir) {
    int fd = open_in_root(rootfd, op.target.c_str(), false);
    if (fd < 0) child_fail(errfd, op.step, errno);
    ::close(fd);
    return;
  }
  if (op.kind == Kind::kSymlink) {
    char buf[4096];
    std::size_t len = op.target.size();
    if (len >= sizeof buf) child_fail(errfd, op.step, ENAMETOOLONG);
    std::memcpy(buf, op.target.c_str(), len + 1);
    char* slash = std::strrchr(buf, '/');
    const char* name = buf;
    const char* parent_rel = "";
    if (slash != nullptr) {
      *slash = '\0';
      parent_rel = buf;
      name = slash + 1;
    }
    int dir = open_in_root(rootfd, parent_rel, false);
    if (dir < 0) child_fail(errfd, op.step, errno);
    if (::symlinkat(op.source.c_str(), dir, name) != 0 && errno != EEXIST && !op.optional)
      child_fail(errfd, op.step, errno);
    ::close(dir);
    return;
  }
  int fd = open_in_root(rootfd, op.target.c_str(), op.is_file);
  if (fd < 0) {
    if (op.optional) return;
    child_fail(errfd, op.step, errno);
  }
  char path[32];
  fd_path(fd, path);
  int r;
  if (op.kind == Kind::kProc) {
    r = ::mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    // A fresh proc is refused where the host's /proc has masked parts (some
    // container runtimes); the host's /proc is the fallback.
    if (r != 0) r = ::mount("/proc", path, nullptr, MS_BIND | MS_REC, nullptr);
  } else if (op.kind == Kind::kBind) {
    r = ::mount(op.source.c_str(), path, nullptr, MS_BIND | MS_REC, nullptr);
  } else {
    r = ::mount(op.source.c_str(), path, op.fstype.c_str(), op.flags,
                op.data.empty() ? nullptr : op.data.c_str());
  }
  int e = errno;
  ::close(fd);
  if (r != 0) {
    if (op.optional) return;
    child_fail(errfd, op.step, e);
  }
  if (op.read_only) {
    // Reopen: the fd above is the dir under the new mount, not its root.
    fd = open_in_root(rootfd, op.target.c_str(), op.is_file);
    if (fd < 0 || make_read_only(fd) != 0) child_fail(errfd, op.step, errno);
    ::close(fd);
  }
}

[[noreturn]] void userns_init(const UsernsPlan& plan, int errfd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Private, so nothing mounted here propagates back to the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    child_fail(errfd, plan.step_private, errno);
  const char* merged = plan.merged.c_str();
  switch (plan.method) {
    case RootfsMethod::kAuto:
    case RootfsMethod::kOverlay:
      // userxattr: trusted.* xattrs need CAP_SYS_ADMIN in the initial
      // namespace; without the option on kernels that lack it.
      if (::mount("overlay", merged, "overlay", 0, plan.overlay_data_userxattr.c_str()) != 0) {
        int first = errno;
        if (::mount("overlay", merged, "overlay", 0, plan.overlay_data.c_str()) != 0)
          child_fail(errfd, plan.step_rootfs, first == EINVAL ? errno : first);
      }
      break;
    case RootfsMethod::kFuseOverlayfs: {
      pid_t pid = ::fork();
      if (pid < 0) child_fail(errfd, plan.step_rootfs, errno);
      if (pid == 0) {
        int log = ::open(plan.fuse_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ::dup2(log >= 0 ? log : 0, 1);
        ::dup2(log >= 0 ? log : 0, 2);
        char* no_env[] = {nullptr};
        ::execve(plan.fuse_argv[0], plan.fuse_argv.data(), no_env);
        ::_exit(127);
      }
      int st = 0;
      while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
      if (status_code(st) != 0) child_fail(errfd, plan.step_rootfs, 0, status_code(st));
      break;
    }
    case RootfsMethod::kCopy:
      // pivot_root needs a mount point.
      if (::mount(merged, merged, nullptr, MS_BIND | MS_REC, nullptr) != 0)
        child_fail(errfd, plan.step_rootfs, errno);
      break;
  }
  int rootfd = ::open(merged, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) child_fail(errfd, plan.step_open_root, errno);
  for (const auto& op : plan.ops) run_op(rootfd, op, errfd);

  // pivot_root(".", ".") stacks the old root on the new one; detaching it
  // leaves nothing of the host's / reachable.
  if (::fchdir(rootfd) != 0 || ::syscall(SYS_pivot_root, ".", ".") != 0 ||
      ::umount2(".", MNT_DETACH) != 0 || ::chdir("/") != 0)
    child_fail(errfd, plan.step_pivot, errno);
  ::close(rootfd);

  pid_t cmd = ::fork();
  if (cmd < 0) child_fail(errfd, plan.step_fork, errno);
  if (cmd == 0) child_exec(plan.exec, errfd);
  ::close(errfd);
  ::dup2(0, 1);  // only the command and its children hold the output pipe
  ::dup2(0, 2);
  for (;;) {
    int st = 0;
    pid_t p = ::waitpid(-1, &st, 0);
    if (p < 0) {
      if (errno == EINTR) continue;
      ::_exit(kSetupFailedStatus);
    }
    if (p == cmd) ::_exit(status_code(st));
  }
}

struct UsernsFds {
  pid_t parent = 0;
  int devnull = -1;
  int out = -1;
  int err = -1;
  int sync_up = -1;    ///< C1 -> parent: namespaces created
  int sync_down = -1;  ///< parent -> C1: maps written
};

[[noreturn]] void userns_c1(const UsernsPlan& plan, const UsernsFds& fds) {
  reset_signals();
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != fds.parent) ::_exit(kSetupFailedStatus);
  ::setpgid(0, 0);
  ::dup2(fds.devnull, 0);
  ::dup2(fds.out, 1);
  ::dup2(fds.out, 2);
  int keep[3] = {fds.err, fds.sync_up, fds.sync_down};
  std::sort(keep, keep + 3);
  close_fds_except(keep, 3);
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC) != 0)
    child_fail(fds.err, plan.step_unshare, errno);
  char c = 1;
  if (::write(fds.sync_up, &c, 1) != 1) ::_exit(kSetupFailedStatus);
  ::close(fds.sync_up);
  if (::read(fds.sync_down, &c, 1) != 1) ::_exit(kSetupFailedStatus);  // the parent said why
  ::close(fds.sync_down);
  ::setgroups(0, nullptr);  // refused after "deny": then there are none to drop anyway
  pid_t init = ::fork();
  if (init < 0) child_fail(fds.err, plan.step_fork, errno);
  if (init == 0) userns_init(plan, fds.err);
  ::close(fds.err);
  ::dup2(0, 1);
  ::dup2(0, 2);
  int st = 0;
  while (::waitpid(init, &st, 0) < 0) {
    if (errno != EINTR) ::_exit(kSetupFailedStatus);
  }
  ::_exit(status_code(st));
}

std::string escape_overlay_path(const std::string& p) {
  std::string out;
  for (char c : p) {
    if (c == ',' || c == ':' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

void write_proc_file(pid_t pid, const char* name, const std::string& content) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throw_errno("open " + path);
  // The kernel wants the whole map in one write.
  ssize_t n = ::write(fd.get(), content.data(), content.size());
  if (n != static_cast<ssize_t>(content.size())) throw_errno("write " + path);
}

/// Every range of this process's own namespace, mapped to itself: root keeps
/// every uid, so chown in the sandbox works as on the host.
std::string identity_map(const char* self_map) {
  std::istringstream in(read_file(self_map));
  std::string out;
  unsigned long inside, outside, count;
  while (in >> inside >> outside >> count)
    out += std::to_string(inside) + " " + std::to_string(inside) + " " + std::to_string(count) + "\n";
  return out;
}

/// The user's ranges in /etc/subuid or /etc/subgid ("name:start:count" or
/// "uid:start:count").
std::vector<std::pair<unsigned long, unsigned long>> subid_ranges(const char* file,
                                                                  const std::string& name,
                                                                  unsigned long id) {
  std::vector<std::pair<unsigned long, unsigned long>> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::size_t a = line.find(':');
    std::size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string who = line.substr(0, a);
    if (who != name && who != std::to_string(id)) continue;
    try {
      unsigned long start = std::stoul(line.substr(a + 1, b - a - 1));
      unsigned long count = std::stoul(line.substr(b + 1));
      if (count > 0) out.emplace_back(start, count);
    } catch (const std::exception&) {
      // A malformed line is not ours to judge; newuidmap would refuse it too.
    }
  }
  return out;
}

/// Writes C1's uid/gid maps: identity for root; the user's own id at 0 plus
/// its subordinate ranges at 1.. through newuidmap/newgidmap when there are
/// some; else just the user's own id at 0.
void write_id_maps(const SandboxSpec& spec, pid_t pid, bool report = true) {
  uid_t uid = ::geteuid();
  gid_t gid = ::getegid();
  bool uid_done = false;
  bool gid_done = false;
  if (uid == 0) {
    try {
      write_proc_file(pid, "uid_map", identity_map("/proc/self/uid_map"));
      uid_done = true;
      write_proc_file(pid, "gid_map", identity_map("/proc/self/gid_map"));
      gid_done = true;
    } catch (const Error& e) {
      if (report)
        note(spec, std::string("sandbox (userns): mapping every id failed (") + e.what() +
                       "); mapping only root");
    }
  } else {
    std::string name;
    if (const passwd* pw = ::getpwuid(uid); pw != nullptr) name = pw->pw_name;
    auto uids = subid_ranges("/etc/subuid", name, uid);
    auto gids = subid_ranges("/etc/subgid", name, gid);
    auto newuidmap = find_program("newuidmap");
    auto newgidmap = find_program("newgidmap");
    if (!uids.empty() && !gids.empty() && newuidmap && newgidmap) {
      auto args = [&](const std::string& tool, unsigned long own, const auto& ranges) {
        std::vector<std::string> a = {tool, std::to_string(pid), "0", std::to_string(own), "1"};
        unsigned long next = 1;
        for (const auto& [start, count] : ranges) {
          a.push_back(std::to_string(next));
          a.push_back(std::to_string(start));
          a.push_back(std::to_string(count));
          next += count;
        }
        return a;
      };
      ToolResult r = run_tool(args(*newuidmap, uid, uids));
      uid_done = r.status == 0;
      if (uid_done) {
        r = run_tool(args(*newgidmap, gid, gids));
        gid_done = r.status == 0;
      }
      if ((!uid_done || !gid_done) && report)
        note(spec, "sandbox (userns): newuidmap/newgidmap failed (" + r.output +
                       "); mapping only uid " + std::to_string(uid) + " to root");
    }
  }
  if (!uid_done) write_proc_file(pid, "uid_map", "0 " + std::to_string(uid) + " 1\n");
  if (!gid_done) {
    // An unprivileged map of one gid needs setgroups denied first.
    if (uid != 0) write_proc_file(pid, "setgroups", "deny");
    write_proc_file(pid, "gid_map", "0 " + std::to_string(gid) + " 1\n");
  }
}

/// Creates a mount point that the image lacks in the overlay's upper dir,
/// from the parent, with the modes of the image's dirs on the way. Inside the
/// namespace, root may not write into a dir whose owner is not mapped (a
/// root-owned rootfs used without root); the calling user can. Paths with a
/// symlink on the way are left to the child, which resolves them in the root.
void precreate_mount_point(const fs::path& lower, const fs::path& upper, const std::string& rel,
                           bool is_file) {
  if (rel.empty() || resolve_in_root(lower, rel) != lower / rel) return;
  struct stat st;
  if (::lstat((lower / rel).c_str(), &st) == 0) return;
  auto parts = split_path(rel);
  fs::path lo = lower;
  fs::path up = upper;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    lo /= parts[i];
    up /= parts[i];
    bool last = i + 1 == parts.size();
    if (::lstat(up.c_str(), &st) == 0) continue;
    if (last && is_file) {
      UniqueFd fd(::open(up.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      return;
    }
    mode_t mode = ::lstat(lo.c_str(), &st) == 0 && S_ISDIR(st.st_mode) ? (st.st_mode & 07777) : 0755;
    if (::mkdir(up.c_str(), 0700) != 0) return;  // the child will say what is wrong
    ::chmod(up.c_str(), mode);
  }
}

UsernsPlan make_userns_plan(const SandboxSpec& spec, RootfsMethod method, const fs::path& run,
                            Steps& steps) {
  UsernsPlan plan;
  plan.method = method;
  plan.step_unshare = steps.add("create user, mount and pid namespaces");
  plan.step_fork = steps.add("fork inside the namespaces");
  plan.step_private = steps.add("make the mounts private");
  plan.step_open_root = steps.add("open the new root");
  plan.step_pivot = steps.add("pivot_root into the new root");

  std::string lower = spec.rootfs.string();
  std::string upper = (run / "upper").string();
  std::string work = (run / "work").string();
  fs::path merged = method == RootfsMethod::kCopy ? run / "rootfs" : run / "merged";
  plan.merged = merged.string();
  if (method == RootfsMethod::kCopy) {
    plan.step_rootfs = steps.add("bind the private copy " + plan.merged);
  } else {
    fs::create_directory(upper);
    fs::create_directory(work);
    fs::create_directory(merged);
    std::string opts = "lowerdir=" + escape_overlay_path(lower) + ",upperdir=" +
                       escape_overlay_path(upper) + ",workdir=" + escape_overlay_path(work);
    plan.overlay_data = opts;
    plan.overlay_data_userxattr = opts + ",userxattr";
    if (method == RootfsMethod::kFuseOverlayfs) {
      auto fuse = find_program("fuse-overlayfs");
      if (!fuse) throw Error("sandbox (userns): fuse-overlayfs is not installed");
      plan.fuse_store = {*fuse, "-o", opts, plan.merged};
      plan.fuse_log = (run / "fuse-overlayfs.log").string();
      for (auto& a : plan.fuse_store) plan.fuse_argv.push_back(a.data());
      plan.fuse_argv.push_back(nullptr);
      plan.step_rootfs = steps.add("mount fuse-overlayfs on " + plan.merged);
    } else {
      plan.step_rootfs = steps.add("mount overlay on " + plan.merged);
    }
  }

  using Kind = MountOp::Kind;
  auto add = [&](MountOp op, std::string what) {
    op.step = steps.add(std::move(what));
    plan.ops.push_back(std::move(op));
  };
  auto fs_op = [](std::string source, std::string target, std::string type, unsigned long flags,
                  std::string data) {
    MountOp op;
    op.kind = Kind::kFs;
    op.source = std::move(source);
    op.target = std::move(target);
    op.fstype = std::move(type);
    op.flags = flags;
    op.data = std::move(data);
    return op;
  };
  auto bind_op = [](std::string host, std::string target, bool is_file, bool ro) {
    MountOp op;
    op.kind = Kind::kBind;
    op.source = std::move(host);
    op.target = std::move(target);
    op.is_file = is_file;
    op.read_only = ro;
    return op;
  };

  // The system mounts first, so that a user bind below /tmp or /dev is
  // mounted on top of them rather than hidden by them.
  MountOp proc;
  proc.kind = Kind::kProc;
  proc.target = "proc";
  add(proc, "mount /proc");
  add(fs_op("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=0755"), "mount a tmpfs on /dev");
  for (const char* dev : {"null", "zero", "full", "random", "urandom", "tty"}) {
    MountOp op = bind_op(std::string("/dev/") + dev, std::string("dev/") + dev, true, false);
    op.optional = std::string_view(dev) == "tty";  // absent in some minimal hosts
    add(op, std::string("bind /dev/") + dev);
  }
  add(fs_op("tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"), "mount /dev/shm");
  MountOp pts = fs_op("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                      "newinstance,ptmxmode=0666,mode=0620");
  pts.optional = true;
  add(pts, "mount /dev/pts");
  for (auto [name, to] : {std::pair{"dev/ptmx", "pts/ptmx"}, std::pair{"dev/fd", "/proc/self/fd"},
                          std::pair{"dev/stdin", "/proc/self/fd/0"},
                          std::pair{"dev/stdout", "/proc/self/fd/1"},
                          std::pair{"dev/stderr", "/proc/self/fd/2"}}) {
    MountOp op;
    op.kind = Kind::kSymlink;
    op.source = to;
    op.target = name;
    add(op, std::string("create /") + name);
  }
  add(fs_op("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"), "mount a tmpfs on /tmp");
  for (const char* f : {"/etc/resolv.conf", "/etc/hosts"}) {
    struct stat st;
    if (::stat(f, &st) == 0 && S_ISREG(st.st_mode))
      add(bind_op(f, std::string(f + 1), true, true), std::string("bind the host's ") + f);
  }
  for (const auto& b : spec.binds) {
    struct stat st;
    ::stat(b.host.c_str(), &st);  // checked in check_common
    std::string rel = path_in_root(b.target, "bind target");
    add(bind_op(b.host.string(), rel, !S_ISDIR(st.st_mode), b.read_only),
        "bind " + b.host.string() + " at /" + rel + (b.read_only ? " (read-only)" : ""));
  }
  std::string wd = path_in_root(spec.workdir, "working directory");
  MountOp mk;
  mk.kind = Kind::kMkdir;
  mk.target = wd;
  add(mk, "create the working directory /" + wd);

  if (method != RootfsMethod::kCopy) {
    for (const auto& op : plan.ops) {
      // Below /dev is the sandbox's own tmpfs.
      if (op.kind == Kind::kSymlink || op.target.rfind("dev/", 0) == 0) continue;
      precreate_mount_point(spec.rootfs, upper, op.target, op.is_file);
    }
  }
  plan.exec = make_exec_plan(spec, steps, "/" + wd);
  return plan;
}

struct Attempt {
  std::optional<ChildFailure> failure;
  std::string detail;  ///< what a failed helper said
  Steps steps;
  int step_rootfs = -1;
  int status = 0;
};

Attempt userns_attempt(const SandboxSpec& spec, RootfsMethod method, const fs::path& run) {
  const std::string prefix = "sandbox (userns): ";
  Attempt a;
  if (method == RootfsMethod::kCopy) copy_tree(spec.rootfs, run / "rootfs", prefix);
  UsernsPlan plan = make_userns_plan(spec, method, run, a.steps);
  a.step_rootfs = plan.step_rootfs;

  Pipe out = make_pipe("the sandbox output");
  Pipe err = make_pipe("sandbox errors");
  Pipe up = make_pipe("sandbox setup");
  Pipe down = make_pipe("sandbox setup");
  UniqueFd devnull = open_devnull(prefix);
  UsernsFds fds;
  fds.parent = ::getpid();
  fds.devnull = devnull.get();
  fds.out = out.write.get();
  fds.err = err.write.get();
  fds.sync_up = up.write.get();
  fds.sync_down = down.read.get();

  pid_t pid = ::fork();
  if (pid < 0) throw_errno(prefix + "fork");
  if (pid == 0) userns_c1(plan, fds);
  ::setpgid(pid, pid);  // also done by the child: no race on who is first
  ChildGuard guard(pid);
  out.write.reset();
  err.write.reset();
  up.write.reset();
  down.read.reset();
  ::fcntl(err.read.get(), F_SETFL, O_NONBLOCK);

  auto child_failed = [&]() {
    int st;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    guard.release();
    a.failure = read_failure(err.read.get());
    if (!a.failure) {
      a.failure = ChildFailure{};
      a.failure->step = plan.step_unshare;
      a.failure->status = status_code(st);
    }
    return a;
  };

  char c;
  ssize_t n;
  do n = ::read(up.read.get(), &c, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) return child_failed();
  try {
    write_id_maps(spec, pid);
  } catch (const Error& e) {
    throw Error(prefix + e.what() + kUsernsHint);
  }
  write_all(down.write.get(), &c, 1, "the sandbox setup pipe");
  down.write.reset();

  int st = pump_output(pid, out.read.get(), spec.on_output);
  guard.release();
  a.failure = read_failure(err.read.get());
  a.status = status_code(st);
  if (a.failure && a.failure->step == plan.step_rootfs && !plan.fuse_log.empty()) {
    try {
      std::istringstream log(read_file(plan.fuse_log));
      for (std::string line; std::getline(log, line) && a.detail.size() < 300;) {
        if (line.empty() || line.find("unknown argument ignored") != std::string::npos) continue;
        a.detail += (a.detail.empty() ? "" : "; ") + line;
      }
    } catch (const Error&) {
      // No log: the exit status is all there is.
    }
  }
  return a;
}

/// Removes a tree as root of a fresh user namespace with the sandbox's id
/// maps: what a sandboxed process chowned to a subordinate id is not the
/// calling user's to delete otherwise (rootless podman's "unshare rm").
void remove_as_namespace_root(const SandboxSpec& spec, const fs::path& dir) {
  auto rm = find_program("rm");
  if (!rm) return;
  std::vector<std::string> store = {*rm, "-rf", "--one-file-system", "--", dir.string()};
  std::vector<char*> argv;
  for (auto& a : store) argv.push_back(a.data());
  argv.push_back(nullptr);
  Pipe up = make_pipe("cleanup");
  Pipe down = make_pipe("cleanup");
  UniqueFd devnull = open_devnull("");
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return;
  if (pid == 0) {
    reset_signals();
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::setpgid(0, 0);
    for (int fd = 0; fd < 3; ++fd) ::dup2(devnull.get(), fd);
    int keep[2] = {up.write.get(), down.read.get()};
    std::sort(keep, keep + 2);
    close_fds_except(keep, 2);
    char c = 1;
    if (::unshare(CLONE_NEWUSER) != 0 || ::write(up.write.get(), &c, 1) != 1 ||
        ::read(down.read.get(), &c, 1) != 1)
      ::_exit(1);
    char* no_env[] = {nullptr};
    ::execve(argv[0], argv.data(), no_env);
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  ChildGuard guard(pid);
  up.write.reset();
  down.read.reset();
  char c = 0;
  if (::read(up.read.get(), &c, 1) != 1) return;
  write_id_maps(spec, pid, false);
  write_all(down.write.get(), &c, 1, "the cleanup pipe");
  down.write.reset();
  int st;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  guard.release();
}

/// Removes a userns run's dir (upper layer, copy) right away.
void remove_run_dir(const SandboxSpec& spec, RunDir& run) {
  run.keep();  // done here, not by the destructor
  remove_tree(run.path());
  std::error_code ec;
  if (::geteuid() != 0 && fs::exists(run.path(), ec)) {
    try {
      remove_as_namespace_root(spec, run.path());
    } catch (const std::exception&) {
      // Best effort: the caller deletes the scratch dir anyway.
    }
  }
}

std::atomic<int> g_userns_method{-1};  // what worked first in this process

const char* method_name(RootfsMethod m) {
  switch (m) {
    case RootfsMethod::kAuto:
    case RootfsMethod::kOverlay:
      return "kernel overlay";
    case RootfsMethod::kFuseOverlayfs:
      return "fuse-overlayfs";
    case RootfsMethod::kCopy:
      return "a private copy of the rootfs";
  }
  return "?";
}

int run_userns(const SandboxSpec& spec) {
  const std::string prefix = "sandbox (userns): ";
  check_common(spec, prefix, true);
  std::vector<RootfsMethod> order;
  if (spec.rootfs_method != RootfsMethod::kAuto) {
    order = {spec.rootfs_method};
  } else {
    int cached = g_userns_method.load();
    if (cached >= 0) order.push_back(static_cast<RootfsMethod>(cached));
    for (RootfsMethod m : {RootfsMethod::kOverlay, RootfsMethod::kFuseOverlayfs, RootfsMethod::kCopy}) {
      // Without access to /dev/fuse (mode 0600 on some hosts) it cannot work.
      if (m == RootfsMethod::kFuseOverlayfs &&
          (!find_program("fuse-overlayfs") || ::access("/dev/fuse", R_OK | W_OK) != 0))
        continue;
      if (cached < 0 || m != static_cast<RootfsMethod>(cached)) order.push_back(m);
    }
  }
  for (std::size_t i = 0; i < order.size(); ++i) {
    RunDir run(spec.scratch, prefix);
    Attempt a = userns_attempt(spec, order[i], run.path());
    remove_run_dir(spec, run);
    if (!a.failure) {
      if (spec.rootfs_method == RootfsMethod::kAuto) g_userns_method = static_cast<int>(order[i]);
      return a.status;
    }
    std::string why = a.steps.describe(*a.failure) + (a.detail.empty() ? "" : " (" + a.detail + ")");
    bool rootfs_step = a.failure->step == a.step_rootfs;
    if (rootfs_step && i + 1 < order.size()) {
      note(spec, prefix + why + "; using " + method_name(order[i + 1]));
      continue;
    }
    throw Error(prefix + why + kUsernsHint);
  }
  throw Error(prefix + "no way to present the root filesystem" + kUsernsHint);
}

// ---------------------------------------------------------------------------
// kChroot and kHost: one child that (maybe) chroots and execs.

struct SimpleFds {
  pid_t parent = 0;
  int devnull = -1;
  int out = -1;
  int err = -1;
};

[[noreturn]] void simple_child(const char* root, int step_chroot, const ExecPlan& exec,
                               const SimpleFds& fds) {
  reset_signals();
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != fds.parent) ::_exit(kSetupFailedStatus);
  ::setpgid(0, 0);
  ::dup2(fds.devnull, 0);
  ::dup2(fds.out, 1);
  ::dup2(fds.out, 2);
  if (root != nullptr && (::chroot(root) != 0 || ::chdir("/") != 0))
    child_fail(fds.err, step_chroot, errno);
  child_exec(exec, fds.err);
}

/// Forks simple_child and forwards its output; the wait status and the
/// child's failure record, if any.
std::pair<int, std::optional<ChildFailure>> run_simple(const SandboxSpec& spec, const char* root,
                                                      int step_chroot, const ExecPlan& exec,
                                                      const std::string& prefix) {
  Pipe out = make_pipe("the sandbox output");
  Pipe err = make_pipe("sandbox errors");
  UniqueFd devnull = open_devnull(prefix);
  SimpleFds fds;
  fds.parent = ::getpid();
  fds.devnull = devnull.get();
  fds.out = out.write.get();
  fds.err = err.write.get();
  pid_t pid = ::fork();
  if (pid < 0) throw_errno(prefix + "fork");
  if (pid == 0) simple_child(root, step_chroot, exec, fds);
  ::setpgid(pid, pid);
  ChildGuard guard(pid);
  out.write.reset();
  err.write.reset();
  ::fcntl(err.read.get(), F_SETFL, O_NONBLOCK);
  int st = pump_output(pid, out.read.get(), spec.on_output);
  guard.release();
  return {st, read_failure(err.read.get())};
}

/// Chroot mode's stand-in for bind mounts: each host dir is renamed into the
/// private copy (same filesystem: instant, and what the command writes lands
/// in the host dir itself) and renamed back afterwards, also on failure.
/// Where rename cannot work (another filesystem, a mount point) the content
/// is copied in and, after the run, copied back over the host dir. A
/// read-only bind is always a copy, so nothing can write through it. (A
/// symlink from the target to the host path cannot work: inside the chroot
/// it would resolve against the copy, not the host.)
class BindPlacer {
 public:
  BindPlacer(RunDir& run, std::string prefix, std::size_t count)
      : run_(run), prefix_(std::move(prefix)) {
    placed_.reserve(count);  // push_back after a rename must not throw
  }
  BindPlacer(const BindPlacer&) = delete;
  BindPlacer& operator=(const BindPlacer&) = delete;
  ~BindPlacer() {
    try {
      restore();
    } catch (const std::exception&) {
      // restore() kept the run dir; the error already names where data is.
    }
  }

  void place(const BindMount& b, const fs::path& inside) {
    fs::path host = fs::absolute(b.host);
    std::error_code ec;
    fs::create_directories(inside.parent_path(), ec);
    if (ec) throw Error(prefix_ + "create " + inside.parent_path().string() + ": " + ec.message());
    struct stat st;
    if (::lstat(inside.c_str(), &st) == 0) {
      // The image has something there: hide it, as a mount would.
      fs::path aside = run_.path() / ("hidden-" + std::to_string(hidden_++));
      if (::rename(inside.c_str(), aside.c_str()) != 0)
        throw_errno(prefix_ + "move " + b.target + " of the image aside");
    }
    if (b.read_only) {
      copy_tree(host, inside, prefix_);
      placed_.push_back({host, inside, How::kCopyIn});
      return;
    }
    if (::rename(host.c_str(), inside.c_str()) == 0) {
      placed_.push_back({host, inside, How::kMoved});
      return;
    }
    if (errno != EXDEV && errno != EBUSY)
      throw_errno(prefix_ + "move " + host.string() + " to " + inside.string());
    copy_tree(host, inside, prefix_);
    placed_.push_back({host, inside, How::kCopyBack});
  }

  /// Puts every host dir back; throws naming whatever could not be.
  void restore() {
    std::string failed;
    for (auto it = placed_.rbegin(); it != placed_.rend(); ++it) {
      try {
        if (it->how == How::kMoved) {
          if (::rename(it->inside.c_str(), it->host.c_str()) != 0)
            throw_errno("move " + it->inside.string() + " back to " + it->host.string());
        } else if (it->how == How::kCopyBack) {
          copy_back(it->inside, it->host);
        }
      } catch (const std::exception& e) {
        failed += std::string(failed.empty() ? "" : "; ") + e.what();
      }
    }
    placed_.clear();
    if (!failed.empty()) {
      run_.keep();
      throw Error(prefix_ + failed + " (the data is kept under " + run_.path().string() + ")");
    }
  }

 private:
  enum class How { kMoved, kCopyBack, kCopyIn };
  struct Placed {
    fs::path host;
    fs::path inside;
    How how;
  };

  void copy_back(const fs::path& inside, const fs::path& host) {
    // Replace the content, keep the dir itself (it may be a mount point).
    if (fs::is_directory(host)) {
      for (const auto& e : fs::directory_iterator(host)) fs::remove_all(e.path());
    }
    copy_tree(inside, host, "");
  }

  RunDir& run_;
  std::string prefix_;
  std::vector<Placed> placed_;
  int hidden_ = 0;
};

/// What the chroot needs besides the image: an empty /tmp, device nodes
/// (when mknod is allowed), the host's resolv.conf and hosts.
void prepare_chroot_tree(const SandboxSpec& spec, const fs::path& root, const std::string& prefix) {
  fs::path tmp = resolve_in_root(root, "tmp");
  if (fs::is_directory(tmp)) {
    for (const auto& e : fs::directory_iterator(tmp)) fs::remove_all(e.path());
  } else {
    fs::create_directories(tmp);
  }
  ::chmod(tmp.c_str(), 01777);

  fs::path dev = resolve_in_root(root, "dev");
  fs::create_directories(dev);
  struct Node {
    const char* name;
    unsigned major;
    unsigned minor;
  };
  for (Node n : {Node{"null", 1, 3}, Node{"zero", 1, 5}, Node{"full", 1, 7}, Node{"random", 1, 8},
                 Node{"urandom", 1, 9}, Node{"tty", 5, 0}}) {
    fs::path p = dev / n.name;
    ::unlink(p.c_str());
    if (::mknod(p.c_str(), S_IFCHR | 0666, makedev(n.major, n.minor)) != 0) {
      note(spec, prefix + "cannot create /dev/" + n.name + " (" + std::strerror(errno) +
                     "); the sandbox has no device nodes");
      break;
    }
    ::chmod(p.c_str(), 0666);
  }
  fs::create_directories(dev / "shm");
  ::chmod((dev / "shm").c_str(), 01777);
  for (auto [name, to] : {std::pair{"fd", "/proc/self/fd"}, std::pair{"stdin", "/proc/self/fd/0"},
                          std::pair{"stdout", "/proc/self/fd/1"},
                          std::pair{"stderr", "/proc/self/fd/2"}}) {
    std::error_code ec;
    fs::create_symlink(to, dev / name, ec);
  }

  for (const char* f : {"/etc/resolv.conf", "/etc/hosts"}) {
    struct stat st;
    if (::stat(f, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    fs::path dst = resolve_in_root(root, f + 1);
    fs::create_directories(dst.parent_path());
    if (::lstat(dst.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) ::unlink(dst.c_str());
    write_file_atomic(dst, read_file(f));
  }
}

int run_chroot(const SandboxSpec& spec) {
  const std::string prefix = "sandbox (chroot): ";
  if (::geteuid() != 0)
    throw Error(prefix +
                "needs root (it copies the rootfs with its owners and calls chroot(2)); "
                "use --isolation userns when not root");
  check_common(spec, prefix, true);
  RunDir run(spec.scratch, prefix);
  fs::path root = run.path() / "rootfs";
  copy_tree(spec.rootfs, root, prefix);
  try {
    prepare_chroot_tree(spec, root, prefix);
  } catch (const fs::filesystem_error& e) {
    throw Error(prefix + "prepare " + root.string() + ": " + e.code().message() + " (" +
                e.path1().string() + ")");
  }
  BindPlacer binds(run, prefix, spec.binds.size());
  for (const auto& b : spec.binds)
    binds.place(b, resolve_in_root(root, path_in_root(b.target, "bind target")));
  std::string wd = path_in_root(spec.workdir, "working directory");
  std::error_code ec;
  fs::create_directories(resolve_in_root(root, wd), ec);

  Steps steps;
  int step_chroot = steps.add("chroot into " + root.string());
  ExecPlan exec = make_exec_plan(spec, steps, "/" + wd);
  auto [st, failure] = run_simple(spec, root.c_str(), step_chroot, exec, prefix);
  binds.restore();
  if (failure) throw Error(prefix + steps.describe(*failure));
  return status_code(st);
}

int run_host(const SandboxSpec& spec) {
  const std::string prefix = "sandbox (host): ";
  if (!spec.force_host && !running_in_container())
    throw Error(prefix +
                "refusing to run on this machine's own / outside a container (uv would install "
                "into its /opt, /root, ...); run dockless inside a container of the base image, "
                "or force it (--force)");
  check_common(spec, prefix, false);
  for (const auto& b : spec.binds) {
    std::error_code ec;
    if (!fs::equivalent(b.host, b.target, ec))
      throw Error(prefix + "host isolation uses the image paths as they are, so " +
                  b.host.string() + " must be " + b.target +
                  " itself (use that path, or --isolation userns|chroot)");
  }
  Steps steps;
  ExecPlan exec = make_exec_plan(spec, steps, spec.workdir);
  auto [st, failure] = run_simple(spec, nullptr, -1, exec, prefix);
  if (failure) throw Error(prefix + steps.describe(*failure));
  return status_code(st);
}

}  // namespace

Isolation parse_isolation(std::string_view text) {
  if (text == "userns") return Isolation::kUserns;
  if (text == "chroot") return Isolation::kChroot;
  if (text == "host") return Isolation::kHost;
  throw UsageError("unknown isolation '" + std::string(text) + "' (expected userns, chroot or host)");
}

}  // namespace dockless

namespace dockless {

int run_in_sandbox(const SandboxSpec& spec) {
  switch (spec.isolation) {
    case Isolation::kUserns:
      return run_userns(spec);
    case Isolation::kChroot:
      return run_chroot(spec);
    case Isolation::kHost:
      return run_host(spec);
  }
  throw UsageError("unknown isolation mode");
}

bool running_in_container() {
  if (const char* c = std::getenv("container"); c != nullptr && *c != '\0') return true;
  if (::access("/.dockerenv", F_OK) == 0 || ::access("/run/.containerenv", F_OK) == 0) return true;
  std::ifstream in("/proc/1/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    for (const char* word : {"kubepods", "docker", "containerd", "libpod"})
      if (line.find(word) != std::string::npos) return true;
  }
  return false;
}

}  // namespace dockless
