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
    std::string_view key = std::string_view(name).substr(name.rfind('.') + 1);
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
  /// One upper-dir entry and the tar name (in its directory) it gets.
  struct Child {
    std::string tar_base, name;
    struct stat st;
    bool whiteout = false, opaque = false;
  };

  void walk(int dirfd, const std::string& host_dir, const std::string& tar_dir, bool opaque,
            std::int64_t dir_mtime) {
    std::vector<Child> children;
    for (auto& name : list_directory_sorted(dirfd, host_dir)) {
      Child c{name, name, {}, false, false};
      if (::fstatat(dirfd, name.c_str(), &c.st, AT_SYMLINK_NOFOLLOW) != 0)
        throw_errno("cannot stat " + host_dir + "/" + name);
      if (S_ISSOCK(c.st.st_mode)) continue;
      if (S_ISCHR(c.st.st_mode) && c.st.st_rdev == makedev(0, 0)) {
        c.whiteout = true;
      } else {
        OverlayMarks marks = overlay_marks(host_dir + "/" + name);
        c.whiteout = S_ISREG(c.st.st_mode) && marks.whiteout && c.st.st_size == 0;
        c.opaque = marks.opaque;
      }
      if (c.whiteout) c.tar_base = std::string(kWhiteoutPrefix) + name;
      children.push_back(std::move(c));
    }
    // Sorted by the names in the layer; the opaque marker goes right after
    // the directory's own entry, once, whether overlayfs (xattr) or
    // fuse-overlayfs (a file) recorded it.
    std::sort(children.begin(), children.end(), [](const Child& x, const Child& y) {
      if ((x.tar_base == kOpaqueMarker) != (y.tar_base == kOpaqueMarker))
        return x.tar_base == kOpaqueMarker;
      return x.tar_base < y.tar_base;
    });
    bool marker_file = !children.empty() && children.front().tar_base == kOpaqueMarker;
    if (opaque && !marker_file) entries_.write_marker(tar_dir + std::string(kOpaqueMarker), dir_mtime);
    for (const Child& c : children) write_child(dirfd, host_dir, tar_dir, c);
  }

  void write_child(int dirfd, const std::string& host_dir, const std::string& tar_dir,
                   const Child& c) {
    const std::string host_path = host_dir + "/" + c.name;
    const std::string tar_name = tar_dir + c.tar_base;
    if (c.whiteout) {
      entries_.write_marker(tar_name, c.st.st_mtim.tv_sec);
      return;
    }
    entries_.write(tar_name, host_path, c.st, dirfd, c.name);
    if (!S_ISDIR(c.st.st_mode)) return;
    UniqueFd sub(::openat(dirfd, c.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) throw_errno("cannot open directory " + host_path);
    walk(sub.get(), host_path, tar_name + "/", c.opaque, c.st.st_mtim.tv_sec);
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
