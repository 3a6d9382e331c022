// Overlay-format layers (earlier build steps' upper dirs: 0/0 char-device
// whiteouts, opaque xattrs) seen from the parent, without a mount: looking a
// path up through the stack (for the user's /etc/passwd, and for which
// mount points the image lacks) and applying a layer onto a plain tree (the
// private copies of chroot mode and of the userns copy fallback).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace dockless::sandbox_detail {

/// The opaque markers overlay implementations write on a directory whose
/// lower content is hidden: kernel overlay (trusted. or, with userxattr,
/// user.) and fuse-overlayfs.
extern const char* const kOpaqueXattrs[3];

/// True when `p` is a directory carrying one of kOpaqueXattrs with value "y".
bool is_opaque_dir(const std::filesystem::path& p);

/// The host path of `rel` (below the root, no leading '/') in the stack
/// `layers` (upper-most first) over `rootfs`; nullopt when no layer has it,
/// or a whiteout or an opaque dir above hides it. Symlinks on the way are
/// not followed.
std::optional<std::filesystem::path> find_in_stack(const std::vector<std::filesystem::path>& layers,
                                                   const std::filesystem::path& rootfs,
                                                   const std::string& rel);

/// Applies one overlay-format layer onto `tree` (a plain directory): a 0/0
/// char device (or a `.wh.NAME` file) deletes, an opaque dir empties the
/// tree's dir first, everything else replaces what the tree has (owners,
/// modes, xattrs, hard links within the layer kept: cp -a). Throws Error
/// starting with prefix.
void apply_overlay_layer(const std::filesystem::path& layer, const std::filesystem::path& tree,
                         const std::string& prefix);

/// Brings a fuse-overlayfs upper dir to the kernel's format: its opaque
/// marker files (`.wh..opq`, `.wh..wh..opq` beside the xattr) removed, its
/// `.wh.NAME` whiteout files made 0/0 char devices where mknod is allowed
/// (else left as they are: the layer writer reads both).
void normalize_fuse_upper(const std::filesystem::path& upper);

}  // namespace dockless::sandbox_detail
