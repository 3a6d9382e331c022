// Runs a build as a list of steps: read the spec and source, fetch the
// base, find uv, plan (build_plan.h), make the environments the plan needs,
// write the layers no cache has, assemble the image, write the outputs.
#pragma once

#include "oci/digest.h"
#include "src/build/build_command.h"

namespace dockless {

/// Builds and writes every output; returns the image's manifest digest.
Digest execute_build(const BuildOptions& options);

}  // namespace dockless
