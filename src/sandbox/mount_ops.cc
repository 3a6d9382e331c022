// See mount_ops.h.

#include "src/sandbox/mount_ops.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

#include "src/sandbox/root_paths.h"

// Not declared by older C libraries (the same number on every architecture
// since Linux 5.x's unified syscall table).
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

namespace dockless::sandbox_detail {
namespace {

// Own copy of the kernel ABI struct: <linux/mount.h> clashes with
// <sys/mount.h> on some glibc versions.
struct MountAttr {
  std::uint64_t attr_set;
  std::uint64_t attr_clr;
  std::uint64_t propagation;
  std::uint64_t userns_fd;
};
constexpr std::uint64_t kMountAttrRdonly = 0x1;
constexpr unsigned kAtRecursive = 0x8000;

using Kind = MountOp::Kind;

void add_op(std::vector<MountOp>& ops, Steps& steps, MountOp op, std::string what) {
  op.step = steps.add(std::move(what));
  ops.push_back(std::move(op));
}

MountOp fs_op(std::string source, std::string target, std::string type, unsigned long flags,
              std::string data) {
  MountOp op;
  op.kind = Kind::kFs;
  op.source = std::move(source);
  op.target = std::move(target);
  op.fstype = std::move(type);
  op.flags = flags;
  op.data = std::move(data);
  return op;
}

MountOp bind_op(std::string host, std::string target, bool is_file, bool ro) {
  MountOp op;
  op.kind = Kind::kBind;
  op.source = std::move(host);
  op.target = std::move(target);
  op.is_file = is_file;
  op.read_only = ro;
  return op;
}

/// /proc, /dev, /tmp and the host's resolv.conf and hosts.
void add_system_mounts(std::vector<MountOp>& ops, Steps& steps) {
  auto add = [&](MountOp op, std::string what) {
    add_op(ops, steps, std::move(op), std::move(what));
  };
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

}  // namespace

std::vector<MountOp> sandbox_mount_ops(const SandboxSpec& spec, const std::string& workdir,
                                       Steps& steps) {
  std::vector<MountOp> ops;
  auto add = [&](MountOp op, std::string what) {
    add_op(ops, steps, std::move(op), std::move(what));
  };
  // The system mounts first, so that a user bind below /tmp or /dev is
  // mounted on top of them rather than hidden by them.
  add_system_mounts(ops, steps);
  for (const auto& b : spec.binds) {
    struct stat st;
    ::stat(b.host.c_str(), &st);  // checked in check_common
    std::string rel = path_in_root(b.target, "bind target");
    add(bind_op(b.host.string(), rel, !S_ISDIR(st.st_mode), b.read_only),
        "bind " + b.host.string() + " at /" + rel + (b.read_only ? " (read-only)" : ""));
  }
  for (const auto& t : spec.tmpfs) {
    std::string rel = path_in_root(t.target, "tmpfs target");
    std::string data = "mode=1777" + (t.size > 0 ? ",size=" + std::to_string(t.size) : "");
    add(fs_op("tmpfs", rel, "tmpfs", MS_NOSUID | MS_NODEV, data), "mount a tmpfs on /" + rel);
  }
  MountOp mk;
  mk.kind = Kind::kMkdir;
  mk.target = workdir;
  add(mk, "create the working directory /" + workdir);
  return ops;
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

std::vector<std::string> sandbox_paths(const std::vector<MountOp>& ops) {
  std::vector<std::string> out;
  for (const auto& op : ops) {
    if (op.kind == Kind::kMkdir) continue;
    bool below = false;  // e.g. dev/null below dev
    for (const auto& p : out) below = below || op.target.rfind(p + "/", 0) == 0 || op.target == p;
    if (!below) out.push_back(op.target);
  }
  return out;
}

std::string escape_overlay_path(const std::string& p) {
  std::string out;
  for (char c : p) {
    if (c == ',' || c == ':' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace dockless::sandbox_detail
