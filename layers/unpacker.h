// Applies a layer (tar, tar+gzip or tar+zstd) to a directory with OCI
// whiteout semantics, never writing outside that directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "base/growing_file.h"

namespace dockless {

struct UnpackOptions {
  /// chown entries to their uid/gid from the tar. Default: only when root.
  bool preserve_ownership;
  /// Create device nodes and fifos. Default: only when root; otherwise skipped.
  bool create_devices;
  /// Writes whiteouts the way overlayfs stores them, so that the directory
  /// can serve as an overlay lower dir (a cached layer under later build
  /// steps): `.wh.NAME` becomes a character device 0/0 named NAME (mknod of
  /// 0/0 needs no privilege since Linux 5.8) and `.wh..wh..opq` sets
  /// `opaque_xattr` = "y" on its directory; nothing is deleted. xattrs named
  /// like overlay's own (trusted.overlay.*, user.overlay.*) coming from the
  /// layer are never set.
  bool overlay_format = false;
  /// "trusted.overlay.opaque" (needs CAP_SYS_ADMIN in the initial namespace)
  /// or "user.overlay.opaque" (for an overlay mounted with `userxattr` in a
  /// user namespace).
  std::string opaque_xattr = "trusted.overlay.opaque";
  UnpackOptions();
};

struct UnpackStats {
  std::uint64_t entries = 0;    ///< entries applied (files, dirs, links)
  std::uint64_t whiteouts = 0;  ///< .wh.NAME and opaque markers applied
  std::uint64_t skipped = 0;    ///< device nodes skipped, unsupported types
};

/// Applies the layer file at `layer` (compression detected from its bytes) to
/// the directory `root`, which must exist. Every path is resolved inside root:
/// ".." components, absolute names, symlinks (in the tar or already in root)
/// and hardlink targets can never reach outside it. An entry that would escape
/// throws Error naming the entry; what was applied before stays applied (the
/// caller unpacks into a temp directory and renames it when complete).
UnpackStats unpack_layer(const std::filesystem::path& layer, const std::filesystem::path& root,
                         const UnpackOptions& options = UnpackOptions());

/// unpack_layer for a gzip layer still being written (a blob being
/// downloaded: BlobWriter::follow): applied as its bytes land, named
/// `name` in errors. A layer abandoned before its end (a failed or
/// restarted download) throws Error; what was applied stays applied.
UnpackStats unpack_gzip_layer_as_written(std::shared_ptr<GrowingFile> layer, const std::string& name,
                                         const std::filesystem::path& root,
                                         const UnpackOptions& options = UnpackOptions());

}  // namespace dockless
