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

}  // namespace

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

}  // namespace dockless::sandbox_detail
