#include "src/cache/cache_inventory.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "oci/digest.h"
#include "base/error.h"
#include "base/file_util.h"
#include "oci/json_util.h"

namespace dockless {

namespace fs = std::filesystem;

std::string_view category_name(CacheCategory c, bool plural) {
  switch (c) {
    case CacheCategory::kLayerEntry: return plural ? "layer entries" : "layer entry";
    case CacheCategory::kBlob: return plural ? "blobs" : "blob";
    case CacheCategory::kVenv: return plural ? "venvs" : "venv";
    case CacheCategory::kSnapshot: return plural ? "snapshots" : "snapshot";
    case CacheCategory::kLayerDir: return plural ? "layer dirs" : "layer dir";
    case CacheCategory::kStepCache: return plural ? "step caches" : "step cache";
    case CacheCategory::kUvCache: return plural ? "uv caches" : "uv cache";
    case CacheCategory::kGitMirror: return plural ? "git mirrors" : "git mirror";
    case CacheCategory::kRecord: return plural ? "records" : "record";
    case CacheCategory::kLeftover: return plural ? "leftovers" : "leftover";
  }
  return "?";
}

namespace {

std::optional<struct stat> lstat_of(const fs::path& p) {
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return std::nullopt;
  return st;
}

CacheTime mtime_of(const struct stat& st) {
  auto since_epoch = std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec);
  return CacheTime(std::chrono::duration_cast<CacheTime::duration>(since_epoch));
}

/// The names in dir, sorted; none when dir does not exist.
std::vector<std::string> list_dir(const fs::path& dir) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) {
    if (errno == ENOENT || errno == ENOTDIR) return names;
    throw_errno("cannot read " + dir.string());
  }
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(d.get());
    if (e == nullptr) {
      if (errno != 0) throw_errno("cannot read " + dir.string());
      break;
    }
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool is_temp(std::string_view name) { return name.starts_with(".tmp-"); }

bool is_hex64(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

/// Sums allocated blocks like du: symlinks not followed, other filesystems
/// (a leftover mount) not entered, an inode with several links counted once.
class DiskUsage {
 public:
  std::uint64_t add(const fs::path& path) {
    auto st = lstat_of(path);
    return st ? add_tree(path.string(), *st, st->st_dev) : 0;
  }

 private:
  std::uint64_t add_tree(const std::string& path, const struct stat& st, dev_t dev) {
    if (st.st_dev != dev) return 0;
    std::uint64_t total = 0;
    // A file with one link cannot be met twice: only linked ones are remembered.
    if (S_ISDIR(st.st_mode) || st.st_nlink < 2 || seen_.insert({st.st_dev, st.st_ino}).second)
      total += static_cast<std::uint64_t>(st.st_blocks) * 512;
    if (!S_ISDIR(st.st_mode)) return total;
    std::vector<std::string> names;
    try {
      names = list_dir(path);
    } catch (const Error&) {
      return total;  // unreadable: what we cannot see, we do not count
    }
    for (const auto& name : names) {
      std::string child = path + "/" + name;
      if (auto cst = lstat_of(child)) total += add_tree(child, *cst, dev);
    }
    return total;
  }

  std::set<std::pair<dev_t, ino_t>> seen_;
};

/// Reads a layer entry's layers; sets item.defect when it is unusable.
/// Two forms: {"layers":[{"name","digest",...},...]} and the older flat
/// {"mediaType","digest","size","diffID"}.
void read_layer_entry(const fs::path& file, const fs::path& blob_dir, CacheItem& item) {
  const std::string what = "layer cache entry";
  try {
    rapidjson::Document doc = json::parse(read_file(file), what);
    json::require_object(doc, what);
    auto take = [&](const rapidjson::Value& layer) {
      json::require_object(layer, what + " layer");
      item.blob_hexes.push_back(Digest::parse(json::require_string(layer, "digest", what)).hex());
      item.layer_names.push_back(json::get_string(layer, "name", what).value_or(""));
    };
    if (doc.HasMember("layers")) {
      const rapidjson::Value& layers = doc["layers"];
      if (!layers.IsArray() || layers.Empty()) throw Error("\"layers\" is not a list of layers");
      for (const auto& layer : layers.GetArray()) take(layer);
    } else {
      take(doc);
    }
  } catch (const Error& e) {
    item.layer_names.clear();
    item.blob_hexes.clear();
    item.defect = std::string("damaged: ") + e.what();
    return;
  }
  for (const auto& hex : item.blob_hexes)
    if (!lstat_of(blob_dir / hex)) {
      item.defect = "damaged: its blob sha256:" + hex.substr(0, 12) + " is missing";
      return;
    }
}

class Lister {
 public:
  explicit Lister(fs::path root) : root_(std::move(root)) {}

  std::vector<CacheItem> take() {
    layer_entries();
    blobs();
    venvs();
    snapshots();
    uv_caches();
    git_mirrors();
    // Made whole under a temp name and renamed: a temp name is unfinished.
    for (auto [sub, category] : {std::pair{"layer-dirs", CacheCategory::kLayerDir},
                                 std::pair{"step-caches", CacheCategory::kStepCache}})
      for (const auto& name : list_dir(root_ / sub)) {
        if (is_temp(name)) leftover(sub, {name}, "unfinished write");
        else if (!name.ends_with(".lock")) add(category, sub, name, with_lock_file(sub, name), name);
      }
    for (const char* sub : {"tools", "registry-schemes", "source-stat"})
      for (const auto& name : list_dir(root_ / sub)) {
        if (is_temp(name)) leftover(sub, {name}, "unfinished write");
        else if (!is_memo_part(sub, name)) add(CacheCategory::kRecord, sub, name, with_memo_parts(sub, name), name);
      }
    for (const auto& name : list_dir(root_ / "work")) leftover("work", {name}, "build scratch");
    std::stable_sort(items_.begin(), items_.end(), [](const CacheItem& a, const CacheItem& b) {
      return a.category != b.category ? a.category < b.category : a.name < b.name;
    });
    DiskUsage du;
    for (auto& item : items_)
      for (const auto& p : item.paths) item.bytes += du.add(p);
    return std::move(items_);
  }

 private:
  /// An item named sub/name made of the files `parts` in sub; the mtime of
  /// the part `clock` is its last use.
  CacheItem& add(CacheCategory c, const std::string& sub, const std::string& name,
                 const std::vector<std::string>& parts, const std::string& clock, std::string defect = {}) {
    CacheItem item;
    item.category = c;
    item.name = sub + "/" + name;
    for (const auto& p : parts) item.paths.push_back(root_ / sub / p);
    item.last_used = mtime(root_ / sub / clock);
    item.defect = std::move(defect);
    items_.push_back(std::move(item));
    return items_.back();
  }

  CacheItem& add(CacheCategory c, const std::string& sub, const std::string& name) {
    return add(c, sub, name, {name}, name);
  }

  /// A source memo's kept gzip blocks (NAME.blocks beside NAME.memo) go with it.
  bool is_memo_part(const std::string& sub, const std::string& name) const {
    return sub == "source-stat" && name.ends_with(".blocks") &&
           lstat_of(root_ / sub / (name.substr(0, name.size() - 7) + ".memo"));
  }
  std::vector<std::string> with_memo_parts(const std::string& sub, const std::string& name) const {
    std::vector<std::string> parts = {name};
    if (sub == "source-stat" && name.ends_with(".memo")) {
      std::string blocks = name.substr(0, name.size() - 5) + ".blocks";
      if (lstat_of(root_ / sub / blocks)) parts.push_back(blocks);
    }
    return parts;
  }

  /// name, and name.lock beside it when there is one.
  std::vector<std::string> with_lock_file(const std::string& sub, const std::string& name) const {
    std::vector<std::string> parts = {name};
    if (lstat_of(root_ / sub / (name + ".lock"))) parts.push_back(name + ".lock");
    return parts;
  }

  void leftover(const std::string& sub, const std::vector<std::string>& parts, const std::string& why) {
    add(CacheCategory::kLeftover, sub, parts.front(), parts, parts.front(), why);
  }

  void layer_entries() {
    const fs::path dir = root_ / "layers";
    for (const auto& name : list_dir(dir)) {
      auto st = lstat_of(dir / name);
      if (!st) continue;
      if (is_temp(name)) {
        leftover("layers", {name}, "unfinished write");
      } else if (name.ends_with(".json") && S_ISREG(st->st_mode)) {
        CacheItem& item = add(CacheCategory::kLayerEntry, "layers", name);
        read_layer_entry(dir / name, root_ / "blobs" / "sha256", item);
      }
    }
  }

  void blobs() {
    const fs::path dir = root_ / "blobs" / "sha256";
    for (const auto& name : list_dir(dir)) {
      if (is_temp(name)) leftover("blobs/sha256", {name}, "unfinished write");
      else if (is_hex64(name)) add(CacheCategory::kBlob, "blobs/sha256", name);
    }
  }

  /// envs/<key>/ with its marker envs/<key>.complete; the marker's mtime is
  /// the venv's last use.
  void venvs() {
    const fs::path dir = root_ / "envs";
    const std::vector<std::string> names = list_dir(dir);
    const std::set<std::string> all(names.begin(), names.end());
    for (const auto& name : names) {
      if (is_temp(name)) {
        leftover("envs", {name}, "unfinished venv");
      } else if (is_dir(dir / name)) {
        if (all.count(name + ".complete"))
          add(CacheCategory::kVenv, "envs", name, {name + ".complete", name}, name + ".complete");
        else
          leftover("envs", {name}, "unfinished venv");
      } else if (name.ends_with(".complete") && !is_dir(dir / stem(name, ".complete"))) {
        leftover("envs", {name}, "marker of a missing venv");
      }
    }
  }

  /// snapshots/<chainid>/ with <chainid>.complete (written last) and
  /// <chainid>.lock (held while it is made).
  void snapshots() {
    const fs::path dir = root_ / "snapshots";
    const std::vector<std::string> names = list_dir(dir);
    const std::set<std::string> all(names.begin(), names.end());
    auto with_lock = [&](std::vector<std::string> v, const std::string& base) {
      if (all.count(base + ".lock")) v.push_back(base + ".lock");
      return v;
    };
    for (const auto& name : names) {
      if (is_temp(name)) {
        leftover("snapshots", {name}, "unfinished snapshot");
      } else if (is_dir(dir / name)) {
        if (all.count(name + ".complete"))
          add(CacheCategory::kSnapshot, "snapshots", name, with_lock({name + ".complete", name}, name), name);
        else
          leftover("snapshots", with_lock({name}, name), "unfinished snapshot");
      } else if (name.ends_with(".complete") && !is_dir(dir / stem(name, ".complete"))) {
        leftover("snapshots", with_lock({name}, stem(name, ".complete")), "stamp of a missing snapshot");
      } else if (name.ends_with(".lock") && !all.count(stem(name, ".lock") + ".complete") &&
                 !is_dir(dir / stem(name, ".lock"))) {
        leftover("snapshots", {name}, "lock of a missing snapshot");
      }
    }
  }

  /// uv/<platform>-uv<version>/ with uv/<name>.lock, whose mtime is its last use.
  void uv_caches() {
    const fs::path dir = root_ / "uv";
    const std::vector<std::string> names = list_dir(dir);
    const std::set<std::string> all(names.begin(), names.end());
    for (const auto& name : names) {
      if (is_temp(name)) {
        leftover("uv", {name}, "unfinished write");
      } else if (is_dir(dir / name)) {
        if (all.count(name + ".lock"))
          add(CacheCategory::kUvCache, "uv", name, {name, name + ".lock"}, name + ".lock");
        else
          add(CacheCategory::kUvCache, "uv", name);
      } else if (name.ends_with(".lock") && !is_dir(dir / stem(name, ".lock"))) {
        leftover("uv", {name}, "lock of a missing uv cache");
      }
    }
  }

  /// git/<hash>.git (bare mirror) with git/<hash>.git.lock.
  void git_mirrors() {
    const fs::path dir = root_ / "git";
    const std::vector<std::string> names = list_dir(dir);
    const std::set<std::string> all(names.begin(), names.end());
    for (const auto& name : names) {
      std::vector<std::string> parts = {name};
      if (all.count(name + ".lock")) parts.push_back(name + ".lock");
      if (is_temp(name)) {
        leftover("git", {name}, "unfinished write");
      } else if (name.ends_with(".git") && is_dir(dir / name)) {
        if (lstat_of(dir / name / "HEAD")) add(CacheCategory::kGitMirror, "git", name, parts, name);
        else leftover("git", parts, "unfinished mirror");
      } else if (name.ends_with(".git.lock") && !is_dir(dir / stem(name, ".lock"))) {
        leftover("git", {name}, "lock of a missing mirror");
      }
    }
  }

  static bool is_dir(const fs::path& p) {
    auto st = lstat_of(p);
    return st && S_ISDIR(st->st_mode);
  }
  static CacheTime mtime(const fs::path& p) {
    auto st = lstat_of(p);
    return st ? mtime_of(*st) : CacheTime{};
  }
  static std::string stem(const std::string& name, std::string_view suffix) {
    return name.substr(0, name.size() - suffix.size());
  }

  fs::path root_;
  std::vector<CacheItem> items_;
};

}  // namespace

CacheInventory take_cache_inventory(const fs::path& cache_dir) {
  CacheInventory inv;
  inv.cache_dir = cache_dir;
  inv.items = Lister(cache_dir).take();
  return inv;
}

}  // namespace dockless
