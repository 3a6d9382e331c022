// The project installed into a venv (install-project): a layer after the
// source layer holding only what installing the project adds to the venv
// (its dist-info, the .pth or the built package, the entry-point scripts).
// The venv's own layer never holds project files, so a source edit never
// remakes it, and an editable install's layer survives source edits too.
#pragma once

#include <string>
#include <vector>

#include "src/build/build_state.h"

namespace dockless {

/// Installs the project into a copy of the made venv of `env` with uv (in
/// the base's root filesystem, the source mounted at its destination) and
/// returns the layer of what that added or changed, named `name`.
std::vector<CachedLayer> write_project_layer(BuildState& s, const PlannedEnvironment& env, const std::string& name);

}  // namespace dockless
