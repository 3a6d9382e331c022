// See id_namespace.h.

#include "src/sandbox/id_namespace.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/error.h"
#include "base/file_util.h"
#include "base/process.h"
#include "src/sandbox/child_process.h"
#include "src/sandbox/id_maps.h"

namespace dockless {

namespace {

/// Child side: tells the parent why, then ends.
[[noreturn]] void child_error(int errfd, const std::string& text) {
  (void)!::write(errfd, text.data(), text.size());
  ::_exit(1);
}

std::string read_text(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

/// run_in_id_namespace's body; produce also learns whether the parent
/// mapped every id (false: only the user's own).
void run_in_child(const SandboxSpec& spec, const std::function<void(int fd, bool all_ids)>& produce,
                  const std::function<void(const char* data, std::size_t size)>& consume);

}  // namespace

bool step_files_need_id_namespace(const SandboxSpec& spec) {
  return spec.isolation == Isolation::kUserns && ::geteuid() != 0;
}

void run_in_id_namespace(const SandboxSpec& spec, const std::function<void(int fd)>& produce,
                         const std::function<void(const char* data, std::size_t size)>& consume) {
  run_in_child(spec, [&](int fd, bool) { produce(fd); }, consume);
}

bool owners_need_id_namespace() { return sandbox_detail::user_has_subid_ranges(); }

void run_as_mapped_root(const std::function<void(bool all_ids)>& fn) {
  SandboxSpec spec;
  spec.isolation = Isolation::kUserns;
  run_in_child(spec, [&](int, bool all_ids) { fn(all_ids); }, [](const char*, std::size_t) {});
}

void remove_tree_as_mapped_root(const std::filesystem::path& dir) {
  remove_tree(dir);
  std::error_code ec;
  if (!owners_need_id_namespace() || !std::filesystem::exists(dir, ec)) return;
  try {
    run_as_mapped_root([&](bool) { remove_tree(dir); });
  } catch (const Error&) {
    // Best effort: the caller sees what is left.
  }
}

namespace {

void run_in_child(const SandboxSpec& spec, const std::function<void(int fd, bool all_ids)>& produce,
                  const std::function<void(const char* data, std::size_t size)>& consume) {
  const std::string prefix = "id namespace: ";
  Pipe data = make_pipe("an id namespace's output");
  Pipe err = make_pipe("an id namespace's errors");
  Pipe up = make_pipe("an id namespace's setup");
  Pipe down = make_pipe("an id namespace's setup");
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw_errno(prefix + "fork");
  if (pid == 0) {
    sandbox_detail::reset_signals();
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::close(data.read.release());
    ::close(err.read.release());
    ::close(up.read.release());
    ::close(down.write.release());
    char c = 1;
    if (::unshare(CLONE_NEWUSER) != 0) child_error(err.write.get(), std::string("unshare: ") + std::strerror(errno));
    if (::write(up.write.get(), &c, 1) != 1 || ::read(down.read.get(), &c, 1) != 1) ::_exit(1);
    try {
      produce(data.write.get(), c == 1);
    } catch (const std::exception& e) {
      child_error(err.write.get(), e.what());
    }
    ::_exit(0);
  }
  ChildGuard guard(pid);
  data.write.reset();
  err.write.reset();
  up.write.reset();
  down.read.reset();
  char c = 0;
  ssize_t n;
  do n = ::read(up.read.get(), &c, 1);
  while (n < 0 && errno == EINTR);
  if (n == 1) {
    c = sandbox_detail::write_id_maps(spec, pid, false) ? 2 : 1;
    write_all(down.write.get(), &c, 1, "an id namespace's setup pipe");
    down.write.reset();
    char buf[65536];
    for (;;) {
      n = ::read(data.read.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno(prefix + "read");
      if (n == 0) break;
      consume(buf, static_cast<std::size_t>(n));
    }
  }
  std::string why = read_text(err.read.get());
  int status = guard.wait();
  if (status != 0)
    throw Error(prefix + (why.empty() ? "the child ended with status " + std::to_string(status) : why));
}

}  // namespace

void remove_step_tree(const SandboxSpec& spec, const std::filesystem::path& dir) {
  remove_tree(dir);
  std::error_code ec;
  if (!step_files_need_id_namespace(spec) || !std::filesystem::exists(dir, ec)) return;
  try {
    run_in_id_namespace(spec, [&](int) { remove_tree(dir); }, [](const char*, std::size_t) {});
  } catch (const Error&) {
    // Best effort: the caller's scratch dir goes anyway.
  }
}

}  // namespace dockless
