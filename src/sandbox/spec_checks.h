// What every isolation mode does with a SandboxSpec before it starts: the
// same checks of the command, working directory and binds, and the notes
// about choices the sandbox made on its own.
#pragma once

#include <string>

#include "src/sandbox/sandbox.h"

namespace dockless::sandbox_detail {

/// Tells spec.on_note, when set, one line about a choice the sandbox made.
void note(const SandboxSpec& spec, const std::string& text);

/// Throws UsageError or Error (starting with prefix) unless the spec has a
/// command, an absolute working directory and existing bind sources whose
/// targets are below the root; with needs_rootfs, also a rootfs directory
/// and a scratch dir.
void check_common(const SandboxSpec& spec, const std::string& prefix, bool needs_rootfs);

}  // namespace dockless::sandbox_detail
