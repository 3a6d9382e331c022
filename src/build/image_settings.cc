#include "src/build/image_settings.h"

#include "base/error.h"
#include "oci/json_util.h"

namespace dockless {

void ImageSettings::apply(ContainerConfig& c) const {
  for (const auto& [k, v] : env) c.set_env(k, v);
  for (const auto& [k, v] : labels) c.labels[k] = v;
  if (workdir) c.working_dir = *workdir;
  if (user) c.user = *user;
  if (entrypoint) {
    c.entrypoint = *entrypoint;
    if (!cmd) c.cmd.reset();
  }
  if (cmd) c.cmd = *cmd;
}

std::pair<std::string, std::string> parse_key_value(std::string_view text, std::string_view option) {
  auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw UsageError(std::string(option) + " \"" + std::string(text) + "\": expected KEY=VALUE");
  return {std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
}

std::vector<std::string> parse_command(std::string_view text, std::string_view option) {
  std::size_t first = text.find_first_not_of(" \t");
  if (first != std::string_view::npos && text[first] == '[') {
    rapidjson::Document doc;
    doc.Parse(text.data(), text.size());
    if (doc.HasParseError() || !doc.IsArray())
      throw UsageError(std::string(option) + " " + std::string(text) +
                       ": not a JSON array of strings");
    std::vector<std::string> out;
    for (const auto& v : doc.GetArray()) {
      if (!v.IsString())
        throw UsageError(std::string(option) + " " + std::string(text) +
                         ": not a JSON array of strings");
      out.emplace_back(v.GetString(), v.GetStringLength());
    }
    return out;
  }
  if (text.empty()) return {};
  return {"/bin/sh", "-c", std::string(text)};
}

}  // namespace dockless
