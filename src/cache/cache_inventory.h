// What dockless's cache directory holds, for `dockless cache ls` and
// `dockless cache prune`: every removable thing as one item with its
// category, disk usage and last-used time (an mtime the build sets with
// mark_used). Only reads: a build may run while the inventory is taken, so a
// file that vanishes meanwhile is simply not listed.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace dockless {

/// In the order `cache ls` prints them.
/// kRecord: small notes that only save time (uv's identity under tools/,
/// plain-HTTP registry hints under registry-schemes/).
enum class CacheCategory {
  kLayerEntry,
  kBlob,
  kVenv,
  kSnapshot,
  kLayerDir,    ///< a layer unpacked as an overlay lower dir for build steps (layer-dirs/<diffID>)
  kStepCache,   ///< a build step's cache mount (step-caches/<id hash>)
  kUvCache,
  kGitMirror,
  kRecord,
  kLeftover
};
inline constexpr CacheCategory kCacheCategories[] = {
    CacheCategory::kLayerEntry, CacheCategory::kBlob,     CacheCategory::kVenv,      CacheCategory::kSnapshot,
    CacheCategory::kLayerDir,   CacheCategory::kStepCache, CacheCategory::kUvCache,  CacheCategory::kGitMirror,
    CacheCategory::kRecord,     CacheCategory::kLeftover};

/// "layer entries" / "layer entry".
std::string_view category_name(CacheCategory c, bool plural = true);

using CacheTime = std::chrono::system_clock::time_point;

struct CacheItem {
  CacheCategory category = CacheCategory::kLeftover;
  /// Path relative to the cache dir, e.g. "envs/<key>" (unique per item).
  std::string name;
  /// What removing the item removes, in this order: a completion marker
  /// before its directory (a build must never find a marker without its
  /// directory), lock files last.
  std::vector<std::filesystem::path> paths;
  /// Disk usage (allocated blocks). Each inode counts once in the whole
  /// inventory, for the first item that has it (hard links in uv caches).
  std::uint64_t bytes = 0;
  CacheTime last_used{};
  /// Layer entries: the layers' names ("" when the entry has none) and
  /// their blobs' hex digests, in the entry's order.
  std::vector<std::string> layer_names;
  std::vector<std::string> blob_hexes;
  /// Why the item is of no use (a damaged layer entry, an unfinished venv,
  /// a temp file...): prune removes it whatever its age. Empty for an
  /// item in good order.
  std::string defect;
};

struct CacheInventory {
  std::filesystem::path cache_dir;
  std::vector<CacheItem> items;  // by category, then by name
};

/// Lists the cache. A missing cache dir is an empty inventory.
CacheInventory take_cache_inventory(const std::filesystem::path& cache_dir);

}  // namespace dockless
