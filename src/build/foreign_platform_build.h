// The parts of a build for a platform this machine cannot execute: uv runs
// in the host-platform twin of the base with --python-platform for the
// target (no emulator), unless the work needs the target's own CPU (a step,
// a package with only an sdist for it): then it runs in the target's base
// under binfmt_misc, or the build fails with one line saying how to enable it.
#pragma once

#include <filesystem>
#include <string>

#include "src/build/build_state.h"
#include "src/build/uv_runner.h"

namespace dockless {

/// After the base and uv are known: marks a foreign target, picks how its
/// environments are made (twin or emulated), fetches the twin's manifest
/// and the target's uv binary (s.image_uv; the host's uv otherwise).
void prepare_foreign(BuildState& s);

/// What the environment keys add for a foreign target ("" natively): the
/// mode, the twin base's digest, the python-platform override and the uv that runs.
std::string foreign_key_input(const BuildState& s);

/// The root filesystem uv runs in: the base's; for a foreign target the
/// twin's (after checking the interpreter and choosing --python-platform),
/// or, emulated, the target's once binfmt_misc is checked. Sets
/// c.python_platform where it applies.
std::filesystem::path uv_rootfs(BuildState& s);

/// Fills the foreign-platform part of a uv run's config (after uv_rootfs).
void apply_foreign(const BuildState& s, UvRunnerConfig& c);

/// Throws the one line when a step must run on a foreign target without emulation.
void check_step_can_run(const BuildState& s, const std::string& step_name);

}  // namespace dockless
