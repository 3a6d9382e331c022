// See userns_sandbox.h.
//
// Processes: the caller forks C1, which unshares the namespaces and waits
// while the caller writes its uid/gid maps; C1 forks C2, pid 1 of the new
// pid namespace, which mounts everything (a fresh /proc needs a process
// inside the pid namespace), pivots and forks C3, the command. C2 stays as a
// minimal init: it reaps orphans and exits with C3's status, and its exit
// kills whatever C3 left behind. Nothing is mounted in the caller's mount
// namespace.

#include "src/sandbox/userns_sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/file_util.h"
#include "src/sandbox/child_process.h"
#include "src/sandbox/host_tools.h"
#include "src/sandbox/id_namespace.h"
#include "src/sandbox/id_maps.h"
#include "src/sandbox/layer_stack.h"
#include "src/sandbox/mount_ops.h"
#include "src/sandbox/root_paths.h"
#include "src/sandbox/run_dir.h"
#include "src/sandbox/spec_checks.h"

namespace dockless::sandbox_detail {
namespace {

namespace fs = std::filesystem;

constexpr const char* kUsernsHint = "; try --isolation chroot (as root) or --isolation host";

struct UsernsPlan {
  RootfsMethod method = RootfsMethod::kOverlay;
  std::string merged;  ///< the new root: overlay mount point, or the private copy
  /// Kernel overlay options, tried in order: userxattr (trusted.* xattrs
  /// need CAP_SYS_ADMIN in the initial namespace), then without it for
  /// kernels that lack it, then without the redirect/metacopy options too.
  std::vector<std::string> overlay_data;
  std::vector<std::string> fuse_store;
  std::vector<char*> fuse_argv;
  std::string fuse_log;  ///< its messages: for the error, not the command's output
  std::string trusted_marker;  ///< created when the overlay needed trusted.* xattrs
  bool new_net = false;
  std::vector<MountOp> ops;
  ExecPlan exec;
  int step_unshare = -1;
  int step_fork = -1;
  int step_private = -1;
  int step_rootfs = -1;
  int step_open_root = -1;
  int step_pivot = -1;
  int step_net = -1;
};

/// Where one attempt keeps its upper dir, work dir and private copy: in the
/// run dir (thrown away), or at SandboxSpec::upper_dir (kept).
struct RunPaths {
  fs::path upper;
  fs::path work;
  fs::path copy;
};

RunPaths run_paths(const SandboxSpec& spec, const fs::path& run) {
  if (spec.upper_dir.empty()) return {run / "upper", run / "work", run / "rootfs"};
  return {spec.upper_dir, spec.upper_dir.string() + ".work", spec.upper_dir};
}

[[noreturn]] void userns_init(const UsernsPlan& plan, int errfd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Private, so nothing mounted here propagates back to the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    child_fail(errfd, plan.step_private, errno);
  if (plan.new_net && bring_loopback_up() != 0) child_fail(errfd, plan.step_net, errno);
  const char* merged = plan.merged.c_str();
  switch (plan.method) {
    case RootfsMethod::kAuto:
    case RootfsMethod::kOverlay: {
      int first = 0;
      std::size_t i = 0;
      for (; i < plan.overlay_data.size(); ++i) {
        if (::mount("overlay", merged, "overlay", 0, plan.overlay_data[i].c_str()) == 0) break;
        if (i == 0) first = errno;
      }
      if (i == plan.overlay_data.size()) child_fail(errfd, plan.step_rootfs, first);
      if (plan.overlay_data[i].find(",userxattr") == std::string::npos) {
        // Tell the parent which xattrs mark opaque dirs in the upper dir.
        int m = ::open(plan.trusted_marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (m >= 0) ::close(m);
      }
      break;
    }
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
  // The network namespace inside the user namespace: a user may create it there.
  int net = plan.new_net ? CLONE_NEWNET : 0;
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | net) != 0)
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

/// Creates a mount point that the image lacks in the overlay's upper dir,
/// from the parent, with the modes of the image's dirs on the way. Inside the
/// namespace, root may not write into a dir whose owner is not mapped (a
/// root-owned rootfs used without root); the calling user can. Paths with a
/// symlink on the way are left to the child, which resolves them in the root.
/// What it made is appended to `made` (parents first), to be removed after
/// the run: mount points are not changes of the step. (For the private
/// copy, `lower` and `upper` are both the copy and `layers` is empty.)
void precreate_mount_point(const std::vector<fs::path>& layers, const fs::path& lower,
                           const fs::path& upper, const std::string& rel, bool is_file,
                           std::vector<fs::path>& made) {
  if (rel.empty() || resolve_in_root(lower, rel) != lower / rel) return;
  if (find_in_stack(layers, lower, rel)) return;
  auto parts = split_path(rel);
  std::string lo;
  fs::path up = upper;
  struct stat st;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    lo += (i == 0 ? "" : "/") + parts[i];
    up /= parts[i];
    bool last = i + 1 == parts.size();
    if (::lstat(up.c_str(), &st) == 0) continue;
    if (last && is_file) {
      UniqueFd fd(::open(up.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      if (fd) made.push_back(up);
      return;
    }
    auto in_image = find_in_stack(layers, lower, lo);
    mode_t mode = in_image && ::lstat(in_image->c_str(), &st) == 0 && S_ISDIR(st.st_mode)
                      ? (st.st_mode & 07777)
                      : 0755;
    if (::mkdir(up.c_str(), 0700) != 0) return;  // the child will say what is wrong
    made.push_back(up);
    ::chmod(up.c_str(), mode);
  }
}

/// Removes what precreate_mount_point made, last first, where it is still
/// empty (a parent the command also wrote into stays: it is a change).
void remove_mount_points(const std::vector<fs::path>& made) {
  for (auto it = made.rbegin(); it != made.rend(); ++it) {
    struct stat st;
    if (::lstat(it->c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      ::rmdir(it->c_str());
    } else if (S_ISREG(st.st_mode) && st.st_size == 0) {
      ::unlink(it->c_str());
    }
  }
}

/// The overlay mount options: the lower dirs (earlier layers over the
/// rootfs), upper and work dir.
std::string overlay_options(const SandboxSpec& spec, const RunPaths& paths) {
  std::string lower;
  for (const auto& l : spec.lower_layers) lower += escape_overlay_path(l.string()) + ":";
  lower += escape_overlay_path(spec.rootfs.string());
  return "lowerdir=" + lower + ",upperdir=" + escape_overlay_path(paths.upper.string()) +
         ",workdir=" + escape_overlay_path(paths.work.string());
}

UsernsPlan make_userns_plan(const SandboxSpec& spec, RootfsMethod method, const fs::path& run,
                            Steps& steps, std::vector<fs::path>& made) {
  UsernsPlan plan;
  plan.method = method;
  plan.step_unshare = steps.add(spec.network == Network::kNone
                                    ? "create user, mount, pid and network namespaces"
                                    : "create user, mount and pid namespaces");
  plan.step_fork = steps.add("fork inside the namespaces");
  plan.step_private = steps.add("make the mounts private");
  plan.step_open_root = steps.add("open the new root");
  plan.step_pivot = steps.add("pivot_root into the new root");
  plan.new_net = spec.network == Network::kNone;
  plan.step_net = steps.add("bring up loopback in the new network namespace");
  plan.trusted_marker = (run / "trusted-xattrs").string();

  RunPaths paths = run_paths(spec, run);
  fs::path merged = method == RootfsMethod::kCopy ? paths.copy : run / "merged";
  plan.merged = merged.string();
  if (method == RootfsMethod::kCopy) {
    plan.step_rootfs = steps.add("bind the private copy " + plan.merged);
  } else {
    fs::create_directory(paths.upper);
    fs::create_directory(paths.work);
    fs::create_directory(merged);
    std::string opts = overlay_options(spec, paths);
    // No redirect or metacopy entries: the upper dir becomes a layer as it
    // is. "nofollow", not "off": off means follow where the module's
    // redirect_always_follow is set, which userxattr refuses.
    const std::string plain_upper = ",redirect_dir=nofollow,metacopy=off";
    // "volatile" (Linux 5.10+): no syncfs of the upper dir's file system
    // when the overlay goes away. Without it each run's unmount waited for
    // everything dirty on that file system (the uv cache, the other envs'
    // venvs): ~0.2 s a run on a journaled ext4. The upper dir is a fresh
    // scratch dir whose contents become a layer (fsynced as a blob), never
    // trusted after a crash, so the sync bought nothing. Older kernels
    // refuse the option and take the next variant.
    const std::string quick = ",volatile";
    plan.overlay_data = {opts + ",userxattr" + plain_upper + quick, opts + plain_upper + quick,
                         opts + ",userxattr" + plain_upper, opts + plain_upper, opts};
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

  std::string wd = path_in_root(spec.workdir, "working directory");
  plan.ops = sandbox_mount_ops(spec, wd, steps);

  bool copy = method == RootfsMethod::kCopy;
  for (const auto& op : plan.ops) {
    // Below /dev is the sandbox's own tmpfs.
    if (op.kind == MountOp::Kind::kSymlink || op.target.rfind("dev/", 0) == 0) continue;
    if (op.kind == MountOp::Kind::kMkdir) continue;  // the working directory is a change
    if (copy)
      precreate_mount_point({}, paths.copy, paths.copy, op.target, op.is_file, made);
    else
      precreate_mount_point(spec.lower_layers, spec.rootfs, paths.upper, op.target, op.is_file, made);
  }
  plan.exec = make_exec_plan(spec, steps, "/" + wd);
  if (method == RootfsMethod::kCopy)
    set_exec_user(plan.exec, spec, {}, paths.copy, steps);
  else
    set_exec_user(plan.exec, spec, spec.lower_layers, spec.rootfs, steps);
  return plan;
}

struct Attempt {
  std::optional<ChildFailure> failure;
  std::string detail;  ///< what a failed helper said
  Steps steps;
  int step_rootfs = -1;
  int step_user = -1;
  int status = 0;
  bool single_id = false;
  std::string uid_map, gid_map;  ///< as /proc/PID/{uid,gid}_map show them
  bool trusted = false;  ///< the overlay marks opaque dirs with trusted.* xattrs
  std::vector<std::string> sandbox_paths;
};

/// What fuse-overlayfs wrote to its log, as one line for an error message.
std::string fuse_log_summary(const std::string& path) {
  std::string detail;
  try {
    std::istringstream log(read_file(path));
    for (std::string line; std::getline(log, line) && detail.size() < 300;) {
      if (line.empty() || line.find("unknown argument ignored") != std::string::npos) continue;
      detail += (detail.empty() ? "" : "; ") + line;
    }
  } catch (const Error&) {
    // No log: the exit status is all there is.
  }
  return detail;
}

/// The rootfs with the lower layers applied, at `copy`.
void make_private_copy(const SandboxSpec& spec, const fs::path& copy, const std::string& prefix) {
  std::error_code ec;
  fs::remove(copy, ec);  // an empty upper_dir: cp wants no target
  copy_tree(spec.rootfs, copy, prefix);
  for (auto it = spec.lower_layers.rbegin(); it != spec.lower_layers.rend(); ++it)
    apply_overlay_layer(*it, copy, prefix);
}

Attempt userns_attempt(const SandboxSpec& spec, RootfsMethod method, const fs::path& run) {
  const std::string prefix = "sandbox (userns): ";
  Attempt a;
  if (method == RootfsMethod::kCopy) make_private_copy(spec, run_paths(spec, run).copy, prefix);
  std::vector<fs::path> made;
  UsernsPlan plan = make_userns_plan(spec, method, run, a.steps, made);
  a.step_rootfs = plan.step_rootfs;
  a.step_user = plan.exec.step_user;
  a.sandbox_paths = sandbox_paths(plan.ops);
  struct Cleanup {
    std::vector<fs::path>& made;
    ~Cleanup() { remove_mount_points(made); }
  } cleanup{made};

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
  ChildGuard guard(pid, /*kill_group=*/true);
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
    a.single_id = write_id_maps(spec, pid);
    a.uid_map = read_file("/proc/" + std::to_string(pid) + "/uid_map");
    a.gid_map = read_file("/proc/" + std::to_string(pid) + "/gid_map");
  } catch (const Error& e) {
    throw Error(prefix + e.what() + kUsernsHint);
  }
  write_all(down.write.get(), &c, 1, "the sandbox setup pipe");
  down.write.reset();

  int st = pump_output(pid, out.read.get(), spec.on_output);
  guard.release();
  a.failure = read_failure(err.read.get());
  a.status = status_code(st);
  a.trusted = ::access(plan.trusted_marker.c_str(), F_OK) == 0;
  if (a.failure && a.failure->step == plan.step_rootfs && !plan.fuse_log.empty())
    a.detail = fuse_log_summary(plan.fuse_log);
  return a;
}

/// One attempt's dirs: the run dir always goes; a kept upper dir's work dir
/// goes too, and the upper dir itself when the attempt failed.
class AttemptDirs {
 public:
  AttemptDirs(const SandboxSpec& spec, const std::string& prefix)
      : spec_(spec), run_(spec.scratch, prefix) {
    run_.keep();  // removed here, not by RunDir's destructor
  }
  AttemptDirs(const AttemptDirs&) = delete;
  AttemptDirs& operator=(const AttemptDirs&) = delete;
  ~AttemptDirs() {
    remove_step_tree(spec_, run_.path());
    if (spec_.upper_dir.empty()) return;
    remove_step_tree(spec_, run_paths(spec_, run_.path()).work);
    if (!succeeded_) remove_step_tree(spec_, spec_.upper_dir);
  }
  const fs::path& path() const { return run_.path(); }
  void succeeded() { succeeded_ = true; }

 private:
  const SandboxSpec& spec_;
  RunDir run_;
  bool succeeded_ = false;
};

SandboxResult attempt_result(const SandboxSpec& spec, RootfsMethod method, const Attempt& a) {
  SandboxResult r;
  r.status = a.status;
  r.single_id_map = a.single_id;
  r.uid_map = a.uid_map;
  r.gid_map = a.gid_map;
  r.sandbox_paths = a.sandbox_paths;
  if (spec.upper_dir.empty()) return r;
  if (method == RootfsMethod::kCopy) {
    r.changes = SandboxResult::Changes::kFullTree;
  } else {
    r.changes = SandboxResult::Changes::kOverlayUpper;
    r.opaque_xattr = method == RootfsMethod::kFuseOverlayfs ? "user.fuseoverlayfs.opaque"
                     : a.trusted                           ? "trusted.overlay.opaque"
                                                           : "user.overlay.opaque";
  }
  return r;
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

}  // namespace

SandboxResult run_userns(const SandboxSpec& spec) {
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
    AttemptDirs dirs(spec, prefix);
    Attempt a = userns_attempt(spec, order[i], dirs.path());
    if (!a.failure) {
      if (spec.rootfs_method == RootfsMethod::kAuto) g_userns_method = static_cast<int>(order[i]);
      dirs.succeeded();
      if (order[i] == RootfsMethod::kFuseOverlayfs && !spec.upper_dir.empty())
        normalize_fuse_upper(spec.upper_dir);
      return attempt_result(spec, order[i], a);
    }
    std::string why = a.steps.describe(*a.failure) + (a.detail.empty() ? "" : " (" + a.detail + ")");
    bool rootfs_step = a.failure->step == a.step_rootfs;
    if (rootfs_step && i + 1 < order.size()) {
      note(spec, prefix + why + "; using " + method_name(order[i + 1]));
      continue;
    }
    if (a.failure->step == a.step_user && a.single_id)
      why += " (only one id is mapped in this sandbox: give this user /etc/subuid and "
             "/etc/subgid ranges and install newuidmap, or run as root)";
    throw Error(prefix + why + kUsernsHint);
  }
  throw Error(prefix + "no way to present the root filesystem" + kUsernsHint);
}

}  // namespace dockless::sandbox_detail
