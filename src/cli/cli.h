// The command line: subcommands, their options, and dispatch.
#pragma once

namespace dockless {

/// Parses argv and runs the subcommand. Returns the exit status for success
/// paths (help, version); throws UsageError for a bad command line and Error
/// for a failure, which main() prints.
int run_cli(int argc, char** argv);

}  // namespace dockless
