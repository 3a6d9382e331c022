// See spec_checks.h.

#include "src/sandbox/spec_checks.h"

#include <sys/stat.h>

#include <filesystem>
#include <system_error>

#include "base/error.h"
#include "src/sandbox/root_paths.h"

namespace dockless::sandbox_detail {

namespace fs = std::filesystem;

void note(const SandboxSpec& spec, const std::string& text) {
  if (spec.on_note) spec.on_note(text);
}

void check_common(const SandboxSpec& spec, const std::string& prefix, bool needs_rootfs) {
  if (spec.argv.empty() || spec.argv[0].empty()) throw UsageError(prefix + "no command to run");
  if (spec.workdir.empty() || spec.workdir[0] != '/')
    throw UsageError(prefix + "the working directory must be absolute: '" + spec.workdir + "'");
  if (needs_rootfs) {
    std::error_code ec;
    if (spec.rootfs.empty() || !fs::is_directory(spec.rootfs, ec))
      throw Error(prefix + "the root filesystem " + spec.rootfs.string() + " is not a directory");
    if (spec.scratch.empty()) throw UsageError(prefix + "no scratch directory given");
  }
  for (const auto& t : spec.tmpfs) {
    if (path_in_root(t.target, "tmpfs target").empty())
      throw UsageError(prefix + "cannot mount a tmpfs over the whole root");
  }
  for (const auto& l : spec.lower_layers) {
    std::error_code ec;
    if (!fs::is_directory(l, ec)) throw Error(prefix + "the layer " + l.string() + " is not a directory");
  }
  if (!spec.upper_dir.empty()) {
    std::error_code ec;
    if (fs::exists(spec.upper_dir, ec) && !fs::is_empty(spec.upper_dir, ec))
      throw Error(prefix + "the upper dir " + spec.upper_dir.string() + " is not empty");
    if (!fs::is_directory(spec.upper_dir.parent_path(), ec))
      throw Error(prefix + "the parent of the upper dir " + spec.upper_dir.string() + " is missing");
  }
  for (const auto& b : spec.binds) {
    struct stat st;
    if (::stat(b.host.c_str(), &st) != 0) throw_errno(prefix + "bind source " + b.host.string());
    if (path_in_root(b.target, "bind target").empty())
      throw UsageError(prefix + "cannot bind " + b.host.string() + " over the whole root");
  }
}

}  // namespace dockless::sandbox_detail
