#include "base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

extern char** environ;

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

namespace dockless {

namespace {

using Clock = std::chrono::steady_clock;

// Without a pidfd (kernels before 5.3) we look this often whether the child exited.
constexpr int kPollSliceMs = 20;
// A line-streamed command that never ends a line must not grow memory without bound.
constexpr std::size_t kMaxLine = 1 << 20;
// A tail capture trims its front in steps of this much, not on every read.
constexpr std::size_t kTailSlack = 1 << 16;

std::string spawn_message(const std::string& program, int errnum) {
  if (errnum == ENOENT && program.find('/') == std::string::npos)
    return "cannot run " + program + ": not found on PATH";
  return "cannot run " + program + ": " + std::strerror(errnum);
}


// The posix_spawn attribute and file-action objects, destroyed on every path.
class SpawnPlan {
 public:
  SpawnPlan() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
    // Every signal back to its default, none blocked: the child starts as if
    // from a fresh shell whatever this process ignores or blocks.
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr_, &all);
    posix_spawnattr_setsigmask(&attr_, &none);
    posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  }
  ~SpawnPlan() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnPlan(const SpawnPlan&) = delete;
  SpawnPlan& operator=(const SpawnPlan&) = delete;

  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

// The child's stdout/stderr descriptors: -1 inherits, -2 follows stdout.
constexpr int kInheritFd = -1;
constexpr int kSameAsStdoutFd = -2;

pid_t start_child(const Command& c, int out_fd, int err_fd) {
  if (c.argv.empty() || c.argv[0].empty()) throw Error("cannot run a program: empty command");
  const std::string& program = c.argv[0];
  if (!c.cwd.empty()) {
    struct stat st;
    if (::stat(c.cwd.c_str(), &st) != 0) throw_errno("cannot run " + program + " in " + c.cwd.string());
    if (!S_ISDIR(st.st_mode)) throw Error("cannot run " + program + " in " + c.cwd.string() + ": not a directory");
  }
  SpawnPlan plan;
  UniqueFd input;  // a memory file holding ProcessInput::text
  switch (c.in.kind()) {
    case ProcessInput::Kind::kNull:
      posix_spawn_file_actions_addopen(&plan.actions_, 0, "/dev/null", O_RDONLY, 0);
      break;
    case ProcessInput::Kind::kText: {
      input.reset(::memfd_create("dockless-stdin", MFD_CLOEXEC));
      if (!input) throw_errno("cannot prepare the input of " + program);
      write_all(input.get(), c.in.bytes().data(), c.in.bytes().size(), "the input of " + program);
      if (::lseek(input.get(), 0, SEEK_SET) != 0) throw_errno("cannot prepare the input of " + program);
      posix_spawn_file_actions_adddup2(&plan.actions_, input.get(), 0);
      break;
    }
    case ProcessInput::Kind::kFd:
      posix_spawn_file_actions_adddup2(&plan.actions_, c.in.descriptor(), 0);
      break;
    case ProcessInput::Kind::kInherit:
      break;
  }
  if (out_fd >= 0) posix_spawn_file_actions_adddup2(&plan.actions_, out_fd, 1);
  if (err_fd >= 0) posix_spawn_file_actions_adddup2(&plan.actions_, err_fd, 2);
  if (err_fd == kSameAsStdoutFd) posix_spawn_file_actions_adddup2(&plan.actions_, 1, 2);
  if (!c.cwd.empty()) posix_spawn_file_actions_addchdir_np(&plan.actions_, c.cwd.c_str());

  std::vector<char*> argv;
  for (const std::string& a : c.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (c.env) {
    for (const std::string& e : *c.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }
  pid_t pid = -1;
  // posix_spawnp searches PATH like a shell would, without running one.
  int rc = ::posix_spawnp(&pid, program.c_str(), &plan.actions_, &plan.attr_, argv.data(),
                          c.env ? envp.data() : environ);
  if (rc != 0) throw SpawnError(program, rc);
  return pid;
}

int child_fd_for(const ProcessOutput& o, int pipe_write) {
  switch (o.kind()) {
    case ProcessOutput::Kind::kInherit: return kInheritFd;
    case ProcessOutput::Kind::kFd: return o.descriptor();
    case ProcessOutput::Kind::kSameAsStdout: return kSameAsStdoutFd;
    case ProcessOutput::Kind::kCapture:
    case ProcessOutput::Kind::kLines: return pipe_write;
  }
  return kInheritFd;
}

bool needs_pipe(const ProcessOutput& o) {
  return o.kind() == ProcessOutput::Kind::kCapture || o.kind() == ProcessOutput::Kind::kLines;
}

// The parent's end of one captured or line-streamed stream.
class Reader {
 public:
  Reader(const ProcessOutput& how, UniqueFd fd, std::string& text, bool& truncated)
      : how_(how), fd_(std::move(fd)), text_(text), truncated_(truncated) {
    int flags = ::fcntl(fd_.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK) < 0)
      throw_errno("cannot configure a pipe");
  }
  int fd() const { return fd_.get(); }
  bool open() const { return static_cast<bool>(fd_); }

  /// Reads what is there; closes the pipe at end of file.
  void read_available(const std::string& program) {
    char buf[65536];
    while (fd_) {
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n > 0) {
        take(buf, static_cast<std::size_t>(n));
      } else if (n == 0) {
        fd_.reset();
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return;
      } else if (errno != EINTR) {
        throw_errno("cannot read the output of " + program);
      }
    }
  }

  void finish() {
    fd_.reset();
    const std::size_t limit = how_.max_bytes();
    if (how_.kind() == ProcessOutput::Kind::kLines && !line_.empty()) {
      how_.on_line()(line_);
      line_.clear();
    } else if (how_.keep() == ProcessOutput::Keep::kTail && text_.size() > limit) {
      text_.erase(0, text_.size() - limit);
    }
  }

 private:
  void take(const char* data, std::size_t n) {
    if (how_.kind() == ProcessOutput::Kind::kLines) return split_lines(data, n);
    const std::size_t limit = how_.max_bytes();
    if (how_.keep() == ProcessOutput::Keep::kHead) {
      std::size_t room = limit - std::min(limit, text_.size());
      text_.append(data, std::min(room, n));
      if (n > room) truncated_ = true;
      return;
    }
    text_.append(data, n);
    if (text_.size() > limit) {
      truncated_ = true;
      if (text_.size() - limit > kTailSlack) text_.erase(0, text_.size() - limit);
    }
  }

  void split_lines(const char* data, std::size_t n) {
    line_.append(data, n);
    std::size_t start = 0;
    for (std::size_t nl; (nl = line_.find('\n', start)) != std::string::npos; start = nl + 1)
      how_.on_line()(std::string_view(line_).substr(start, nl - start));
    line_.erase(0, start);
    if (line_.size() > kMaxLine) {
      how_.on_line()(line_);
      line_.clear();
    }
  }

  const ProcessOutput& how_;
  UniqueFd fd_;
  std::string& text_;
  bool& truncated_;
  std::string line_;
};

// Waits for the child while pumping its output; fills `r` and reaps the child.
void pump(const Command& c, ChildGuard& child, std::vector<Reader>& readers, ProcessResult& r) {
  const std::string& program = c.argv[0];
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, child.pid(), 0)));
  const auto deadline = c.timeout ? Clock::now() + *c.timeout : Clock::time_point::max();
  for (;;) {
    if (std::optional<int> status = child.try_wait()) {
      // What it wrote is in the pipes: take it and stop, even if a
      // grandchild still holds the write ends.
      for (Reader& reader : readers) {
        reader.read_available(program);
        reader.finish();
      }
      r.status = *status;
      r.signal = WIFSIGNALED(child.wait_status()) ? WTERMSIG(child.wait_status()) : 0;
      return;
    }
    int slice = -1;
    if (c.timeout) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        child.kill_and_reap();
        r.timed_out = true;
        r.status = shell_status(child.wait_status());
        r.signal = WIFSIGNALED(child.wait_status()) ? WTERMSIG(child.wait_status()) : 0;
        return;
      }
      slice = static_cast<int>(std::min<long long>(left, 1 << 30));
    }
    if (!pidfd) slice = slice < 0 ? kPollSliceMs : std::min(slice, kPollSliceMs);
    std::vector<pollfd> fds;
    for (const Reader& reader : readers)
      if (reader.open()) fds.push_back(pollfd{reader.fd(), POLLIN, 0});
    if (pidfd) fds.push_back(pollfd{pidfd.get(), POLLIN, 0});
    if (fds.empty() && !c.timeout) {
      child.wait();  // nothing to pump, no deadline: just wait
      continue;
    }
    if (::poll(fds.data(), fds.size(), slice) < 0 && errno != EINTR)
      throw_errno("cannot wait for " + program);
    for (Reader& reader : readers)
      if (reader.open()) reader.read_available(program);
  }
}

}  // namespace

SpawnError::SpawnError(const std::string& program, int errnum)
    : Error(spawn_message(program, errnum)), errnum_(errnum) {}

ProcessInput ProcessInput::text(std::string bytes) {
  ProcessInput in(Kind::kText);
  in.bytes_ = std::move(bytes);
  return in;
}

ProcessInput ProcessInput::fd(int fd) {
  ProcessInput in(Kind::kFd);
  in.fd_ = fd;
  return in;
}

ProcessOutput ProcessOutput::fd(int fd) {
  ProcessOutput o(Kind::kFd);
  o.fd_ = fd;
  return o;
}

ProcessOutput ProcessOutput::capture(std::size_t max_bytes, Keep keep) {
  ProcessOutput o(Kind::kCapture);
  o.max_bytes_ = max_bytes;
  o.keep_ = keep;
  return o;
}

ProcessOutput ProcessOutput::lines(std::function<void(std::string_view)> on_line) {
  ProcessOutput o(Kind::kLines);
  o.on_line_ = std::move(on_line);
  return o;
}

ChildGuard::ChildGuard(ChildGuard&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), kill_group_(other.kill_group_), wait_status_(other.wait_status_) {}

ChildGuard& ChildGuard::operator=(ChildGuard&& other) noexcept {
  if (this != &other) {
    kill_and_reap();
    pid_ = std::exchange(other.pid_, -1);
    kill_group_ = other.kill_group_;
    wait_status_ = other.wait_status_;
  }
  return *this;
}

ChildGuard::~ChildGuard() { kill_and_reap(); }

int ChildGuard::wait() {
  if (pid_ <= 0) throw Error("no child process to wait for");
  while (::waitpid(pid_, &wait_status_, 0) < 0) {
    if (errno != EINTR) throw_errno("cannot wait for process " + std::to_string(pid_));
  }
  pid_ = -1;
  return shell_status(wait_status_);
}

std::optional<int> ChildGuard::try_wait() {
  if (pid_ <= 0) return shell_status(wait_status_);
  for (;;) {
    pid_t w = ::waitpid(pid_, &wait_status_, WNOHANG);
    if (w == 0) return std::nullopt;
    if (w == pid_) break;
    if (errno != EINTR) throw_errno("cannot wait for process " + std::to_string(pid_));
  }
  pid_ = -1;
  return shell_status(wait_status_);
}

void ChildGuard::kill_and_reap() noexcept {
  if (pid_ <= 0) return;
  if (kill_group_) ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, &wait_status_, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

int shell_status(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 255;
}

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
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("cannot create a pipe for " + what);
  UniqueFd read_end(fds[0]);  // closed if moving the other end fails
  UniqueFd write_end = above_stdio(fds[1], "cannot create a pipe for " + what);
  read_end = above_stdio(read_end.release(), "cannot create a pipe for " + what);
  return Pipe{std::move(read_end), std::move(write_end)};
}

ChildGuard spawn_process(const Command& c) {
  if (needs_pipe(c.out) || needs_pipe(c.err))
    throw Error("spawn_process cannot capture output; use run_process");
  return ChildGuard(start_child(c, child_fd_for(c.out, kInheritFd), child_fd_for(c.err, kInheritFd)));
}

ProcessResult run_process(const Command& c) {
  if (c.argv.empty()) throw Error("cannot run a program: empty command");
  const std::string& program = c.argv[0];
  ProcessResult r;
  std::optional<Pipe> out_pipe, err_pipe;
  if (needs_pipe(c.out)) out_pipe = make_pipe(program);
  if (needs_pipe(c.err)) err_pipe = make_pipe(program);
  ChildGuard child(start_child(c, child_fd_for(c.out, out_pipe ? out_pipe->write.get() : -1),
                               child_fd_for(c.err, err_pipe ? err_pipe->write.get() : -1)));
  std::vector<Reader> readers;
  readers.reserve(2);
  if (out_pipe) {
    out_pipe->write.reset();  // so end of file comes when the child's copies close
    readers.emplace_back(c.out, std::move(out_pipe->read), r.out, r.out_truncated);
  }
  if (err_pipe) {
    err_pipe->write.reset();
    readers.emplace_back(c.err, std::move(err_pipe->read), r.err, r.err_truncated);
  }
  pump(c, child, readers, r);
  return r;
}

}  // namespace dockless
