// Reading [[step]] tables into StepSpecs (step_spec.h), with the spec's
// messages: file, line, the step's name and the key.
#pragma once

#include <vector>

#include "src/build/spec_reader.h"
#include "src/build/step_spec.h"

namespace dockless::toml_spec {

/// The steps of `steps` (the root's "step" node; nullptr = none), in file
/// order, with ${NAME}s substituted from `args`.
std::vector<StepSpec> read_steps(const SpecReader& r, const toml::node* steps, SpecArgs& args);

}  // namespace dockless::toml_spec
