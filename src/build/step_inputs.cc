// --context and --secret: parsing and the checks before any step runs; see step_inputs.h.
#include "src/build/step_inputs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "base/error.h"

namespace dockless {
namespace {

namespace fs = std::filesystem;

// Context and secret names: what a mount's `context` / `id` may say.
bool is_input_name(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool is_inside_or_same(const fs::path& inner, const fs::path& outer) {
  auto o = outer.begin();
  auto i = inner.begin();
  for (; o != outer.end(); ++o, ++i)
    if (i == inner.end() || *i != *o) return false;
  return true;
}

// The bind mount's source on the host: under `root`, and still under it
// once symlinks are resolved.
void check_bind_source(const StepMount& m, const fs::path& root, const std::string& root_name) {
  std::error_code ec;
  const fs::path real_root = fs::canonical(root, ec);
  if (ec) throw Error(m.origin + ": cannot read " + root_name + " " + root.string() + ": " + ec.message());
  const fs::path wanted = m.source == "." ? real_root : real_root / m.source;
  const fs::path real = fs::canonical(wanted, ec);
  if (ec)
    throw Error(m.origin + ": source \"" + m.source + "\" does not exist in " + root_name + " " + root.string());
  if (!is_inside_or_same(real, real_root))
    throw Error(m.origin + ": source \"" + m.source + "\" leads outside " + root_name + " " + root.string() +
                " (through a symlink)");
}

void check_mount(const StepMount& m, const fs::path& project_dir, const StepInputs& inputs) {
  switch (m.type) {
    case StepMount::Type::kBind:
      if (m.context.empty()) {
        check_bind_source(m, project_dir, "the project");
      } else {
        auto it = inputs.contexts.find(m.context);
        if (it == inputs.contexts.end())
          throw Error(m.origin + ": context \"" + m.context + "\" is not given (pass --context " + m.context +
                      "=DIR)");
        check_bind_source(m, it->second, "context \"" + m.context + "\"");
      }
      break;
    case StepMount::Type::kSecret:
      if (m.required && !inputs.secrets.contains(m.id))
        throw Error(m.origin + ": secret \"" + m.id + "\" is not given (pass --secret id=" + m.id +
                    ",src=FILE, or set required = false)");
      break;
    case StepMount::Type::kCache:
    case StepMount::Type::kTmpfs: break;
  }
}

}  // namespace

void add_context_option(StepInputs& inputs, const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos) throw UsageError("--context \"" + text + "\": expected NAME=DIR");
  const std::string name = text.substr(0, eq);
  const std::string dir = text.substr(eq + 1);
  if (!is_input_name(name))
    throw UsageError("--context \"" + text + "\": \"" + name +
                     "\" is not a context name (letters, digits, \"-\", \"_\" and \".\")");
  if (dir.empty()) throw UsageError("--context \"" + text + "\": empty DIR");
  if (dir.find("://") != std::string::npos)
    throw UsageError("--context \"" + text + "\": only a local directory is supported");
  if (!inputs.contexts.emplace(name, dir).second)
    throw UsageError("--context " + name + " is given twice");
}

void add_secret_option(StepInputs& inputs, const std::string& text) {
  std::string id, src;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string field = text.substr(start, end - start);
    const auto eq = field.find('=');
    const std::string key = field.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : field.substr(eq + 1);
    // A field without "=" is not echoed: it might be the secret itself, given by mistake.
    if (eq == std::string::npos) throw UsageError("--secret: expected id=NAME,src=FILE");
    if (value.empty()) throw UsageError("--secret: " + key + "= has no value (expected id=NAME,src=FILE)");
    if (key == "id") id = value;
    else if (key == "src" || key == "source") src = value;
    else if (key == "type" && value != "file")
      throw UsageError("--secret: only type=file is supported");
    else if (key != "type") throw UsageError("--secret: unknown key \"" + key + "\" (expected id=NAME,src=FILE)");
    start = end + 1;
  }
  if (id.empty()) throw UsageError("--secret: missing id= (expected id=NAME,src=FILE)");
  if (!is_input_name(id))
    throw UsageError("--secret id=" + id + ": not a secret id (letters, digits, \"-\", \"_\" and \".\")");
  if (src.empty()) throw UsageError("--secret id=" + id + ": missing src=FILE");
  if (!inputs.secrets.emplace(id, src).second) throw UsageError("--secret id=" + id + " is given twice");
}

void check_step_inputs(const BuildSpec& spec, const fs::path& project_dir, const StepInputs& inputs) {
  for (const auto& [name, dir] : inputs.contexts) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      throw Error("--context " + name + "=" + dir.string() + ": " +
                  (fs::exists(dir, ec) ? "not a directory" : "no such directory"));
  }
  for (const auto& [id, file] : inputs.secrets) {
    // Opened only to see that it can be; nothing is read.
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      throw Error("--secret id=" + id + ": cannot read " + file.string() + ": " + std::strerror(errno));
    ::close(fd);
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) throw Error("--secret id=" + id + ": " + file.string() + " is not a file");
  }
  for (const auto& step : spec.steps) {
    if (step.skipped) continue;
    for (const auto& m : step.mounts) check_mount(m, project_dir, inputs);
  }
}

}  // namespace dockless
