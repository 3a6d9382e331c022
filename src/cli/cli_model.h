// The command tree of the CLI11 app as plain data, so the shell completion
// scripts and the man page follow the real options instead of a hand list.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace dockless {

struct CliOption {
  std::vector<std::string> names;  // "-j", "--jobs"; empty for a positional
  std::string positional;          // the positional's name ("dir")
  std::string type_name;           // "TEXT", "INT", "MODE"; empty for a flag
  std::string description;
  bool takes_value = false;
};

struct CliCommand {
  std::string path;  // "" for the program, "cache prune" for a nested one
  std::string description;
  std::vector<CliOption> options;       // named options and positionals, in order
  std::vector<CliCommand> subcommands;  // visible ones only
};

/// Walks app and its visible subcommands (hidden ones, group "", are left out).
CliCommand describe_cli(const CLI::App& app);

/// Every command of the tree, depth first, the root first.
std::vector<const CliCommand*> flatten(const CliCommand& root);

}  // namespace dockless
