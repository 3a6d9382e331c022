// The run-time settings a user gives an image (env, workdir, entrypoint, cmd,
// labels, user), parsed from command-line text and applied to a config.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "oci/image_config.h"

namespace dockless {

struct ImageSettings {
  std::vector<std::pair<std::string, std::string>> env;
  std::map<std::string, std::string> labels;
  std::optional<std::string> workdir;
  std::optional<std::string> user;
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> cmd;

  /// Applies to c: env entries replace same-named ones, labels are merged, and
  /// a new entrypoint without a new cmd clears the inherited cmd (as Docker).
  void apply(ContainerConfig& c) const;
};

/// "KEY=VALUE" -> (KEY, VALUE); throws UsageError naming `option` otherwise.
std::pair<std::string, std::string> parse_key_value(std::string_view text, std::string_view option);

/// A JSON array of strings (exec form) or a plain string, which becomes
/// ["/bin/sh", "-c", text] (shell form), as in a Dockerfile.
std::vector<std::string> parse_command(std::string_view text, std::string_view option);

/// PATH that runtimes assume when an image sets none.
inline constexpr const char* kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

}  // namespace dockless
