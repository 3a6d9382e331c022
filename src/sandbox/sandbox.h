// Running a command inside the base image's root filesystem without root
// privileges and without touching the host's /: how uv runs during a build.
#pragma once

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
};

/// Runs spec.argv and returns its exit status (128+N when killed by signal
/// N). Throws Error when the sandbox cannot be set up, naming the step that
/// failed and, for userns, what to try instead (--isolation chroot|host).
/// Network: the host's (uv must reach the package index); /etc/resolv.conf
/// and /etc/hosts of the host are visible; /tmp is a fresh tmpfs (or an empty
/// scratch dir); /proc and a minimal /dev (null, zero, full, random, urandom,
/// tty) exist.
int run_in_sandbox(const SandboxSpec& spec);

/// True when this process runs inside a container (/.dockerenv,
/// /run/.containerenv, or a container cgroup); --isolation host needs it
/// unless forced.
bool running_in_container();

}  // namespace dockless
