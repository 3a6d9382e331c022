// Parsing TOML documents read by dockless (uv.lock, pyproject.toml), with
// one error shape: "NAME:LINE: not valid TOML: WHY".
#pragma once

#include <string>
#include <string_view>

#include <toml++/toml.h>

namespace dockless {

/// Parses `text`; `name` is what error messages call it. Throws Error.
toml::table parse_toml_document(std::string_view text, const std::string& name);

}  // namespace dockless
