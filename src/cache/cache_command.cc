#include "src/cache/cache_command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <set>
#include <system_error>

#include "base/error.h"
#include "base/file_util.h"
#include "src/cache/cache_lock.h"
#include "src/transfer/progress.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

/// Removes one file or directory; returns what went wrong ("" when gone).
/// A directory is renamed away first: a reader finds it whole or not at all,
/// and a prune that dies midway leaves a .tmp-prune-* leftover, not half a venv.
std::string remove_path(const fs::path& path, const std::function<void(const fs::path&)>& remove_dir) {
  static std::atomic<unsigned long> counter{0};
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0)
    return errno == ENOENT ? "" : "cannot stat " + path.string() + ": " + errno_text(errno);
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return "cannot remove " + path.string() + ": " + errno_text(errno);
    return "";
  }
  fs::path doomed = path.parent_path() / (".tmp-prune-" + path.filename().string() + "-" +
                                          std::to_string(::getpid()) + "-" + std::to_string(counter++));
  if (::rename(path.c_str(), doomed.c_str()) != 0)
    return "cannot rename " + path.string() + ": " + errno_text(errno);
  if (remove_dir) remove_dir(doomed);
  else remove_tree(doomed);
  if (::lstat(doomed.c_str(), &st) == 0) return "cannot remove everything in " + doomed.string();
  return "";
}

/// Which items prune removes (a flag per inventory item).
std::vector<bool> plan_prune(const CacheInventory& inv, CacheTime cutoff) {
  std::vector<bool> remove(inv.items.size(), false);
  std::set<std::string> kept_blobs;
  for (std::size_t i = 0; i < inv.items.size(); ++i) {
    const CacheItem& item = inv.items[i];
    if (item.category == CacheCategory::kBlob) continue;  // once the kept entries are known
    remove[i] = item.category == CacheCategory::kLeftover || !item.defect.empty() || item.last_used < cutoff;
    if (item.category == CacheCategory::kLayerEntry && !remove[i])
      kept_blobs.insert(item.blob_hexes.begin(), item.blob_hexes.end());
  }
  for (std::size_t i = 0; i < inv.items.size(); ++i) {
    const CacheItem& item = inv.items[i];
    if (item.category == CacheCategory::kBlob)
      remove[i] = item.last_used < cutoff && !kept_blobs.count(item.paths.front().filename().string());
  }
  return remove;
}

std::string plural(std::size_t n, CacheCategory c) {
  return std::to_string(n) + " " + std::string(category_name(c, n != 1));
}

/// What `ls -v` and `prune -v` say about an item beyond its name.
std::string item_details(const CacheItem& item) {
  std::string out;
  for (std::size_t i = 0; i < item.layer_names.size(); ++i) {
    out += i == 0 ? "" : ", ";
    out += item.layer_names[i].empty() ? "sha256:" + item.blob_hexes[i].substr(0, 12) : item.layer_names[i];
  }
  if (!item.defect.empty()) out += (out.empty() ? "" : "; ") + item.defect;
  return out;
}

}  // namespace

std::string format_age(CacheTime then, CacheTime now) {
  using namespace std::chrono;
  auto secs = duration_cast<seconds>(now - then).count();
  if (secs < 60) return "just now";
  if (secs < 3600) return std::to_string(secs / 60) + " min ago";
  if (secs < 48 * 3600) return std::to_string(secs / 3600) + " h ago";
  return std::to_string(secs / 86400) + " days ago";
}

PruneResult prune_cache(const PruneOptions& o) {
  if (o.keep_days < 0) throw Error("prune: keep_days must not be negative");
  PruneResult result;
  result.dry_run = o.dry_run;
  std::error_code ec;
  if (!fs::exists(o.cache_dir, ec)) return result;  // nothing to prune; do not make one

  CacheLock alone = CacheLock::exclusive(o.cache_dir, o.on_wait);
  CacheInventory inv = take_cache_inventory(o.cache_dir);
  // keep_days 0 is "everything": even an mtime in the future (clock skew) goes.
  const CacheTime cutoff = o.keep_days == 0 ? CacheTime::max() : o.now - std::chrono::hours(24) * o.keep_days;
  std::vector<bool> remove = plan_prune(inv, cutoff);
  for (std::size_t i = 0; i < inv.items.size(); ++i) {
    CacheItem& item = inv.items[i];
    if (!remove[i]) {
      ++result.kept_items;
      result.kept_bytes += item.bytes;
      continue;
    }
    std::string failure;
    // In order, stopping at a failure: a marker stays only with its directory.
    for (const auto& p : item.paths)
      if (!o.dry_run && !(failure = remove_path(p, o.remove_tree)).empty()) break;
    if (failure.empty()) result.removed.push_back(std::move(item));
    else result.failures.push_back(item.name + ": " + failure);
  }
  return result;
}

std::string format_cache_ls(const CacheInventory& inv, bool verbose, CacheTime now) {
  std::string out = "cache " + inv.cache_dir.string() + "\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-14s %6s %11s  %-14s %s\n", "", "items", "size", "newest", "oldest");
  out += line;
  std::size_t total_items = 0;
  std::uint64_t total_bytes = 0;
  for (CacheCategory c : kCacheCategories) {
    std::size_t n = 0;
    std::uint64_t bytes = 0;
    CacheTime newest = CacheTime::min(), oldest = CacheTime::max();
    for (const auto& item : inv.items) {
      if (item.category != c) continue;
      ++n;
      bytes += item.bytes;
      newest = std::max(newest, item.last_used);
      oldest = std::min(oldest, item.last_used);
    }
    total_items += n;
    total_bytes += bytes;
    std::snprintf(line, sizeof line, "%-14s %6zu %11s  %-14s %s\n", std::string(category_name(c)).c_str(), n,
                  human_bytes(bytes).c_str(), n ? format_age(newest, now).c_str() : "-",
                  n ? format_age(oldest, now).c_str() : "-");
    out += line;
  }
  std::snprintf(line, sizeof line, "%-14s %6zu %11s\n", "total", total_items, human_bytes(total_bytes).c_str());
  out += line;
  if (!verbose) return out;
  for (CacheCategory c : kCacheCategories) {
    bool first = true;
    for (const auto& item : inv.items) {
      if (item.category != c) continue;
      if (first) out += "\n" + std::string(category_name(c)) + ":\n";
      first = false;
      std::string details = item_details(item);
      std::snprintf(line, sizeof line, "  %11s  %-14s ", human_bytes(item.bytes).c_str(),
                    format_age(item.last_used, now).c_str());
      out += line + item.name + (details.empty() ? "" : "  " + details) + "\n";
    }
  }
  return out;
}

std::string format_prune_result(const PruneResult& r, bool verbose, CacheTime now) {
  const std::string verb = r.dry_run ? "would remove " : "removed ";
  std::string out;
  if (verbose || r.dry_run) {
    for (const auto& item : r.removed) {
      std::string details = item_details(item);
      out += verb + item.name + " (" + human_bytes(item.bytes) + ", last used " + format_age(item.last_used, now) +
             (details.empty() ? "" : "; " + details) + ")\n";
    }
  }
  std::uint64_t freed = 0;
  for (CacheCategory c : kCacheCategories) {
    std::size_t n = 0;
    std::uint64_t bytes = 0;
    for (const auto& item : r.removed)
      if (item.category == c) {
        ++n;
        bytes += item.bytes;
      }
    freed += bytes;
    if (n > 0) out += verb + plural(n, c) + " (" + human_bytes(bytes) + ")\n";
  }
  out += std::string(r.dry_run ? "would keep " : "kept ") + std::to_string(r.kept_items) +
         (r.kept_items == 1 ? " item (" : " items (") + human_bytes(r.kept_bytes) + ")\n";
  out += std::string(r.dry_run ? "would free " : "freed ") + human_bytes(freed) + "\n";
  return out;
}

}  // namespace dockless
