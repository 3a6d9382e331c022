// See child_process.h: the failure protocol, the children's helpers, the
// command's exec and the parent's output pump.

#include "src/sandbox/child_process.h"

#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/error.h"
#include "src/sandbox/step_user.h"

// System calls that older C libraries do not wrap or declare (the numbers are
// the same on every architecture since Linux 5.x's unified syscall table).
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

namespace dockless::sandbox_detail {
namespace {

constexpr unsigned kCloseRangeCloexec = 1U << 2;

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Marks every fd >= 3 close-on-exec: nothing the parent opened reaches the
/// command, while the failure pipe stays usable until exec succeeds.
void cloexec_all_fds() {
  if (::syscall(SYS_close_range, 3U, ~0U, kCloseRangeCloexec) == 0) return;
  for (int fd = 3; fd < 65536; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

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

struct SimpleFds {
  pid_t parent = 0;
  int devnull = -1;
  int out = -1;
  int err = -1;
  int step_net = -1;
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
  if (fds.step_net >= 0 && (::unshare(CLONE_NEWNET) != 0 || bring_loopback_up() != 0))
    child_fail(fds.err, fds.step_net, errno);
  if (root != nullptr && (::chroot(root) != 0 || ::chdir("/") != 0))
    child_fail(fds.err, step_chroot, errno);
  child_exec(exec, fds.err);
}

}  // namespace

// ---------------------------------------------------------------------------
// The failure protocol between children and parent.

[[noreturn]] void child_fail(int errfd, int step, int err, int status) {
  ChildFailure f;
  f.step = step;
  f.err = err;
  f.status = status;
  if (::write(errfd, &f, sizeof f) < 0) {
    // Nothing left to tell anyone; the exit status still says "setup failed".
  }
  ::_exit(kSetupFailedStatus);
}

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
// Running the command.

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

void set_exec_user(ExecPlan& p, const SandboxSpec& spec, const std::vector<std::filesystem::path>& layers,
                   const std::filesystem::path& rootfs, Steps& steps) {
  if (spec.user.empty()) return;
  StepUser u = resolve_step_user_in(spec.user, layers, rootfs);
  p.switch_user = true;
  p.uid = u.uid;
  p.gid = u.gid;
  p.groups = u.groups;
  p.step_user = steps.add("switch to user '" + spec.user + "' (uid " + std::to_string(u.uid) +
                          ", gid " + std::to_string(u.gid) + ")");
  bool has_home = false;
  for (const auto& e : p.env_store) has_home = has_home || e.rfind("HOME=", 0) == 0;
  if (has_home) return;
  p.env_store.push_back("HOME=" + u.home);
  p.envp.clear();
  for (auto& e : p.env_store) p.envp.push_back(e.data());
  p.envp.push_back(nullptr);
}

int bring_loopback_up() {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, "lo", 3);
  int r = ::ioctl(s, SIOCGIFFLAGS, &ifr);
  if (r == 0) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    r = ::ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  int e = errno;
  ::close(s);
  errno = e;
  return r;
}

[[noreturn]] void child_exec(const ExecPlan& p, int errfd) {
  reset_signals();
  ::umask(022);  // the files uv writes become layer content: same modes on every host
  if (p.switch_user) {
    // Supplementary groups where the id map allows setgroups, else none.
    if (::setgroups(p.groups.size(), p.groups.data()) != 0) ::setgroups(0, nullptr);
    if (::setgid(p.gid) != 0 || ::setuid(p.uid) != 0) child_fail(errfd, p.step_user, errno);
  }
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
// The parent's side of a child.

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

UniqueFd open_devnull(const std::string& prefix) {
  return above_stdio(::open("/dev/null", O_RDWR | O_CLOEXEC), prefix + "open /dev/null");
}

std::pair<int, std::optional<ChildFailure>> run_simple(const SandboxSpec& spec, const char* root,
                                                      int step_chroot, const ExecPlan& exec,
                                                      const std::string& prefix, int step_net) {
  Pipe out = make_pipe("the sandbox output");
  Pipe err = make_pipe("sandbox errors");
  UniqueFd devnull = open_devnull(prefix);
  SimpleFds fds;
  fds.parent = ::getpid();
  fds.devnull = devnull.get();
  fds.out = out.write.get();
  fds.err = err.write.get();
  fds.step_net = step_net;
  pid_t pid = ::fork();
  if (pid < 0) throw_errno(prefix + "fork");
  if (pid == 0) simple_child(root, step_chroot, exec, fds);
  ::setpgid(pid, pid);
  ChildGuard guard(pid, /*kill_group=*/true);
  out.write.reset();
  err.write.reset();
  ::fcntl(err.read.get(), F_SETFL, O_NONBLOCK);
  int st = pump_output(pid, out.read.get(), spec.on_output);
  guard.release();
  return {st, read_failure(err.read.get())};
}

}  // namespace dockless::sandbox_detail
