// See chroot_sandbox.h.

#include "src/sandbox/chroot_sandbox.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/file_util.h"
#include "src/sandbox/child_process.h"
#include "src/sandbox/host_tools.h"
#include "src/sandbox/layer_stack.h"
#include "src/sandbox/root_paths.h"
#include "src/sandbox/run_dir.h"
#include "src/sandbox/spec_checks.h"

namespace dockless::sandbox_detail {
namespace {

namespace fs = std::filesystem;

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
    hidden_paths_.reserve(count);
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
    make_room(inside, b.target);
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

  /// Chroot mode's tmpfs: an empty dir, removed afterwards.
  void place_empty(const std::string& target, const fs::path& inside) {
    make_room(inside, target);
    fs::create_directory(inside);
    ::chmod(inside.c_str(), 01777);
    placed_.push_back({{}, inside, How::kEmpty});
  }

  /// Puts every host dir back, and the copy as the image had it (what was
  /// hidden back in place, the dirs made for targets gone when empty): a
  /// kept copy is diffed. Throws naming whatever could not be.
  void restore() {
    std::string failed;
    for (auto it = placed_.rbegin(); it != placed_.rend(); ++it) {
      try {
        if (it->how == How::kMoved) {
          if (::rename(it->inside.c_str(), it->host.c_str()) != 0)
            throw_errno("move " + it->inside.string() + " back to " + it->host.string());
        } else {
          if (it->how == How::kCopyBack) copy_back(it->inside, it->host);
          fs::remove_all(it->inside);
        }
      } catch (const std::exception& e) {
        failed += std::string(failed.empty() ? "" : "; ") + e.what();
      }
    }
    placed_.clear();
    for (auto it = hidden_paths_.rbegin(); it != hidden_paths_.rend(); ++it) {
      if (::rename(it->first.c_str(), it->second.c_str()) != 0)
        failed += std::string(failed.empty() ? "" : "; ") + "move " + it->second.string() + " back";
    }
    hidden_paths_.clear();
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) ::rmdir(it->c_str());
    created_.clear();
    if (!failed.empty()) {
      run_.keep();
      throw Error(prefix_ + failed + " (the data is kept under " + run_.path().string() + ")");
    }
  }

 private:
  enum class How { kMoved, kCopyBack, kCopyIn, kEmpty };
  struct Placed {
    fs::path host;
    fs::path inside;
    How how;
  };

  /// Creates the parents of `inside` (remembering which) and moves what the
  /// image has at `inside` aside, as a mount would hide it.
  void make_room(const fs::path& inside, const std::string& target) {
    std::vector<fs::path> missing;
    struct stat st;
    for (fs::path p = inside.parent_path(); ::lstat(p.c_str(), &st) != 0; p = p.parent_path())
      missing.push_back(p);
    std::error_code ec;
    fs::create_directories(inside.parent_path(), ec);
    if (ec) throw Error(prefix_ + "create " + inside.parent_path().string() + ": " + ec.message());
    created_.insert(created_.end(), missing.rbegin(), missing.rend());
    if (::lstat(inside.c_str(), &st) == 0) {
      fs::path aside = run_.path() / ("hidden-" + std::to_string(hidden_++));
      if (::rename(inside.c_str(), aside.c_str()) != 0)
        throw_errno(prefix_ + "move " + target + " of the image aside");
      hidden_paths_.emplace_back(aside, inside);
    }
  }

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
  std::vector<std::pair<fs::path, fs::path>> hidden_paths_;  ///< (aside, inside)
  std::vector<fs::path> created_;                             ///< parents made, top first
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

}  // namespace

SandboxResult run_chroot(const SandboxSpec& spec) {
  const std::string prefix = "sandbox (chroot): ";
  if (::geteuid() != 0)
    throw Error(prefix +
                "needs root (it copies the rootfs with its owners and calls chroot(2)); "
                "use --isolation userns when not root");
  check_common(spec, prefix, true);
  RunDir run(spec.scratch, prefix);
  // A kept copy is the step's result: the caller diffs it against the lower tree.
  bool keep = !spec.upper_dir.empty();
  fs::path root = keep ? spec.upper_dir : run.path() / "rootfs";
  std::error_code ec;
  if (keep) fs::remove(root, ec);  // empty (checked): cp wants no target
  copy_tree(spec.rootfs, root, prefix);
  for (auto it = spec.lower_layers.rbegin(); it != spec.lower_layers.rend(); ++it)
    apply_overlay_layer(*it, root, prefix);
  try {
    prepare_chroot_tree(spec, root, prefix);
  } catch (const fs::filesystem_error& e) {
    throw Error(prefix + "prepare " + root.string() + ": " + e.code().message() + " (" +
                e.path1().string() + ")");
  }
  SandboxResult result;
  result.sandbox_paths = {"dev", "tmp", "etc/resolv.conf", "etc/hosts"};
  BindPlacer binds(run, prefix, spec.binds.size() + spec.tmpfs.size());
  for (const auto& b : spec.binds) {
    std::string rel = path_in_root(b.target, "bind target");
    binds.place(b, resolve_in_root(root, rel));
    result.sandbox_paths.push_back(rel);
  }
  for (const auto& t : spec.tmpfs) {
    std::string rel = path_in_root(t.target, "tmpfs target");
    binds.place_empty(t.target, resolve_in_root(root, rel));
    result.sandbox_paths.push_back(rel);
  }
  std::string wd = path_in_root(spec.workdir, "working directory");
  fs::create_directories(resolve_in_root(root, wd), ec);

  Steps steps;
  int step_chroot = steps.add("chroot into " + root.string());
  ExecPlan exec = make_exec_plan(spec, steps, "/" + wd);
  set_exec_user(exec, spec, {}, root, steps);
  int step_net = spec.network == Network::kNone
                     ? steps.add("create a network namespace with only loopback")
                     : -1;
  auto [st, failure] = run_simple(spec, root.c_str(), step_chroot, exec, prefix, step_net);
  binds.restore();
  if (failure) throw Error(prefix + steps.describe(*failure));
  result.status = status_code(st);
  if (keep) result.changes = SandboxResult::Changes::kFullTree;
  return result;
}

}  // namespace dockless::sandbox_detail
