// dockless.1, the man page, made from the same command tree as the help text.
#pragma once

#include <string>

#include "src/cli/cli_model.h"

namespace dockless {

/// A roff man page (section 1) of every command and option. No date in it,
/// so the same binary always makes the same page.
std::string man_page(const CliCommand& root, const std::string& version);

}  // namespace dockless
