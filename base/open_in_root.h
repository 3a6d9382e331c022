// Opening a path inside a directory tree that may be hostile (an image's
// root filesystem, a layer being unpacked): openat2 with RESOLVE_IN_ROOT
// resolves ".." and absolute symlinks as if `rootfd` were "/", so no name
// in the tree can reach the host's files, and RESOLVE_NO_MAGICLINKS refuses
// /proc/*/fd style links. Needs Linux 5.6.
#pragma once

namespace dockless {

/// openat2(rootfd, path, flags | O_CLOEXEC, RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS); "" means the root itself. Retries EINTR and the
/// kernel's EAGAIN (a concurrent rename). Returns the fd, or -1 with errno
/// set. Async-signal-safe: a forked child may call it (no allocation).
int openat2_in_root(int rootfd, const char* path, int flags) noexcept;

}  // namespace dockless
