// Shell completion scripts for `dockless completion bash|zsh`, generated from
// the command tree so they never drift from the real options.
#pragma once

#include <string>

#include "src/cli/cli_model.h"

namespace dockless {

/// A bash script: `source <(dockless completion bash)` or a file in
/// bash-completion's completions directory.
std::string bash_completion(const CliCommand& root);

/// A zsh script: `_dockless` in a directory of $fpath, or sourced after compinit.
std::string zsh_completion(const CliCommand& root);

}  // namespace dockless
