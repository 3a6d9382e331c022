// The mounts of the userns sandbox: planned by the parent as a list of
// MountOps, run by the child (C2, inside the namespaces) below the new root.
#pragma once

#include <string>
#include <vector>

#include "src/sandbox/child_process.h"
#include "src/sandbox/sandbox.h"

namespace dockless::sandbox_detail {

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

/// The mounts in the order they are made: /proc, a minimal /dev, a tmpfs on
/// /tmp, the host's resolv.conf and hosts, the spec's binds and tmpfs, and the
/// working directory `workdir` (below the root, no leading '/'), each with
/// its step in `steps`.
std::vector<MountOp> sandbox_mount_ops(const SandboxSpec& spec, const std::string& workdir,
                                       Steps& steps);

/// Child-side: makes `op` below rootfd (an O_PATH fd of the new root);
/// reports a failure on errfd unless op.optional.
void run_op(int rootfd, const MountOp& op, int errfd);

/// The targets of `ops` that a diff must leave out (SandboxResult::
/// sandbox_paths): every mount and symlink, none below another.
std::vector<std::string> sandbox_paths(const std::vector<MountOp>& ops);

/// `p` with the characters overlay options treat specially escaped.
std::string escape_overlay_path(const std::string& p);

}  // namespace dockless::sandbox_detail
