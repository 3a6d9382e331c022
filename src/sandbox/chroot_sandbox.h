// Isolation::kChroot: root without namespaces (a root pod): a private copy of
// the rootfs, chroot(2), binds renamed (or copied) into the copy and back.
#pragma once

#include "src/sandbox/sandbox.h"

namespace dockless::sandbox_detail {

/// run_in_sandbox for kChroot; refuses to run when not root.
SandboxResult run_chroot(const SandboxSpec& spec);

}  // namespace dockless::sandbox_detail
