// Running a command inside the base image's root filesystem without root
// privileges and without touching the host's /: how uv runs during a build,
// and how a `[[step]]` runs and leaves what it changed as a layer (an
// overlay upper dir, or a private copy to diff; see SandboxResult).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace dockless {

enum class Isolation {
  kUserns,  ///< user + mount namespace, overlay over the rootfs, pivot_root (default)
  kChroot,  ///< root without namespaces (a root pod): a private copy of the rootfs, chroot(2);
            ///< no mounts: binds are renamed into the copy and back (copied across
            ///< filesystems; read-only ones are copies), no /proc
  kHost,    ///< no isolation: run on this machine's / (a pod running the base image itself);
            ///< each bind's host path must already be its target
};

/// Parses "userns", "chroot" or "host"; throws UsageError otherwise.
Isolation parse_isolation(std::string_view text);

/// A host directory made visible at a path inside the sandbox.
struct BindMount {
  std::filesystem::path host;  ///< must exist
  std::string target;          ///< absolute path inside the sandbox; created if missing
  bool read_only = false;
};

/// A fresh tmpfs at a path inside the sandbox (chroot mode: an empty dir
/// whose content is thrown away afterwards).
struct TmpfsMount {
  std::string target;       ///< absolute path inside the sandbox; created if missing
  std::uint64_t size = 0;   ///< bytes; 0 = the kernel's default (half of RAM)
};

/// kHost: the host's network (uv and apt reach the index). kNone: a new
/// network namespace with only loopback, up.
enum class Network { kHost, kNone };

/// How the userns sandbox presents the rootfs. kAuto tries the kernel overlay,
/// then fuse-overlayfs (when installed), then a private copy, and remembers
/// what worked for the rest of the process.
enum class RootfsMethod { kAuto, kOverlay, kFuseOverlayfs, kCopy };

struct SandboxSpec {
  Isolation isolation = Isolation::kUserns;
  /// The root filesystem (read-only input: never modified; writes outside
  /// the binds land in a scratch upper dir that is thrown away).
  std::filesystem::path rootfs;
  std::vector<BindMount> binds;
  std::vector<std::string> argv;  ///< argv[0] is looked up on the sandbox's PATH
  std::vector<std::string> env;   ///< the whole environment, "K=V"
  std::string workdir = "/";
  /// Scratch space on the host (overlay upper/work dirs, chroot copy).
  std::filesystem::path scratch;
  /// Each line the command writes to stdout or stderr, as it comes.
  std::function<void(std::string_view line)> on_output;
  /// Optional: one line about each choice the sandbox made on its own (a
  /// fallback taken, e.g. "kernel overlay refused ...; using fuse-overlayfs").
  std::function<void(std::string_view note)> on_note;
  /// kHost refuses to run outside a container unless this is set (--force).
  bool force_host = false;
  /// userns only; the others ignore it.
  RootfsMethod rootfs_method = RootfsMethod::kAuto;

  // --- For build steps -----------------------------------------------------
  /// Earlier steps' layers in overlay format (0/0 char-device whiteouts,
  /// opaque xattrs), upper-most first, stacked above `rootfs`. Never modified.
  std::vector<std::filesystem::path> lower_layers;
  /// When set, what the command changed is kept here (see SandboxResult::
  /// changes) instead of thrown away. Must not exist yet, or be an empty dir;
  /// its parent must exist. The overlay's work dir is made beside it
  /// (`<upper_dir>.work`) and removed afterwards.
  std::filesystem::path upper_dir;
  std::vector<TmpfsMount> tmpfs;
  Network network = Network::kHost;
  /// "" (root, as today), "NAME", "UID", "UID:GID" or "NAME:GROUP", resolved
  /// against the image's /etc/passwd and /etc/group (as the earlier layers
  /// left them). The command runs with that uid, gid and the user's
  /// supplementary groups (none where the id map forbids setgroups), and
  /// HOME from passwd when `env` has no HOME.
  std::string user;
};

/// What a run left for the caller.
struct SandboxResult {
  int status = 0;  ///< the command's exit status (128+N when killed by signal N)
  enum class Changes {
    kNone,          ///< upper_dir was not set, or host mode
    kOverlayUpper,  ///< upper_dir is an overlay upper dir: new/changed entries, 0/0 char
                    ///< device whiteouts, opaque dirs marked with `opaque_xattr`
    kFullTree,      ///< upper_dir is the whole root after the run (chroot mode, or the
                    ///< userns copy fallback): diff it against rootfs + lower_layers
  };
  Changes changes = Changes::kNone;
  /// kOverlayUpper: the xattr (value "y") that marks opaque dirs:
  /// "user.overlay.opaque" (kernel overlay in a user namespace, userxattr),
  /// "trusted.overlay.opaque" (kernels without userxattr), or
  /// "user.fuseoverlayfs.opaque" (fuse-overlayfs; its marker files are
  /// removed and its `.wh.NAME` files made char devices where mknod works).
  /// Other *.overlay.* xattrs (origin, impure) are bookkeeping: drop them.
  std::string opaque_xattr;
  /// Paths below the root (no leading '/') that the sandbox itself mounted
  /// or placed (/proc, /dev, /tmp, resolv.conf, hosts, binds, tmpfs): a
  /// diff or layer writer must leave them (and what is below them) out. The
  /// mount points the sandbox had to create are already removed from
  /// upper_dir when still empty.
  std::vector<std::string> sandbox_paths;
  /// userns: only one id was mapped (a user without /etc/subuid ranges or
  /// newuidmap): a command that chowns to another id (apt's _apt) fails;
  /// apt then needs `-o APT::Sandbox::User=root`.
  bool single_id_map = false;
  /// userns: the id maps of the sandbox, as /proc/PID/uid_map shows them
  /// ("inside outside count" lines). The upper dir's files are owned by the
  /// outside ids; a layer must hold the inside ones. Empty: ids are as on the host.
  std::string uid_map, gid_map;
};

/// Runs spec.argv and returns its exit status (128+N when killed by signal
/// N). Throws Error when the sandbox cannot be set up, naming the step that
/// failed and, for userns, what to try instead (--isolation chroot|host).
/// Network: the host's (uv must reach the package index); /etc/resolv.conf
/// and /etc/hosts of the host are visible; /tmp is a fresh tmpfs (or an empty
/// scratch dir); /proc and a minimal /dev (null, zero, full, random, urandom,
/// tty) exist.
int run_in_sandbox(const SandboxSpec& spec);

/// run_in_sandbox with everything a build step needs to know afterwards.
SandboxResult run_sandbox(const SandboxSpec& spec);

/// True when this process runs inside a container (/.dockerenv,
/// /run/.containerenv, or a container cgroup); --isolation host needs it
/// unless forced.
bool running_in_container();

}  // namespace dockless
