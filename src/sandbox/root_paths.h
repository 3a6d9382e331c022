// Paths inside a sandbox root: lexical (path_in_root, split_path), resolved
// by the parent the way the kernel would after chroot (resolve_in_root), and
// opened by a child with openat2 RESOLVE_IN_ROOT (open_in_root).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace dockless::sandbox_detail {

/// "opt/out" for "/opt/out": the path below the sandbox root, lexically
/// normalised (".." cannot climb above the root).
/// Throws UsageError (naming `what`) when abs is not absolute.
std::string path_in_root(const std::string& abs, const std::string& what);

/// The non-empty components of a '/'-separated path.
std::vector<std::string> split_path(const std::string& p);

/// `rel` resolved below `root` the way the kernel would after chroot(root):
/// absolute symlinks and ".." stay inside root. Missing components are kept
/// as they are. (openat2 RESOLVE_IN_ROOT does this, but chroot mode must work
/// on kernels older than 5.6.)
std::filesystem::path resolve_in_root(const std::filesystem::path& root, const std::string& rel);

/// Child-side: an O_PATH fd for `rel` below rootfd, resolved as if rootfd
/// were "/" (so an image's absolute symlinks never reach the host), creating
/// missing directories and, when is_file, the last component as a file.
/// Returns -1 with errno set on failure.
int open_in_root(int rootfd, const char* rel, bool is_file);

}  // namespace dockless::sandbox_detail
