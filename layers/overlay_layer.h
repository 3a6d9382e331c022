// The layer of one build step run over an overlay mount: the mount's upper
// dir holds exactly what the step changed, in overlayfs's own notation, and
// this writes it in the OCI layer notation (deterministic, like tar_writer):
//   - a whiteout (character device 0/0, or since Linux 6.7 an empty file with
//     the xattr overlay.whiteout) becomes an empty file `.wh.NAME`, mode 0644,
//     owner 0:0, mtime min(the whiteout's mtime, clamp);
//   - an opaque directory (trusted.overlay.opaque or user.overlay.opaque = "y")
//     gets the same kind of empty file `DIR/.wh..wh..opq` right after its own
//     entry;
//   - fuse-overlayfs's `.wh.NAME` and `.wh..wh..opq` files pass through as
//     they are (the opaque marker moved right after its directory, written once);
//   - trusted.overlay.* / user.overlay.* xattrs are dropped, security.capability
//     is kept, other xattrs follow ChangeLayerOptions::xattrs;
//   - owners are the files' numeric ids through ChangeLayerOptions::owner_map
//     (in a user namespace the upper dir is owned by subuid host ids);
//   - sockets are skipped, fifos, devices, symlinks, hardlinks kept.
// The overlay must be mounted with redirect_dir=off and metacopy=off (the
// kernel default unless configured otherwise): a redirected directory or a
// metadata-only copy-up leaves part of the change in the lower dirs, so an
// upper dir with either is an Error rather than a silently incomplete layer.
#pragma once

#include <filesystem>

#include "layers/byte_sink.h"
#include "layers/tar_entry_writer.h"

namespace dockless {

/// Writes the overlay upper dir `upper` (not mounted any more, or at least
/// not being written) as a layer tar to `out`, then calls out.finish().
/// The upper dir's root itself is not an entry. Throws Error naming the path.
TarStats write_overlay_layer(const std::filesystem::path& upper, const ChangeLayerOptions& options,
                             ByteSink& out);

}  // namespace dockless
