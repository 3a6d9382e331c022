// Isolation::kHost: no isolation, the command runs on this machine's own /
// (a pod running the base image itself).
#pragma once

#include "src/sandbox/sandbox.h"

namespace dockless::sandbox_detail {

/// run_in_sandbox for kHost; refuses to run outside a container unless
/// spec.force_host, and each bind's host path must already be its target.
SandboxResult run_host(const SandboxSpec& spec);

}  // namespace dockless::sandbox_detail
