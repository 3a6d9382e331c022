// Makes the environments the plan needs: uv runs in the base's root
// filesystem, one per environment no cache has, against the persistent uv
// cache (seeded from a --cache-from when this machine has none).
#pragma once

#include "src/build/build_state.h"
#include "src/build/uv_runner.h"

namespace dockless {

/// Makes every needed environment that is not made (or no longer whole)
/// on this machine; counts the uv runs in `s.uv_runs`.
void make_environments(BuildState& s);

/// uv.check-lock: `uv lock --check --offline` in the base's root filesystem;
/// throws Error when uv.lock is stale. Returns the seconds it took. Not an
/// environment build: `s.uv_runs` does not count it.
double check_uv_lock(BuildState& s);

/// How uv runs for this build over the root filesystem `rootfs` (no lower
/// layers set).
UvRunnerConfig uv_runner_config(BuildState& s, const std::filesystem::path& rootfs);

/// The layer of a uv-managed Python (uv.python = "3.13"): `uv python
/// install` in the sandbox over the steps at "base", into a fresh directory
/// that becomes the layer at uv.python-install-dir.
std::vector<CachedLayer> write_python_layer(BuildState& s, const std::string& name);

/// The layer of the shipped venv `env`, from its directory on this machine.
std::vector<CachedLayer> write_venv_layer(BuildState& s, const PlannedEnvironment& env, const std::string& name);

}  // namespace dockless
