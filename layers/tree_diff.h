// The layer of one build step run in chroot mode, where no overlay can be
// mounted: the step ran in a copy of the read-only snapshot (made with
// `cp -a --reflink=auto`), and the layer is the difference of the two trees.
//   - new or changed entries are written whole (from the changed tree);
//     "changed" compares type, mode, owner, mtime with nanoseconds, size,
//     device numbers, symlink target and xattrs. Regular files with the same
//     size and mtime (to the nanosecond) are taken as equal without reading
//     them: `cp -a` keeps mtimes, and writing a file sets its mtime to the
//     current time. (Tools that set an mtime themselves, like dpkg, set the
//     one from their package, which differs between versions.) ctime is not
//     compared: the copy has new ctimes everywhere. Left undetected: new bytes
//     of the same size given back the exact old mtime;
//   - an entry gone from the changed tree becomes `.wh.NAME`; a directory
//     whose old entries are all gone gets `DIR/.wh..wh..opq` instead;
//   - a directory replaced by a non-directory is just the new entry (an
//     entry replaces whatever a lower layer had there); a non-directory
//     replaced by a directory is that directory with all of its content;
//   - when a regular file with several links is written, every path of it
//     in the changed tree is written (as hardlinks), since a hardlink's
//     target must be in the same layer;
//   - the parents of every written entry are written too, as an overlay
//     upper dir would hold them.
// Order, owners (numeric, through owner_map), clamped mtimes and xattrs as in
// overlay_layer; markers are empty 0644 files owned by 0:0.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "layers/byte_sink.h"
#include "layers/tar_entry_writer.h"

namespace dockless {

struct TreeDiffOptions {
  ChangeLayerOptions layer;
  /// For regular files of equal size whose mtimes differ but clamp to the
  /// same second: compare the bytes, and leave the file out when they are
  /// equal (its layer entry would be identical). Off: any mtime change
  /// writes the file.
  bool compare_content = false;
  /// Paths (relative, no leading '/') left out in both trees, with all below
  /// them: what the sandbox itself placed there (/proc, /dev, mount targets).
  std::vector<std::string> exclude;
};

/// Writes the layer that turns `lower` into `changed` to `out`, then calls
/// out.finish(). The roots themselves are not entries. Throws Error naming
/// the path.
TarStats write_tree_diff_layer(const std::filesystem::path& lower,
                               const std::filesystem::path& changed,
                               const TreeDiffOptions& options, ByteSink& out);

}  // namespace dockless
