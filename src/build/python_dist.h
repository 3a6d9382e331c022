// Python distribution names as installers write them: the PEP 503 form a
// package is matched by, and the name and version in a `.dist-info` dir.
// Shared by the uv cache split (which venv uses which archive) and the SBOM.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace dockless {

/// PEP 503: lower case, runs of -_. as one -.
std::string normalize_python_name(std::string_view name);

/// "foo_bar-1.2.dist-info" -> {"foo_bar", "1.2"} (the name as written);
/// nullopt for any other name, or an empty name or version.
std::optional<std::pair<std::string, std::string>> dist_info_name(const std::string& dir);

}  // namespace dockless
