// What the command line gives the build steps besides the spec: named
// contexts (--context NAME=DIR, buildx's --build-context) for bind mounts,
// and secrets (--secret id=NAME,src=FILE) for secret mounts. A secret's
// file name and id may appear in messages; its contents never do.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "src/build/build_spec.h"

namespace dockless {

struct StepInputs {
  std::map<std::string, std::filesystem::path> contexts;  ///< --context NAME=DIR
  std::map<std::string, std::filesystem::path> secrets;   ///< --secret id=NAME,src=FILE
};

/// Adds one --context NAME=DIR. Throws UsageError on a bad form or a NAME given twice.
void add_context_option(StepInputs& inputs, const std::string& text);

/// Adds one --secret id=NAME,src=FILE (also source=FILE, and type=file).
/// Throws UsageError on a bad form or an id given twice.
void add_secret_option(StepInputs& inputs, const std::string& text);

/// Checks what the steps that will run (not skipped ones) need before any of
/// them runs: each context is a directory, each secret file is readable, each
/// bind source exists inside the project or its context (symlinks resolved),
/// and every mount names a given context or secret (a secret with
/// required = false may be missing: that mount is left out). Throws Error
/// with one line: "dockless.toml:14:3: [[step]] \"setup\" mounts[2]: context
/// \"custom-setup\" is not given (pass --context custom-setup=DIR)".
void check_step_inputs(const BuildSpec& spec, const std::filesystem::path& project_dir, const StepInputs& inputs);

}  // namespace dockless
