// Tests for `dockless cache ls` / `cache prune` (src/cache_inventory,
// src/cache_command) on small cache trees with explicit mtimes: what is
// listed and how big it is (hard links once), what a prune keeps and
// removes, that --dry-run removes nothing, and that prune waits for a
// command holding the cache lock.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "oci/digest.h"
#include "src/cache/cache_command.h"
#include "src/cache/cache_inventory.h"
#include "src/cache/cache_lock.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using dockless::CacheCategory;
using dockless::CacheInventory;
using dockless::CacheItem;
using dockless::CacheTime;
using dockless::PruneOptions;
using dockless::PruneResult;
using dockless::test::TempDir;
using dockless::test::write_text;

namespace {

using Days = std::chrono::duration<int, std::ratio<86400>>;

const CacheTime kNow = std::chrono::system_clock::now();
const CacheTime kRecent = kNow - Days(1);
const CacheTime kOld = kNow - Days(40);

void set_mtime(const fs::path& p, CacheTime t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = static_cast<time_t>(ns / 1000000000);
  times[0].tv_nsec = times[1].tv_nsec = static_cast<long>(ns % 1000000000);
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

std::uint64_t allocated(const fs::path& p) {
  struct stat st;
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

/// Writes a blob named by its content's digest; returns its hex.
std::string put_blob(const fs::path& cache, const std::string& content) {
  std::string hex = dockless::sha256_of(content).hex();
  write_text(cache / "blobs" / "sha256" / hex, content);
  return hex;
}

std::string entry_json(const std::vector<std::pair<std::string, std::string>>& name_hex) {
  std::string out = "{\"layers\":[";
  for (std::size_t i = 0; i < name_hex.size(); ++i) {
    out += i ? "," : "";
    out += "{\"name\":\"" + name_hex[i].first + "\",\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\"," +
           "\"digest\":\"sha256:" + name_hex[i].second + "\",\"size\":1,\"diffID\":\"sha256:" + name_hex[i].second +
           "\",\"uncompressedSize\":1,\"users\":[]}";
  }
  return out + "]}";
}

/// Every path under root, relative, sorted.
std::set<std::string> tree(const fs::path& root) {
  std::set<std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it)
    out.insert(fs::relative(it->path(), root).string());
  return out;
}

std::map<std::string, const CacheItem*> by_name(const CacheInventory& inv) {
  std::map<std::string, const CacheItem*> out;
  for (const auto& item : inv.items) out[item.name] = &item;
  return out;
}

std::size_t count(const CacheInventory& inv, CacheCategory c) {
  return static_cast<std::size_t>(
      std::count_if(inv.items.begin(), inv.items.end(), [c](const CacheItem& i) { return i.category == c; }));
}

/// A cache with something of every kind, old and recent. Names say what
/// prune --keep-days 30 must do with each.
struct MixedCache {
  TempDir tmp;
  fs::path c = tmp.path() / "cache";
  std::string blob_kept_by_entry, blob_shared, blob_old_entry_only, blob_recent_free, blob_old_free;

  MixedCache() {
    blob_kept_by_entry = put_blob(c, "layer used by the recent entry, last used long ago");
    blob_shared = put_blob(c, "layer of both entries");
    blob_old_entry_only = put_blob(c, "layer of the old entry only");
    blob_recent_free = put_blob(c, "a recent blob of an image");
    blob_old_free = put_blob(c, "an old blob no entry wants");
    write_text(c / "layers" / "recent.json", entry_json({{"venv main", blob_kept_by_entry}, {"uv cache common", blob_shared}}));
    write_text(c / "layers" / "old.json", entry_json({{"source", blob_old_entry_only}, {"uv", blob_shared}}));
    // The older flat form of an entry.
    write_text(c / "layers" / "flat.json",
               "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:" +
                   blob_recent_free + "\",\"size\":1,\"diffID\":\"sha256:" + blob_recent_free + "\"}");
    write_text(c / "layers" / "broken.json", "{\"layers\": [");
    write_text(c / "layers" / "dangling.json", entry_json({{"gone", std::string(64, 'a')}}));
    write_text(c / "layers" / ".tmp-x.json-1-0", "{");
    write_text(c / "blobs" / "sha256" / ".tmp-blob-9-1", "partial");

    write_text(c / "envs" / "recentvenv" / "bin" / "python", "#!");
    write_text(c / "envs" / "recentvenv.complete", "complete\n");
    write_text(c / "envs" / "oldvenv" / "bin" / "python", "#!");
    write_text(c / "envs" / "oldvenv.complete", "complete\n");
    write_text(c / "envs" / "unfinished" / "bin" / "python", "#!");
    write_text(c / "envs" / ".tmp-abc-5-0" / "x", "x");

    write_text(c / "snapshots" / "recentsnap" / "etc" / "os-release", "debian");
    write_text(c / "snapshots" / "recentsnap.complete", "complete\n");
    write_text(c / "snapshots" / "recentsnap.lock", "");
    write_text(c / "snapshots" / "oldsnap" / "usr" / "bin" / "python3", "elf");
    write_text(c / "snapshots" / "oldsnap.complete", "complete\n");
    write_text(c / "snapshots" / "oldsnap.lock", "");
    fs::permissions(c / "snapshots" / "oldsnap" / "usr" / "bin", fs::perms::owner_read | fs::perms::owner_exec);
    fs::permissions(c / "snapshots" / "oldsnap" / "usr", fs::perms::owner_read | fs::perms::owner_exec);
    write_text(c / "snapshots" / "halfsnap" / "etc" / "x", "x");

    write_text(c / "uv" / "linux-amd64-uv0.9" / "archive-v0" / "a" / "f.py", "x");
    write_text(c / "uv" / "linux-amd64-uv0.9.lock", "");
    write_text(c / "uv" / "linux-amd64-uv0.8" / "archive-v0" / "a" / "f.py", "x");
    write_text(c / "uv" / "linux-amd64-uv0.8.lock", "");
    write_text(c / "uv" / "linux-arm64-uv0.7" / "archive-v0" / "a" / "f.py", "x");

    write_text(c / "git" / "recent.git" / "HEAD", "ref: refs/heads/main\n");
    write_text(c / "git" / "recent.git.lock", "");
    write_text(c / "git" / "old.git" / "HEAD", "ref: refs/heads/main\n");
    write_text(c / "git" / "old.git.lock", "");

    write_text(c / "work" / "build-4242" / "sandbox" / "upper" / "f", "x");
    write_text(c / "lock", "");

    // Times last: writing inside a directory changes its mtime.
    for (const auto& p : tree(c)) set_mtime(c / p, kRecent);
    set_mtime(c / "blobs" / "sha256" / blob_kept_by_entry, kOld);
    set_mtime(c / "blobs" / "sha256" / blob_old_entry_only, kOld);
    set_mtime(c / "blobs" / "sha256" / blob_shared, kOld);
    set_mtime(c / "blobs" / "sha256" / blob_old_free, kOld);
    set_mtime(c / "layers" / "old.json", kOld);
    set_mtime(c / "envs" / "oldvenv.complete", kOld);
    set_mtime(c / "envs" / "recentvenv", kOld);  // the marker decides, not the dir
    set_mtime(c / "snapshots" / "oldsnap", kOld);
    set_mtime(c / "uv" / "linux-amd64-uv0.8.lock", kOld);  // the lock decides
    set_mtime(c / "uv" / "linux-arm64-uv0.7", kOld);       // no lock: the dir decides
    set_mtime(c / "git" / "old.git", kOld);
  }

  std::string blob(const std::string& hex) const { return "blobs/sha256/" + hex; }
};

}  // namespace

TEST_CASE("inventory: every kind of item in its category", "[cache_command]") {
  MixedCache m;
  CacheInventory inv = dockless::take_cache_inventory(m.c);
  auto items = by_name(inv);
  std::vector<std::string> names;
  for (const auto& i : inv.items) names.push_back(i.name);
  INFO("items: " << [&] { std::string s; for (auto& n : names) s += n + " "; return s; }());

  CHECK(count(inv, CacheCategory::kLayerEntry) == 5);
  CHECK(count(inv, CacheCategory::kBlob) == 5);
  CHECK(count(inv, CacheCategory::kVenv) == 2);
  CHECK(count(inv, CacheCategory::kSnapshot) == 2);
  CHECK(count(inv, CacheCategory::kUvCache) == 3);
  CHECK(count(inv, CacheCategory::kGitMirror) == 2);
  CHECK(count(inv, CacheCategory::kLeftover) == 6);
  for (const char* leftover : {"layers/.tmp-x.json-1-0", "blobs/sha256/.tmp-blob-9-1", "envs/unfinished",
                               "envs/.tmp-abc-5-0", "snapshots/halfsnap", "work/build-4242"}) {
    INFO(leftover);
    REQUIRE(items.count(leftover));
    CHECK(items[leftover]->category == CacheCategory::kLeftover);
    CHECK(!items[leftover]->defect.empty());
  }
  CHECK(items.count("lock") == 0);

  SECTION("layer entries: both forms read, names and blobs in order, damaged ones flagged") {
    const CacheItem* recent = items["layers/recent.json"];
    CHECK(recent->defect.empty());
    CHECK(recent->layer_names == std::vector<std::string>{"venv main", "uv cache common"});
    CHECK(recent->blob_hexes == std::vector<std::string>{m.blob_kept_by_entry, m.blob_shared});
    const CacheItem* flat = items["layers/flat.json"];
    CHECK(flat->defect.empty());
    CHECK(flat->blob_hexes == std::vector<std::string>{m.blob_recent_free});
    CHECK(flat->layer_names == std::vector<std::string>{""});
    CHECK_THAT(items["layers/broken.json"]->defect, Catch::Contains("damaged"));
    CHECK_THAT(items["layers/dangling.json"]->defect, Catch::Contains("missing"));
  }

  SECTION("last use: the venv's marker, the snapshot's dir, the uv cache's lock (else its dir)") {
    CHECK(items["envs/recentvenv"]->last_used == kRecent);
    CHECK(items["envs/oldvenv"]->last_used == kOld);
    CHECK(items["snapshots/oldsnap"]->last_used == kOld);
    CHECK(items["uv/linux-amd64-uv0.8"]->last_used == kOld);
    CHECK(items["uv/linux-amd64-uv0.9"]->last_used == kRecent);
    CHECK(items["uv/linux-arm64-uv0.7"]->last_used == kOld);
    CHECK(items["git/old.git"]->last_used == kOld);
  }

  SECTION("a snapshot's size covers its dir, stamp and lock") {
    fs::path s = m.c / "snapshots";
    std::uint64_t want = allocated(s / "recentsnap") + allocated(s / "recentsnap" / "etc") +
                         allocated(s / "recentsnap" / "etc" / "os-release") +
                         allocated(s / "recentsnap.complete") + allocated(s / "recentsnap.lock");
    CHECK(items["snapshots/recentsnap"]->bytes == want);
    CHECK(want > 0);
  }
}

TEST_CASE("inventory: a hard-linked file counts once", "[cache_command]") {
  TempDir tmp;
  fs::path uv = tmp / "uv" / "linux-amd64-uv0.9";
  write_text(uv / "archive-v0" / "a" / "big.so", std::string(256 * 1024, 'x'));
  fs::create_directories(uv / "wheels");
  fs::create_hard_link(uv / "archive-v0" / "a" / "big.so", uv / "wheels" / "big-link.so");
  fs::create_hard_link(uv / "archive-v0" / "a" / "big.so", uv / "wheels" / "big-link2.so");
  // A venv linking into the uv cache: the bytes belong to the first item listed.
  write_text(tmp / "envs" / "k" / "lib" / "small.py", "x");
  write_text(tmp / "envs" / "k.complete", "complete\n");
  fs::create_hard_link(uv / "archive-v0" / "a" / "big.so", tmp / "envs" / "k" / "lib" / "big.so");

  CacheInventory inv = dockless::take_cache_inventory(tmp.path());
  auto items = by_name(inv);
  REQUIRE(items.count("uv/linux-amd64-uv0.9"));
  REQUIRE(items.count("envs/k"));
  std::uint64_t big = allocated(uv / "archive-v0" / "a" / "big.so");
  REQUIRE(big >= 256 * 1024);
  std::uint64_t venv = allocated(tmp / "envs" / "k.complete") + allocated(tmp / "envs" / "k") +
                       allocated(tmp / "envs" / "k" / "lib") + allocated(tmp / "envs" / "k" / "lib" / "small.py") + big;
  std::uint64_t uv_dirs = allocated(uv) + allocated(uv / "archive-v0") + allocated(uv / "archive-v0" / "a") +
                          allocated(uv / "wheels");
  CHECK(items["envs/k"]->bytes == venv);
  CHECK(items["uv/linux-amd64-uv0.9"]->bytes == uv_dirs);  // big.so counted with the venv

  std::uint64_t total = 0;
  for (const auto& i : inv.items) total += i.bytes;
  CHECK(total == venv + uv_dirs);
}

TEST_CASE("inventory: a source memo's kept gzip blocks go with it", "[cache_command]") {
  TempDir tmp;
  write_text(tmp / "source-stat" / "abc.memo", "sha256:1 sha256:2 trusted\n");
  write_text(tmp / "source-stat" / "abc.blocks", std::string(5000, 'b'));
  write_text(tmp / "source-stat" / "def.blocks", "orphan");  // its memo is gone
  CacheInventory inv = dockless::take_cache_inventory(tmp.path());
  auto items = by_name(inv);
  REQUIRE(items.count("source-stat/abc.memo"));
  const auto& paths = items["source-stat/abc.memo"]->paths;
  REQUIRE(paths.size() == 2);
  CHECK(paths[0].string() == (tmp / "source-stat" / "abc.memo").string());
  CHECK(paths[1].string() == (tmp / "source-stat" / "abc.blocks").string());
  CHECK(items.count("source-stat/abc.blocks") == 0);
  CHECK(items.count("source-stat/def.blocks") == 1);
}

TEST_CASE("inventory: a missing cache dir is empty", "[cache_command]") {
  TempDir tmp;
  CacheInventory inv = dockless::take_cache_inventory(tmp / "nothing-here");
  CHECK(inv.items.empty());
  PruneOptions o;
  o.cache_dir = tmp / "nothing-here";
  PruneResult r = dockless::prune_cache(o);
  CHECK(r.removed.empty());
  CHECK(!fs::exists(tmp / "nothing-here"));
}

TEST_CASE("prune --keep-days 30: recent items stay, old and broken ones go", "[cache_command]") {
  MixedCache m;
  PruneOptions o;
  o.cache_dir = m.c;
  o.keep_days = 30;
  o.now = kNow;
  PruneResult r = dockless::prune_cache(o);
  CHECK(r.failures.empty());
  std::set<std::string> left = tree(m.c);
  INFO("left: " << [&] { std::string s; for (auto& n : left) s += n + "\n"; return s; }());

  std::set<std::string> removed;
  for (const auto& i : r.removed) removed.insert(i.name);
  std::set<std::string> want_removed = {
      "layers/old.json", "layers/broken.json", "layers/dangling.json", "layers/.tmp-x.json-1-0",
      m.blob(m.blob_old_entry_only), m.blob(m.blob_old_free), "blobs/sha256/.tmp-blob-9-1",
      "envs/oldvenv", "envs/unfinished", "envs/.tmp-abc-5-0",
      "snapshots/oldsnap", "snapshots/halfsnap",
      "uv/linux-amd64-uv0.8", "uv/linux-arm64-uv0.7",
      "git/old.git", "work/build-4242"};
  CHECK(removed == want_removed);

  // Kept: recent things, and old blobs a kept entry refers to.
  for (const std::string& p :
       {std::string("layers/recent.json"), std::string("layers/flat.json"), m.blob(m.blob_kept_by_entry),
        m.blob(m.blob_shared), m.blob(m.blob_recent_free), std::string("envs/recentvenv/bin/python"),
        std::string("envs/recentvenv.complete"), std::string("snapshots/recentsnap/etc/os-release"),
        std::string("snapshots/recentsnap.complete"), std::string("snapshots/recentsnap.lock"),
        std::string("uv/linux-amd64-uv0.9/archive-v0/a/f.py"), std::string("uv/linux-amd64-uv0.9.lock"),
        std::string("git/recent.git/HEAD"), std::string("git/recent.git.lock"), std::string("lock")}) {
    INFO("kept: " << p);
    CHECK(left.count(p));
  }
  // Gone with everything that belongs to them (stamps, locks), no temp names left behind.
  for (const char* p : {"layers/old.json", "envs/oldvenv", "envs/oldvenv.complete", "snapshots/oldsnap",
                        "snapshots/oldsnap.complete", "snapshots/oldsnap.lock", "uv/linux-amd64-uv0.8",
                        "uv/linux-amd64-uv0.8.lock", "git/old.git", "git/old.git.lock", "work/build-4242"}) {
    INFO("removed: " << p);
    CHECK(!left.count(p));
  }
  CHECK(fs::is_directory(m.c / "work"));
  for (const auto& p : left) CHECK(p.find(".tmp-") == std::string::npos);
  CHECK(r.kept_items == dockless::take_cache_inventory(m.c).items.size());

  // Nothing else goes on a second run.
  PruneResult again = dockless::prune_cache(o);
  CHECK(again.removed.empty());
  CHECK(tree(m.c) == left);
}

TEST_CASE("prune with keep_days 0 removes everything but the lock", "[cache_command]") {
  MixedCache m;
  write_text(m.c / "envs" / "future" / "x", "x");
  write_text(m.c / "envs" / "future.complete", "complete\n");
  set_mtime(m.c / "envs" / "future.complete", kNow + Days(3));  // a clock that went back
  PruneOptions o;
  o.cache_dir = m.c;
  PruneResult r = dockless::prune_cache(o);
  CHECK(r.failures.empty());
  CHECK(r.kept_items == 0);
  CHECK(dockless::take_cache_inventory(m.c).items.empty());
  std::set<std::string> left = tree(m.c);
  CHECK(left == std::set<std::string>{"lock", "layers", "blobs", "blobs/sha256", "envs", "snapshots", "uv", "git",
                                      "work"});
}

TEST_CASE("prune --dry-run removes nothing and reports what would go", "[cache_command]") {
  MixedCache m;
  std::set<std::string> before = tree(m.c);
  PruneOptions o;
  o.cache_dir = m.c;
  o.keep_days = 30;
  o.dry_run = true;
  o.now = kNow;
  PruneResult r = dockless::prune_cache(o);
  CHECK(tree(m.c) == before);
  CHECK(r.removed.size() == 16);
  std::string out = dockless::format_prune_result(r, false, kNow);
  CHECK_THAT(out, Catch::Contains("would remove envs/oldvenv"));
  CHECK_THAT(out, Catch::Contains("would remove 3 layer entries"));
  CHECK_THAT(out, Catch::Contains("would remove 1 git mirror"));
  CHECK_THAT(out, Catch::Contains("would free "));

  o.keep_days = 0;
  r = dockless::prune_cache(o);
  CHECK(tree(m.c) == before);
  CHECK(r.kept_items == 0);
}

TEST_CASE("cache ls and prune output", "[cache_command]") {
  MixedCache m;
  CacheInventory inv = dockless::take_cache_inventory(m.c);
  std::string ls = dockless::format_cache_ls(inv, false, kNow);
  CHECK_THAT(ls, Catch::StartsWith("cache " + m.c.string() + "\n"));
  auto line_of = [](const std::string& text, const std::string& start) {
    std::size_t at = text.find("\n" + start);
    return at == std::string::npos ? std::string() : text.substr(at + 1, text.find('\n', at + 1) - at - 1);
  };
  CHECK_THAT(line_of(ls, "layer entries"), Catch::Matches("layer entries +5 +[0-9.]+ KiB +24 h ago +40 days ago"));
  CHECK_THAT(line_of(ls, "git mirrors"), Catch::Matches("git mirrors +2 +[0-9.]+ KiB +24 h ago +40 days ago"));
  CHECK_THAT(line_of(ls, "leftovers"), Catch::Matches("leftovers +6 +[0-9.]+ KiB +24 h ago +24 h ago"));
  CHECK_THAT(ls, Catch::Contains("\ntotal "));
  CHECK_THAT(ls, !Catch::Contains("venv main"));
  std::string verbose = dockless::format_cache_ls(inv, true, kNow);
  CHECK_THAT(verbose, Catch::Contains("layers/recent.json  venv main, uv cache common"));
  CHECK_THAT(verbose, Catch::Contains("layers/broken.json  damaged"));
  CHECK_THAT(verbose, Catch::Contains("work/build-4242  build scratch"));

  CHECK(dockless::format_age(kNow - std::chrono::seconds(5), kNow) == "just now");
  CHECK(dockless::format_age(kNow - std::chrono::minutes(7), kNow) == "7 min ago");
  CHECK(dockless::format_age(kNow - std::chrono::hours(30), kNow) == "30 h ago");
  CHECK(dockless::format_age(kOld, kNow) == "40 days ago");

  PruneOptions o;
  o.cache_dir = m.c;
  PruneResult r = dockless::prune_cache(o);
  std::string out = dockless::format_prune_result(r, false, kNow);
  CHECK_THAT(out, Catch::Contains("removed 5 layer entries ("));
  CHECK_THAT(out, Catch::Contains("removed 2 venvs ("));
  CHECK_THAT(out, Catch::Contains("removed 6 leftovers ("));
  CHECK_THAT(out, Catch::Contains("kept 0 items (0 B)\n"));
  CHECK_THAT(out, Catch::Matches("(.|\n)*\nfreed [0-9.]+ KiB\n"));
  CHECK_THAT(out, !Catch::Contains("removed envs/"));  // items only with --verbose
}

TEST_CASE("prune waits for a command that holds the cache lock", "[cache_command]") {
  TempDir tmp;
  fs::path cache = tmp / "cache";
  write_text(cache / "work" / "build-1" / "f", "x");
  fs::path released = tmp / "released";
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Child: a "build" that holds the shared lock for about a second, and
    // says so in a file just before it lets go.
    ::close(ready[0]);
    int status = 1;
    try {
      dockless::CacheLock in_use = dockless::CacheLock::shared(cache);
      char c = 'x';
      if (::write(ready[1], &c, 1) == 1) {
        ::usleep(1000 * 1000);
        int fd = ::open(released.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
        status = fd >= 0 ? 0 : 1;
      }
    } catch (...) {
    }
    ::_exit(status);  // closing the descriptor releases the lock
  }
  ::close(ready[1]);
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);

  int waits = 0;
  PruneOptions o;
  o.cache_dir = cache;
  o.on_wait = [&] { ++waits; };
  PruneResult r = dockless::prune_cache(o);
  bool child_released_first = fs::exists(released);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(waits == 1);
  CHECK(child_released_first);
  REQUIRE(r.removed.size() == 1);
  CHECK(r.removed[0].name == "work/build-1");
  CHECK(!fs::exists(cache / "work" / "build-1"));
}
