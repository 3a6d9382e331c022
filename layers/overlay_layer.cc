#include "layers/overlay_layer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/file_util.h"
#include "layers/archive_handle.h"

namespace dockless {

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

/// What overlayfs says about one upper-dir entry through its xattrs.
struct OverlayMarks {
  bool opaque = false;    // overlay.opaque = "y"
  bool whiteout = false;  // overlay.whiteout (6.7+ "xwhiteout" file)
};

OverlayMarks overlay_marks(const std::string& host_path) {
  OverlayMarks marks;
  for (const auto& [name, value] : read_xattrs(host_path)) {
    if (!is_overlay_private_xattr(name)) continue;
    std::string_view key = std::string_view(name).substr(name.find(".overlay.") + 9);
    if (key == "opaque" && value == "y") marks.opaque = true;
    if (key == "whiteout") marks.whiteout = true;
    if (key == "redirect" || key == "metacopy")
      throw Error("cannot make a layer of overlay upper dir entry " + host_path + ": it has " +
                  name + ", so part of the change stays in the lower dirs (mount the overlay "
                  "with redirect_dir=off,metacopy=off)");
  }
  return marks;
}

class UpperDirLayer {
 public:
  UpperDirLayer(const ChangeLayerOptions& options, TarStreamWriter& out)
      : entries_(change_layer_entry_options(options), out) {}

  void run(const std::filesystem::path& upper) {
    UniqueFd root(::open(upper.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) throw_errno("cannot open overlay upper dir " + upper.string());
    walk(root.get(), upper.string(), "", false, 0);
  }

  TarStats stats() const { return entries_.stats; }

 private:
  void walk(int dirfd, const std::string& host_dir, const std::string& tar_dir, bool opaque,
            std::int64_t dir_mtime) {
    std::vector<std::string> names = list_directory_sorted(dirfd, host_dir);
    // The opaque marker goes right after the directory's own entry, once,
    // whether overlayfs (xattr) or fuse-overlayfs (a file) recorded it.
    auto marker = std::find(names.begin(), names.end(), kOpaqueMarker);
    if (marker != names.end()) {
      names.erase(marker);
      write_child(dirfd, host_dir, tar_dir, std::string(kOpaqueMarker));
    } else if (opaque) {
      entries_.write_marker(tar_dir + std::string(kOpaqueMarker), dir_mtime);
    }
    for (const auto& name : names) write_child(dirfd, host_dir, tar_dir, name);
  }

  void write_child(int dirfd, const std::string& host_dir, const std::string& tar_dir,
                   const std::string& name) {
    const std::string host_path = host_dir + "/" + name;
    const std::string tar_name = tar_dir + name;
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      throw_errno("cannot stat " + host_path);
    if (S_ISSOCK(st.st_mode)) return;
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
      entries_.write_marker(tar_dir + std::string(kWhiteoutPrefix) + name, st.st_mtim.tv_sec);
      return;
    }
    OverlayMarks marks = overlay_marks(host_path);
    if (S_ISREG(st.st_mode) && marks.whiteout && st.st_size == 0) {
      entries_.write_marker(tar_dir + std::string(kWhiteoutPrefix) + name, st.st_mtim.tv_sec);
      return;
    }
    entries_.write(tar_name, host_path, st, dirfd, name);
    if (!S_ISDIR(st.st_mode)) return;
    UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) throw_errno("cannot open directory " + host_path);
    walk(sub.get(), host_path, tar_name + "/", marks.opaque, st.st_mtim.tv_sec);
  }

  TarEntryWriter entries_;
};

}  // namespace

TarStats write_overlay_layer(const std::filesystem::path& upper, const ChangeLayerOptions& options,
                             ByteSink& out) {
  TarStreamWriter archive_out(out);
  UpperDirLayer layer(options, archive_out);
  layer.run(upper);
  archive_out.close();
  out.finish();
  return layer.stats();
}

}  // namespace dockless
