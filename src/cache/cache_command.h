// `dockless cache ls` and `dockless cache prune`: what the cache holds, and
// removing what was not used for a while. Prune holds the cache lock alone
// (CacheLock::exclusive), so it waits for running builds, builds wait for it,
// and it never removes something a build has chosen to use.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "src/cache/cache_inventory.h"

namespace dockless {

struct PruneOptions {
  std::filesystem::path cache_dir;
  /// Keep what was used in the last keep_days days; 0 removes everything
  /// (nothing is in use while prune holds the lock).
  int keep_days = 0;
  bool dry_run = false;
  CacheTime now = std::chrono::system_clock::now();
  /// Called once when prune must wait for other dockless commands.
  std::function<void()> on_wait;
  /// Removes a directory tree that was renamed away. Default: remove_tree.
  /// A user's build steps leave files of its subordinate ids (layer-dirs,
  /// step-caches, snapshots) that only root of an id namespace may delete:
  /// the command line passes remove_tree_as_mapped_root.
  std::function<void(const std::filesystem::path&)> remove_tree;
};

struct PruneResult {
  bool dry_run = false;
  std::vector<CacheItem> removed;  // with --dry-run: what would be removed
  std::size_t kept_items = 0;
  std::uint64_t kept_bytes = 0;
  /// One line per item that could not be removed (the others still were).
  std::vector<std::string> failures;
};

/// Removes, under the exclusive cache lock: layer entries last used before
/// the cutoff (now - keep_days) and damaged ones; blobs last used before the
/// cutoff that no kept layer entry refers to; venvs, snapshots, uv caches and
/// git mirrors last used before the cutoff; build scratch, temp files and
/// unfinished items whatever their age. A directory is first renamed to a
/// .tmp-prune-* name beside it, so a reader sees it whole or not at all.
PruneResult prune_cache(const PruneOptions& options);

/// `cache ls`: one line per category (items, size, newest and oldest use);
/// verbose adds one line per item.
std::string format_cache_ls(const CacheInventory& inventory, bool verbose, CacheTime now);

/// `cache prune`: one line per category removed and "freed N"; verbose (and
/// --dry-run) add one line per item.
std::string format_prune_result(const PruneResult& result, bool verbose, CacheTime now);

/// "just now", "5 min ago", "3 h ago", "12 days ago".
std::string format_age(CacheTime then, CacheTime now);

}  // namespace dockless
