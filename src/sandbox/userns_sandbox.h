// Isolation::kUserns: user + mount + pid + ipc namespaces, the rootfs under
// an overlay (or fuse-overlayfs, or a private copy), pivot_root.
#pragma once

#include "src/sandbox/sandbox.h"

namespace dockless::sandbox_detail {

/// run_in_sandbox for kUserns; tries the rootfs methods in turn for kAuto.
SandboxResult run_userns(const SandboxSpec& spec);

}  // namespace dockless::sandbox_detail
