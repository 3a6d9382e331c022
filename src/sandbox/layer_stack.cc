// See layer_stack.h.

#include "src/sandbox/layer_stack.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <sstream>
#include <system_error>

#include "base/error.h"
#include "src/sandbox/host_tools.h"
#include "src/sandbox/root_paths.h"

namespace dockless::sandbox_detail {

namespace fs = std::filesystem;

const char* const kOpaqueXattrs[3] = {"trusted.overlay.opaque", "user.overlay.opaque",
                                      "user.fuseoverlayfs.opaque"};

namespace {

constexpr std::string_view kWhPrefix = ".wh.";
constexpr std::string_view kOpaqueFile = ".wh..wh..opq";

bool is_whiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

/// A whiteout entry for `p`: a 0/0 char device at p, or (fuse-overlayfs
/// without mknod) a `.wh.NAME` file beside it.
bool whited_out(const fs::path& p) {
  struct stat st;
  if (::lstat(p.c_str(), &st) == 0 && is_whiteout(st)) return true;
  fs::path wh = p.parent_path() / (std::string(kWhPrefix) + p.filename().string());
  return ::lstat(wh.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void clear_dir(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) fs::remove_all(e.path());
}

/// First pass: deletions, opaque dirs, and every entry the layer replaces
/// (removed rather than overwritten: a tree file may be a hard link whose
/// other names must keep their content).
void prepare_tree(const fs::path& layer, const fs::path& tree) {
  for (auto it = fs::recursive_directory_iterator(layer); it != fs::recursive_directory_iterator();
       ++it) {
    const fs::path& src = it->path();
    std::string name = src.filename().string();
    fs::path dst = tree / src.lexically_relative(layer);
    struct stat ls;
    if (::lstat(src.c_str(), &ls) != 0) throw_errno("stat " + src.string());
    struct stat ts;
    bool in_tree = ::lstat(dst.c_str(), &ts) == 0;
    if (name == kOpaqueFile) {
      clear_dir(dst.parent_path());
      continue;
    }
    if (name.rfind(kWhPrefix, 0) == 0 && S_ISREG(ls.st_mode)) {
      fs::remove_all(dst.parent_path() / name.substr(kWhPrefix.size()));
      continue;
    }
    if (!S_ISDIR(ls.st_mode)) {
      if (in_tree) fs::remove_all(dst);
      continue;
    }
    if (in_tree && !S_ISDIR(ts.st_mode)) {
      fs::remove(dst);
    } else if (in_tree && is_opaque_dir(src)) {
      clear_dir(dst);
    }
  }
}

/// Last pass: what cp copied but is overlay bookkeeping, not content.
void finish_tree(const fs::path& layer, const fs::path& tree) {
  for (auto it = fs::recursive_directory_iterator(layer); it != fs::recursive_directory_iterator();
       ++it) {
    const fs::path& src = it->path();
    fs::path dst = tree / src.lexically_relative(layer);
    std::string name = src.filename().string();
    struct stat ls;
    if (::lstat(src.c_str(), &ls) != 0) continue;
    if (is_whiteout(ls) || name.rfind(kWhPrefix, 0) == 0) {
      ::unlink(dst.c_str());
    } else if (S_ISDIR(ls.st_mode)) {
      for (const char* x : kOpaqueXattrs) ::lremovexattr(dst.c_str(), x);
    }
  }
}

}  // namespace

bool is_opaque_dir(const fs::path& p) {
  for (const char* x : kOpaqueXattrs) {
    char v[2] = {0, 0};
    if (::lgetxattr(p.c_str(), x, v, sizeof v) == 1 && v[0] == 'y') return true;
  }
  std::error_code ec;
  return fs::is_regular_file(p / kOpaqueFile, ec);
}

std::optional<fs::path> find_in_stack(const std::vector<fs::path>& layers, const fs::path& rootfs,
                                      const std::string& rel) {
  auto parts = split_path(rel);
  for (const auto& layer : layers) {
    fs::path p = layer;
    bool opaque_above = false;  // nothing below it in the lower layers counts
    for (std::size_t i = 0; i < parts.size(); ++i) {
      p /= parts[i];
      if (whited_out(p)) return std::nullopt;
      struct stat st;
      if (::lstat(p.c_str(), &st) != 0) break;
      if (i + 1 == parts.size()) return p;
      if (!S_ISDIR(st.st_mode)) return std::nullopt;  // a file replaced the dir here
      if (is_opaque_dir(p)) opaque_above = true;
    }
    if (opaque_above) return std::nullopt;
  }
  fs::path p = rootfs / rel;
  struct stat st;
  if (::lstat(p.c_str(), &st) == 0) return p;
  return std::nullopt;
}

void apply_overlay_layer(const fs::path& layer, const fs::path& tree, const std::string& prefix) {
  try {
    prepare_tree(layer, tree);
  } catch (const fs::filesystem_error& e) {
    throw Error(prefix + "apply layer " + layer.string() + ": " + e.code().message() + " (" +
                e.path1().string() + ")");
  }
  auto cp = find_program("cp");
  if (!cp) throw Error(prefix + "cp is not installed");
  ToolResult r = run_tool({*cp, "-a", "--", layer.string() + "/.", tree.string()});
  if (r.status != 0) {
    // Not root: cp cannot mknod the whiteouts, which finish_tree deletes
    // anyway; any other complaint is real.
    std::istringstream lines(r.output);
    for (std::string line; std::getline(lines, line);) {
      if (line.empty() || line.find("cannot create special file") != std::string::npos) continue;
      throw Error(prefix + "apply layer " + layer.string() + " onto " + tree.string() + ": " + line);
    }
  }
  finish_tree(layer, tree);
}

void normalize_fuse_upper(const fs::path& upper) {
  std::vector<fs::path> markers;
  for (auto it = fs::recursive_directory_iterator(upper); it != fs::recursive_directory_iterator();
       ++it) {
    std::string name = it->path().filename().string();
    if (name.rfind(kWhPrefix, 0) == 0 && !it->is_directory()) markers.push_back(it->path());
  }
  for (const auto& m : markers) {
    std::string name = m.filename().string();
    if (name == kOpaqueFile || name == ".wh..opq") {
      if (is_opaque_dir(m.parent_path())) ::unlink(m.c_str());
      continue;
    }
    if (!fs::is_regular_file(fs::symlink_status(m))) continue;
    fs::path victim = m.parent_path() / name.substr(kWhPrefix.size());
    struct stat st;
    if (::lstat(victim.c_str(), &st) != 0 && ::mknod(victim.c_str(), S_IFCHR | 0, makedev(0, 0)) == 0)
      ::unlink(m.c_str());
  }
}

}  // namespace dockless::sandbox_detail
