// "Last used" marks of the cache dir: `dockless cache prune --keep-days` reads
// them back as mtimes (cache_inventory).
#pragma once

#include <filesystem>

namespace dockless {

/// Sets a file's or directory's mtime to now without following a symlink,
/// quietly: a missing entry is not an error.
void mark_used(const std::filesystem::path& path);

}  // namespace dockless
