#include "src/transfer/toml_document.h"

#include "base/error.h"

namespace dockless {

toml::table parse_toml_document(std::string_view text, const std::string& name) {
  try {
    return toml::parse(text, std::string_view(name));
  } catch (const toml::parse_error& e) {
    throw Error(name + ":" + std::to_string(e.source().begin.line) + ": not valid TOML: " +
                std::string(e.description()));
  }
}

}  // namespace dockless
