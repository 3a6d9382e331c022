// Tests for layers/tar_writer: the tar stream is read back with libarchive
// and checked for what runtimes and reproducibility depend on: entry order,
// names, owners, clamped times, links, long names, xattrs, identical bytes.
#include "layers/tar_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "layers/byte_sink.h"
#include "base/error.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;

namespace {

using dockless::Error;
using dockless::TarOptions;
using dockless::TarStats;
using dockless::test::TempDir;
using dockless::test::write_text;

class StringSink final : public dockless::ByteSink {
 public:
  void write(const void* data, std::size_t size) override {
    if (finishes > 0) throw std::logic_error("write after finish");
    bytes.append(static_cast<const char*>(data), size);
  }
  void finish() override { ++finishes; }
  std::string bytes;
  int finishes = 0;
};

// Fails on the n-th write.
class FailingSink final : public dockless::ByteSink {
 public:
  explicit FailingSink(int fail_at) : fail_at_(fail_at) {}
  void write(const void*, std::size_t) override {
    if (writes_++ == fail_at_) throw Error("disk full (test sink)");
  }
  void finish() override {}

 private:
  int fail_at_;
  int writes_ = 0;
};

struct TarEntry {
  std::string name;  // as stored (directories may end in '/')
  std::string path;  // name without a trailing '/'
  unsigned type = 0;
  unsigned perm = 0;
  std::int64_t uid = -1, gid = -1;
  std::string uname, gname;
  std::int64_t mtime = 0;
  long mtime_nsec = 0;
  bool atime_set = false, ctime_set = false, birthtime_set = false;
  std::string symlink, hardlink;
  std::int64_t size = 0;
  std::string data;
  std::map<std::string, std::string> xattrs;
};

std::vector<TarEntry> read_tar(const std::string& bytes) {
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  REQUIRE(archive_read_open_memory(a, bytes.data(), bytes.size()) == ARCHIVE_OK);
  std::vector<TarEntry> out;
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) break;
    INFO("libarchive: " << (archive_error_string(a) ? archive_error_string(a) : ""));
    REQUIRE(r == ARCHIVE_OK);
    TarEntry t;
    t.name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    t.path = t.name;
    while (!t.path.empty() && t.path.back() == '/') t.path.pop_back();
    t.type = archive_entry_filetype(e);
    t.perm = archive_entry_perm(e);
    t.uid = archive_entry_uid(e);
    t.gid = archive_entry_gid(e);
    t.uname = archive_entry_uname(e) ? archive_entry_uname(e) : "";
    t.gname = archive_entry_gname(e) ? archive_entry_gname(e) : "";
    t.mtime = archive_entry_mtime(e);
    t.mtime_nsec = archive_entry_mtime_nsec(e);
    t.atime_set = archive_entry_atime_is_set(e) != 0;
    t.ctime_set = archive_entry_ctime_is_set(e) != 0;
    t.birthtime_set = archive_entry_birthtime_is_set(e) != 0;
    t.symlink = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
    t.hardlink = archive_entry_hardlink(e) ? archive_entry_hardlink(e) : "";
    t.size = archive_entry_size(e);
    archive_entry_xattr_reset(e);
    const char* xname;
    const void* xvalue;
    size_t xsize;
    while (archive_entry_xattr_next(e, &xname, &xvalue, &xsize) == ARCHIVE_OK)
      t.xattrs[xname] = std::string(static_cast<const char*>(xvalue), xsize);
    char buf[65536];
    for (;;) {
      la_ssize_t n = archive_read_data(a, buf, sizeof buf);
      REQUIRE(n >= 0);
      if (n == 0) break;
      t.data.append(buf, static_cast<std::size_t>(n));
    }
    out.push_back(std::move(t));
  }
  archive_read_free(a);
  return out;
}

std::string tar_of(const fs::path& dir, const TarOptions& options = {}, TarStats* stats = nullptr) {
  StringSink sink;
  TarStats s = dockless::write_directory_tar(dir, options, sink);
  CHECK(sink.finishes == 1);
  if (stats != nullptr) *stats = s;
  return sink.bytes;
}

std::vector<std::string> paths_of(const std::vector<TarEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.path);
  return out;
}

const TarEntry& find(const std::vector<TarEntry>& entries, const std::string& path) {
  for (const auto& e : entries)
    if (e.path == path) return e;
  FAIL("no entry " << path);
  throw std::logic_error("unreachable");
}

bool has(const std::vector<TarEntry>& entries, const std::string& path) {
  for (const auto& e : entries)
    if (e.path == path) return true;
  return false;
}

void set_mtime(const fs::path& p, time_t sec, long nsec = 0) {
  struct timespec ts[2];
  ts[0].tv_sec = sec;  // atime: something else, it must not matter
  ts[0].tv_nsec = 0;
  ts[1].tv_sec = sec;
  ts[1].tv_nsec = nsec;
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0);
}

// Sets the mtime of every entry below root (and root itself).
void set_tree_mtime(const fs::path& root, time_t sec, long nsec = 0) {
  std::vector<fs::path> all{root};
  for (const auto& e : fs::recursive_directory_iterator(root)) all.push_back(e.path());
  for (const auto& p : all) set_mtime(p, sec, nsec);
}

// Each entry's parent directory appeared before it (or it is top-level).
void check_parents_first(const std::vector<TarEntry>& entries) {
  std::set<std::string> seen_dirs;
  for (const auto& e : entries) {
    auto slash = e.path.rfind('/');
    if (slash != std::string::npos) {
      INFO("entry " << e.path);
      CHECK(seen_dirs.count(e.path.substr(0, slash)) == 1);
    }
    if (e.type == AE_IFDIR) seen_dirs.insert(e.path);
  }
}

// A small project tree with names whose bytewise order differs from both a
// case-insensitive order and a full-path order.
void make_tree(const fs::path& root) {
  write_text(root / "b.txt", "bee\n");
  write_text(root / "B", "upper\n");
  write_text(root / "_x", "underscore\n");
  write_text(root / "a-c", "dash\n");
  write_text(root / "a.b", "dot\n");
  write_text(root / "a" / "z", "zed\n");
  write_text(root / "a" / "y" / "f", "deep\n");
  write_text(root / "a" / "Y", "upper y\n");
  fs::create_directories(root / "empty");
}

}  // namespace

// ---------------------------------------------------------------------------
// Order and names

TEST_CASE("entries are depth first, sorted bytewise per directory, parents first",
          "[tar_writer]") {
  TempDir tmp;
  make_tree(tmp / "src");
  TarStats stats;
  const std::string bytes = tar_of(tmp / "src", {}, &stats);
  const auto entries = read_tar(bytes);
  CHECK(paths_of(entries) == std::vector<std::string>{"B", "_x", "a", "a/Y", "a/y", "a/y/f", "a/z",
                                                      "a-c", "a.b", "b.txt", "empty"});
  check_parents_first(entries);
  for (const auto& e : entries) {
    INFO(e.name);
    CHECK(e.name.rfind("./", 0) == std::string::npos);
    CHECK(e.name.rfind("/", 0) == std::string::npos);
    CHECK(e.name != ".");
    CHECK(!e.path.empty());
  }
  CHECK(find(entries, "a").type == AE_IFDIR);
  CHECK(find(entries, "empty").type == AE_IFDIR);
  CHECK(find(entries, "a/y/f").type == AE_IFREG);
  CHECK(find(entries, "a/y/f").data == "deep\n");
  CHECK(find(entries, "b.txt").data == "bee\n");
  CHECK(find(entries, "b.txt").size == 4);

  CHECK(stats.entries == entries.size());
  CHECK(stats.file_bytes == std::string("bee\nupper\nunderscore\ndash\ndot\nzed\ndeep\nupper y\n").size());
  // A tar is a sequence of 512-byte records ending in two zero records.
  CHECK(bytes.size() % 512 == 0);
  REQUIRE(bytes.size() >= 1024);
  CHECK(bytes.substr(bytes.size() - 1024) == std::string(1024, '\0'));
}

TEST_CASE("a destination emits its parent directories first", "[tar_writer]") {
  TempDir tmp;
  write_text(tmp / "venv" / "bin" / "python", "#!/bin/sh\n");
  write_text(tmp / "venv" / "pyvenv.cfg", "home = /usr/bin\n");
  fs::permissions(tmp / "venv", fs::perms(0750));
  set_tree_mtime(tmp / "venv", 1000);

  for (const std::string dest : {"/opt/venv", "opt/venv", "/opt/venv/", "./opt/venv"}) {
    INFO("dest " << dest);
    TarOptions opt;
    opt.dest = dest;
    const auto entries = read_tar(tar_of(tmp / "venv", opt));
    CHECK(paths_of(entries) == std::vector<std::string>{"opt", "opt/venv", "opt/venv/bin",
                                                        "opt/venv/bin/python", "opt/venv/pyvenv.cfg"});
    check_parents_first(entries);
    const TarEntry& opt_dir = find(entries, "opt");
    CHECK(opt_dir.type == AE_IFDIR);
    CHECK(opt_dir.perm == 0755);
    CHECK(opt_dir.uid == 0);
    CHECK(opt_dir.mtime == dockless::kDefaultMtimeClamp);
    // The destination itself carries the source directory's mode and time.
    const TarEntry& venv = find(entries, "opt/venv");
    CHECK(venv.type == AE_IFDIR);
    CHECK(venv.perm == 0750);
    CHECK(venv.mtime == 1000);
    for (const auto& e : entries) CHECK(e.name.rfind("./", 0) == std::string::npos);
  }

  // A deep destination: every ancestor once, in order.
  TarOptions deep;
  deep.dest = "/opt/ray_venvs/nemo_rl.models.generation.VllmWorker";
  const auto entries = read_tar(tar_of(tmp / "venv", deep));
  REQUIRE(entries.size() >= 3);
  CHECK(entries[0].path == "opt");
  CHECK(entries[1].path == "opt/ray_venvs");
  CHECK(entries[2].path == "opt/ray_venvs/nemo_rl.models.generation.VllmWorker");
  check_parents_first(entries);
}

TEST_CASE("dest \"/\" has no root entry and no ./ prefix", "[tar_writer]") {
  TempDir tmp;
  write_text(tmp / "src" / "f", "x");
  for (const std::string dest : {"/", "", ".", "./"}) {
    INFO("dest \"" << dest << "\"");
    TarOptions opt;
    opt.dest = dest;
    const auto entries = read_tar(tar_of(tmp / "src", opt));
    CHECK(paths_of(entries) == std::vector<std::string>{"f"});
  }
}

TEST_CASE("an empty directory gives a valid tar with only the destination", "[tar_writer]") {
  TempDir tmp;
  fs::create_directories(tmp / "empty");
  TarStats stats;
  const std::string root = tar_of(tmp / "empty", {}, &stats);
  CHECK(read_tar(root).empty());
  CHECK(stats.entries == 0);
  CHECK(root.size() % 512 == 0);
  TarOptions opt;
  opt.dest = "/data/x";
  CHECK(paths_of(read_tar(tar_of(tmp / "empty", opt))) == std::vector<std::string>{"data", "data/x"});
}

// ---------------------------------------------------------------------------
// Metadata

TEST_CASE("mtimes are clamped to the default or a custom clamp, seconds only",
          "[tar_writer]") {
  TempDir tmp;
  write_text(tmp / "src" / "old", "o");
  write_text(tmp / "src" / "new", "n");
  write_text(tmp / "src" / "sub" / "f", "f");
  fs::create_symlink("old", tmp / "src" / "link");
  set_tree_mtime(tmp / "src", 1700000000, 999999999);
  set_mtime(tmp / "src" / "old", 1000, 500000000);
  set_mtime(tmp / "src" / "link", 1200, 0);

  SECTION("default clamp: 1980-01-01") {
    const std::string bytes = tar_of(tmp / "src");
    const auto entries = read_tar(bytes);
    CHECK(find(entries, "old").mtime == 1000);
    CHECK(find(entries, "new").mtime == 315532800);
    CHECK(find(entries, "sub").mtime == 315532800);
    CHECK(find(entries, "sub/f").mtime == 315532800);
    CHECK(find(entries, "link").mtime == 1200);
    for (const auto& e : entries) {
      INFO(e.path);
      CHECK(e.mtime_nsec == 0);
      CHECK_FALSE(e.atime_set);
      CHECK_FALSE(e.ctime_set);
      CHECK_FALSE(e.birthtime_set);
    }
    // Plain ustar: nothing here needs a PAX header, so none (and no
    // atime/ctime/fractional mtime records) is written.
    CHECK(bytes.find("PaxHeader") == std::string::npos);
    CHECK(bytes.find("atime=") == std::string::npos);
    CHECK(bytes.find("ctime=") == std::string::npos);
    CHECK(bytes.find("mtime=") == std::string::npos);
  }
  SECTION("custom clamp") {
    TarOptions opt;
    opt.mtime_clamp = 1100;
    const auto entries = read_tar(tar_of(tmp / "src", opt));
    CHECK(find(entries, "old").mtime == 1000);
    CHECK(find(entries, "new").mtime == 1100);
    CHECK(find(entries, "sub").mtime == 1100);
    CHECK(find(entries, "link").mtime == 1100);
    for (const auto& e : entries) CHECK(e.mtime_nsec == 0);
  }
  SECTION("clamp 0") {
    TarOptions opt;
    opt.mtime_clamp = 0;
    opt.dest = "/x";
    for (const auto& e : read_tar(tar_of(tmp / "src", opt))) CHECK(e.mtime == 0);
  }
}

TEST_CASE("owners are 0 by default, fixed or preserved, names always empty", "[tar_writer]") {
  TempDir tmp;
  write_text(tmp / "src" / "owned", "x");
  write_text(tmp / "src" / "dir" / "f", "y");
  fs::create_symlink("owned", tmp / "src" / "sym");
  const bool can_chown = ::lchown((tmp / "src" / "owned").c_str(), 1234, 5678) == 0 &&
                         ::lchown((tmp / "src" / "sym").c_str(), 2345, 6789) == 0 &&
                         ::lchown((tmp / "src" / "dir").c_str(), 3456, 7890) == 0;

  SECTION("default: 0/0") {
    TarOptions opt;
    opt.dest = "/app";
    for (const auto& e : read_tar(tar_of(tmp / "src", opt))) {
      INFO(e.path);
      CHECK(e.uid == 0);
      CHECK(e.gid == 0);
      CHECK(e.uname.empty());
      CHECK(e.gname.empty());
    }
  }
  SECTION("a fixed owner applies to every entry, parents included") {
    TarOptions opt;
    opt.dest = "/home/user/app";
    opt.uid = 1000;
    opt.gid = 1001;
    for (const auto& e : read_tar(tar_of(tmp / "src", opt))) {
      INFO(e.path);
      CHECK(e.uid == 1000);
      CHECK(e.gid == 1001);
      CHECK(e.uname.empty());
      CHECK(e.gname.empty());
    }
  }
  SECTION("nullopt keeps each file's own ids") {
    TarOptions opt;
    opt.uid = std::nullopt;
    opt.gid = std::nullopt;
    const auto entries = read_tar(tar_of(tmp / "src", opt));
    struct stat st;
    REQUIRE(::lstat((tmp / "src" / "dir" / "f").c_str(), &st) == 0);
    CHECK(find(entries, "dir/f").uid == static_cast<std::int64_t>(st.st_uid));
    CHECK(find(entries, "dir/f").gid == static_cast<std::int64_t>(st.st_gid));
    if (can_chown) {
      CHECK(find(entries, "owned").uid == 1234);
      CHECK(find(entries, "owned").gid == 5678);
      CHECK(find(entries, "sym").uid == 2345);
      CHECK(find(entries, "sym").gid == 6789);
      CHECK(find(entries, "dir").uid == 3456);
      CHECK(find(entries, "dir").gid == 7890);
    } else {
      WARN("cannot chown test files (not root): only the caller's own ids were checked");
    }
    for (const auto& e : entries) {
      CHECK(e.uname.empty());
      CHECK(e.gname.empty());
    }
  }
}

TEST_CASE("permission bits are kept", "[tar_writer]") {
  TempDir tmp;
  write_text(tmp / "src" / "exe", "#!/bin/sh\n");
  write_text(tmp / "src" / "ro", "r");
  write_text(tmp / "src" / "priv" / "key", "k");
  fs::permissions(tmp / "src" / "exe", fs::perms(0755));
  fs::permissions(tmp / "src" / "ro", fs::perms(0444));
  fs::permissions(tmp / "src" / "priv" / "key", fs::perms(0600));
  fs::permissions(tmp / "src" / "priv", fs::perms(0700));
  const auto entries = read_tar(tar_of(tmp / "src"));
  CHECK(find(entries, "exe").perm == 0755);
  CHECK(find(entries, "ro").perm == 0444);
  CHECK(find(entries, "priv").perm == 0700);
  CHECK(find(entries, "priv/key").perm == 0600);
}

// ---------------------------------------------------------------------------
// Links and special files

TEST_CASE("symlinks are kept as symlinks with their targets", "[tar_writer]") {
  TempDir tmp;
  const fs::path src = tmp / "src";
  write_text(src / "lib" / "python3.12" / "site-packages" / "mod.py", "x = 1\n");
  fs::create_directories(src / "bin");
  fs::create_symlink("/usr/bin/python3.12", src / "bin" / "python");           // absolute
  fs::create_symlink("python", src / "bin" / "python3");                       // relative
  fs::create_symlink("../lib/python3.12", src / "bin" / "libdir");             // to a directory
  fs::create_symlink("/nonexistent/dangling", src / "bin" / "dangling");       // dangling
  const std::string long_target =
      "/root/.cache/uv/archive-v0/" + std::string(120, 'x') + "/lib/python3.12/site-packages/numpy";
  fs::create_symlink(long_target, src / "bin" / "long");
  TarOptions opt;
  opt.dest = "/opt/venv";
  const auto entries = read_tar(tar_of(src, opt));
  CHECK(find(entries, "opt/venv/bin/python").type == AE_IFLNK);
  CHECK(find(entries, "opt/venv/bin/python").symlink == "/usr/bin/python3.12");
  CHECK(find(entries, "opt/venv/bin/python3").symlink == "python");
  CHECK(find(entries, "opt/venv/bin/libdir").type == AE_IFLNK);
  CHECK(find(entries, "opt/venv/bin/libdir").symlink == "../lib/python3.12");
  CHECK(find(entries, "opt/venv/bin/dangling").symlink == "/nonexistent/dangling");
  CHECK(find(entries, "opt/venv/bin/long").symlink == long_target);
  CHECK(find(entries, "opt/venv/bin/long").size == 0);
  // A symlinked directory is not followed.
  CHECK_FALSE(has(entries, "opt/venv/bin/libdir/site-packages"));
  CHECK(has(entries, "opt/venv/lib/python3.12/site-packages/mod.py"));
}

TEST_CASE("hardlinked files become one file and hardlinks to its tar name", "[tar_writer]") {
  TempDir tmp;
  const fs::path src = tmp / "src";
  write_text(src / "a1", "shared content\n");
  fs::create_hard_link(src / "a1", src / "z2");
  write_text(src / "d" / "orig", "three links\n");
  fs::create_hard_link(src / "d" / "orig", src / "c-link");
  fs::create_hard_link(src / "d" / "orig", src / "d" / "zz");
  // A file whose other link is outside the tree is a plain file.
  write_text(tmp / "outside", "outside\n");
  fs::create_hard_link(tmp / "outside", src / "inside");

  SECTION("at the root") {
    TarStats stats;
    const auto entries = read_tar(tar_of(src, {}, &stats));
    CHECK(paths_of(entries) ==
          std::vector<std::string>{"a1", "c-link", "d", "d/orig", "d/zz", "inside", "z2"});
    const TarEntry& a1 = find(entries, "a1");
    CHECK(a1.type == AE_IFREG);
    CHECK(a1.hardlink.empty());
    CHECK(a1.data == "shared content\n");
    const TarEntry& z2 = find(entries, "z2");
    CHECK(z2.hardlink == "a1");
    CHECK(z2.data.empty());
    CHECK(z2.size == 0);
    // The first in tar order carries the data: "c-link" sorts before "d".
    const TarEntry& c = find(entries, "c-link");
    CHECK(c.hardlink.empty());
    CHECK(c.data == "three links\n");
    CHECK(find(entries, "d/orig").hardlink == "c-link");
    CHECK(find(entries, "d/zz").hardlink == "c-link");
    const TarEntry& inside = find(entries, "inside");
    CHECK(inside.hardlink.empty());
    CHECK(inside.data == "outside\n");
    // Data counted once per file.
    CHECK(stats.file_bytes == std::string("shared content\nthree links\noutside\n").size());
  }
  SECTION("under a destination, targets carry the destination") {
    TarOptions opt;
    opt.dest = "/opt/venv";
    const auto entries = read_tar(tar_of(src, opt));
    CHECK(find(entries, "opt/venv/z2").hardlink == "opt/venv/a1");
    CHECK(find(entries, "opt/venv/d/zz").hardlink == "opt/venv/c-link");
  }
  SECTION("when the first link is filtered out, the next one carries the data") {
    TarOptions opt;
    opt.include = [](const std::string& rel, bool) { return rel != "a1" && rel != "c-link"; };
    const auto entries = read_tar(tar_of(src, opt));
    CHECK_FALSE(has(entries, "a1"));
    CHECK(find(entries, "z2").hardlink.empty());
    CHECK(find(entries, "z2").data == "shared content\n");
    CHECK(find(entries, "d/orig").hardlink.empty());
    CHECK(find(entries, "d/orig").data == "three links\n");
    CHECK(find(entries, "d/zz").hardlink == "d/orig");
  }
}

TEST_CASE("FIFOs are archived as FIFOs and sockets are skipped", "[tar_writer]") {
  TempDir tmp;
  write_text(tmp / "src" / "f", "x");
  REQUIRE(::mkfifo((tmp / "src" / "pipe").c_str(), 0644) == 0);
  const auto entries = read_tar(tar_of(tmp / "src"));
  CHECK(find(entries, "pipe").type == AE_IFIFO);
  CHECK(find(entries, "pipe").size == 0);
}

// ---------------------------------------------------------------------------
// Long names

TEST_CASE("names longer than 100 and paths longer than 255 bytes survive", "[tar_writer]") {
  TempDir tmp;
  const fs::path src = tmp / "src";
  const std::string name100(100, 'n');
  const std::string name101(101, 'm');
  const std::string name200 = std::string(190, 'p') + ".dist-info";
  const std::string d1(100, 'a'), d2(100, 'b'), d3(100, 'c');
  const std::string deep = d1 + "/" + d2 + "/" + d3 + "/" + name200;
  write_text(src / name100, "100");
  write_text(src / name101, "101");
  write_text(src / name200, "200");
  write_text(src / deep, "deep");
  fs::create_symlink(name200, src / "to-long");
  fs::create_hard_link(src / deep, src / "zz-hardlink-to-deep");
  REQUIRE(deep.size() > 255);

  TarOptions opt;
  opt.dest = "/opt/venv";
  const std::string bytes = tar_of(src, opt);
  const auto entries = read_tar(bytes);
  const std::string p = "opt/venv/";
  CHECK(find(entries, p + name100).data == "100");
  CHECK(find(entries, p + name101).data == "101");
  CHECK(find(entries, p + name200).data == "200");
  CHECK(find(entries, p + deep).data == "deep");
  CHECK(find(entries, p + d1 + "/" + d2 + "/" + d3).type == AE_IFDIR);
  CHECK(find(entries, p + "to-long").symlink == name200);
  CHECK(find(entries, p + "zz-hardlink-to-deep").hardlink == p + deep);
  check_parents_first(entries);
  // Long names need PAX headers, but still no time records.
  CHECK(bytes.find("atime=") == std::string::npos);
  CHECK(bytes.find("ctime=") == std::string::npos);
  for (const auto& e : entries) {
    CHECK(e.mtime_nsec == 0);
    CHECK_FALSE(e.atime_set);
  }
  // And the output is still reproducible.
  CHECK(tar_of(src, opt) == bytes);
}

// ---------------------------------------------------------------------------
// Reproducibility

TEST_CASE("the same directory twice gives byte-identical tars", "[tar_writer]") {
  TempDir tmp;
  make_tree(tmp / "src");
  fs::create_symlink("a/z", tmp / "src" / "s");
  fs::create_hard_link(tmp / "src" / "b.txt", tmp / "src" / "hl");
  TarOptions opt;
  opt.dest = "/opt/app";
  const std::string first = tar_of(tmp / "src", opt);
  const std::string second = tar_of(tmp / "src", opt);
  CHECK(first == second);
  // Reading every file (atime changes) changes nothing either.
  for (const auto& e : fs::recursive_directory_iterator(tmp / "src"))
    if (e.is_regular_file()) (void)fs::file_size(e.path());
  CHECK(tar_of(tmp / "src", opt) == first);
}

TEST_CASE("a copy of a tree with other newer mtimes and inodes gives the same bytes",
          "[tar_writer]") {
  TempDir tmp;
  make_tree(tmp / "one");
  set_tree_mtime(tmp / "one", 1600000000, 123);
  const std::string first = tar_of(tmp / "one");

  // Same tree again: new inodes, different creation order, different
  // (still newer than the clamp) mtimes with nanoseconds.
  const fs::path two = tmp / "two";
  fs::create_directories(two / "empty");
  write_text(two / "a" / "Y", "upper y\n");
  write_text(two / "a" / "y" / "f", "deep\n");
  write_text(two / "a" / "z", "zed\n");
  write_text(two / "a.b", "dot\n");
  write_text(two / "a-c", "dash\n");
  write_text(two / "_x", "underscore\n");
  write_text(two / "B", "upper\n");
  write_text(two / "b.txt", "bee\n");
  set_tree_mtime(two, 1700000000, 987654321);
  CHECK(tar_of(two) == first);

  // Touching one file of the first tree again: still the same.
  set_mtime(tmp / "one" / "a" / "z", 1750000000, 1);
  CHECK(tar_of(tmp / "one") == first);
}

// ---------------------------------------------------------------------------
// Filter and xattrs

TEST_CASE("the include filter leaves out an entry and everything below it", "[tar_writer]") {
  TempDir tmp;
  make_tree(tmp / "src");
  write_text(tmp / "src" / "a" / "y" / "g", "g");
  std::vector<std::pair<std::string, bool>> calls;
  TarOptions opt;
  opt.dest = "/opt/app";
  opt.include = [&](const std::string& rel, bool is_dir) {
    calls.emplace_back(rel, is_dir);
    return rel != "a/y" && rel != "b.txt";
  };
  TarStats stats;
  const auto entries = read_tar(tar_of(tmp / "src", opt, &stats));
  CHECK(paths_of(entries) == std::vector<std::string>{"opt", "opt/app", "opt/app/B", "opt/app/_x",
                                                      "opt/app/a", "opt/app/a/Y", "opt/app/a/z",
                                                      "opt/app/a-c", "opt/app/a.b", "opt/app/empty"});
  CHECK(stats.entries == entries.size());
  // Paths given to the filter are relative to the directory, with '/'.
  std::map<std::string, bool> seen(calls.begin(), calls.end());
  CHECK(seen.count("a/y") == 1);
  CHECK(seen["a/y"] == true);
  CHECK(seen["a"] == true);
  CHECK(seen["a/z"] == false);
  CHECK(seen.count("b.txt") == 1);
  // Below an excluded directory nothing is even looked at.
  CHECK(seen.count("a/y/f") == 0);
  CHECK(seen.count("a/y/g") == 0);
  for (const auto& [rel, dir] : calls) {
    CHECK(rel.rfind("opt", 0) == std::string::npos);
    CHECK(rel.rfind("./", 0) == std::string::npos);
    CHECK(rel.rfind("/", 0) == std::string::npos);
  }
}

TEST_CASE("xattrs are written only when asked", "[tar_writer]") {
  TempDir tmp;
  const fs::path src = tmp / "src";
  write_text(src / "lib.so", "ELF");
  write_text(src / "plain", "p");
  fs::create_directories(src / "dir");
  const char value[] = "v\0binary";
  if (::setxattr((src / "lib.so").c_str(), "user.dockless.test", value, sizeof value - 1, 0) != 0 ||
      ::setxattr((src / "dir").c_str(), "user.dockless.dir", "d", 1, 0) != 0) {
    WARN("this filesystem refuses user xattrs (" << std::strerror(errno) << "): skipped");
    return;
  }
  SECTION("not asked: no xattrs, no PAX header") {
    const std::string bytes = tar_of(src);
    for (const auto& e : read_tar(bytes)) CHECK(e.xattrs.empty());
    CHECK(bytes.find("user.dockless") == std::string::npos);
  }
  SECTION("asked: the xattrs of each file, with binary values") {
    TarOptions opt;
    opt.xattrs = true;
    opt.dest = "/opt";
    const std::string bytes = tar_of(src, opt);
    const auto entries = read_tar(bytes);
    const TarEntry& lib = find(entries, "opt/lib.so");
    REQUIRE(lib.xattrs.count("user.dockless.test") == 1);
    CHECK(lib.xattrs.at("user.dockless.test") == std::string(value, sizeof value - 1));
    CHECK(lib.data == "ELF");
    CHECK(find(entries, "opt/dir").xattrs.count("user.dockless.dir") == 1);
    CHECK(find(entries, "opt/plain").xattrs.count("user.dockless.test") == 0);
    CHECK(tar_of(src, opt) == bytes);
    for (const auto& e : entries) CHECK_FALSE(e.atime_set);
  }
}

// ---------------------------------------------------------------------------
// Errors

TEST_CASE("a missing directory or a failing sink gives an Error", "[tar_writer]") {
  TempDir tmp;
  StringSink sink;
  try {
    dockless::write_directory_tar(tmp / "missing", {}, sink);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains((tmp / "missing").string()));
  }
  write_text(tmp / "src" / "f", std::string(100000, 'x'));
  for (int fail_at : {0, 1, 3}) {
    FailingSink failing(fail_at);
    CHECK_THROWS_WITH(dockless::write_directory_tar(tmp / "src", {}, failing),
                      Catch::Matchers::Contains("disk full (test sink)"));
  }
}

// ---------------------------------------------------------------------------
// SOURCE_DATE_EPOCH

namespace {
// Sets (or unsets, with nullptr) SOURCE_DATE_EPOCH for one scope.
class ScopedEpoch {
 public:
  explicit ScopedEpoch(const char* value) {
    if (const char* old = std::getenv("SOURCE_DATE_EPOCH")) old_ = old;
    if (value) ::setenv("SOURCE_DATE_EPOCH", value, 1);
    else ::unsetenv("SOURCE_DATE_EPOCH");
  }
  ~ScopedEpoch() {
    if (old_) ::setenv("SOURCE_DATE_EPOCH", old_->c_str(), 1);
    else ::unsetenv("SOURCE_DATE_EPOCH");
  }
  ScopedEpoch(const ScopedEpoch&) = delete;
  ScopedEpoch& operator=(const ScopedEpoch&) = delete;

 private:
  std::optional<std::string> old_;
};
}  // namespace

TEST_CASE("mtime_clamp_from_environment reads SOURCE_DATE_EPOCH", "[tar_writer]") {
  {
    ScopedEpoch e(nullptr);
    CHECK(dockless::mtime_clamp_from_environment() == 315532800);
    CHECK(dockless::kDefaultMtimeClamp == 315532800);
  }
  {
    ScopedEpoch e("");
    CHECK(dockless::mtime_clamp_from_environment() == 315532800);
  }
  {
    ScopedEpoch e("1700000000");
    CHECK(dockless::mtime_clamp_from_environment() == 1700000000);
  }
  {
    ScopedEpoch e("0");
    CHECK(dockless::mtime_clamp_from_environment() == 0);
  }
  for (const char* bad : {"abc", "-5", "12abc", "1.5", " 5", "5 ", "+5", "0x10"}) {
    INFO("SOURCE_DATE_EPOCH=\"" << bad << "\"");
    ScopedEpoch e(bad);
    try {
      (void)dockless::mtime_clamp_from_environment();
      FAIL("accepted");
    } catch (const Error& err) {
      CHECK_THAT(err.what(), Catch::Matchers::Contains("SOURCE_DATE_EPOCH"));
      CHECK_THAT(err.what(), Catch::Matchers::Contains(bad));
    }
  }
  {
    // Too large for any time_t: an error, not an exception of another type.
    ScopedEpoch e("99999999999999999999999");
    CHECK_THROWS_AS(dockless::mtime_clamp_from_environment(), Error);
  }
}

// ---------------------------------------------------------------------------
// rewrite_tar

namespace {

struct SourceEntry {
  std::string name;
  unsigned type;
  std::string data;
  std::string link;  // symlink target, or hardlink target when hard
  bool hard = false;
  std::int64_t mtime = 2000000000;
  std::string uname = "alice";
};

// Writes a tar (gzip-compressed unless plain) as another tool would: "./"
// names, a root entry, user names, large uids, full PAX with atime/ctime.
void write_source_tar(const fs::path& file, const std::vector<SourceEntry>& items, bool gzip,
                      bool full_pax) {
  archive* a = archive_write_new();
  if (full_pax) archive_write_set_format_pax(a);
  else archive_write_set_format_gnutar(a);
  if (gzip) archive_write_add_filter_gzip(a);
  REQUIRE(archive_write_open_filename(a, file.c_str()) == ARCHIVE_OK);
  for (const auto& it : items) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, it.name.c_str());
    archive_entry_set_filetype(e, it.type);
    archive_entry_set_perm(e, it.type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_uid(e, 1000);
    archive_entry_set_gid(e, 1000);
    archive_entry_set_uname(e, it.uname.c_str());
    archive_entry_set_gname(e, "staff");
    archive_entry_set_mtime(e, it.mtime, 123456789);
    archive_entry_set_atime(e, it.mtime + 5, 1);
    archive_entry_set_ctime(e, it.mtime + 6, 2);
    if (it.type == AE_IFLNK) archive_entry_set_symlink(e, it.link.c_str());
    if (it.hard) archive_entry_set_hardlink(e, it.link.c_str());
    archive_entry_set_size(e, (it.type == AE_IFREG && !it.hard) ? static_cast<la_int64_t>(it.data.size()) : 0);
    REQUIRE(archive_write_header(a, e) == ARCHIVE_OK);
    if (!it.data.empty() && !it.hard)
      REQUIRE(archive_write_data(a, it.data.data(), it.data.size()) == static_cast<la_ssize_t>(it.data.size()));
    archive_entry_free(e);
  }
  REQUIRE(archive_write_close(a) == ARCHIVE_OK);
  archive_write_free(a);
}

std::vector<SourceEntry> source_items(std::int64_t mtime, const std::string& uname) {
  std::vector<SourceEntry> v = {
      {"./", AE_IFDIR, "", "", false, mtime, uname},
      {"./usr/", AE_IFDIR, "", "", false, mtime, uname},
      {"./usr/bin/", AE_IFDIR, "", "", false, mtime, uname},
      {"./usr/bin/tool", AE_IFREG, "#!/bin/sh\necho tool\n", "", false, mtime, uname},
      {"./usr/bin/tool-hl", AE_IFREG, "", "./usr/bin/tool", true, mtime, uname},
      {"./usr/bin/sym", AE_IFLNK, "", "tool", false, mtime, uname},
      {"./old", AE_IFREG, "old file", "", false, 1000, uname},
  };
  return v;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs rewrite_tar in a child process and returns its output; an Error in
// the child is rethrown here. rewrite_tar once crashed (SIGSEGV in
// archive_entry_copy_fflags_text(e, nullptr)) on every entry: the fork makes
// such a crash fail one case instead of ending the whole test run.
std::string rewrite(const fs::path& file, const TarOptions& opt = {}) {
  TempDir out;
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE}) ::signal(sig, SIG_DFL);
    int code = 0;
    try {
      StringSink sink;
      dockless::rewrite_tar(file, opt, sink);
      write_text(out / "tar", sink.bytes);
      if (sink.finishes != 1) code = 3;
    } catch (const Error& e) {
      write_text(out / "error", e.what());
      code = 1;
    } catch (...) {
      code = 2;
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status)) FAIL("rewrite_tar crashed with signal " << WTERMSIG(status));
  REQUIRE(WIFEXITED(status));
  const int code = WEXITSTATUS(status);
  if (code == 1) throw Error(slurp(out / "error"));
  if (code == 2) FAIL("rewrite_tar threw something other than dockless::Error");
  if (code == 3) FAIL("rewrite_tar did not call finish() exactly once");
  REQUIRE(code == 0);
  return slurp(out / "tar");
}

}  // namespace

TEST_CASE("rewrite_tar normalises names, owners and times of a gzip tar", "[tar_writer]") {
  TempDir tmp;
  const fs::path src = tmp / "in.tar.gz";
  write_source_tar(src, source_items(2000000000, "alice"), true, false);
  const std::string bytes = rewrite(src);
  const auto entries = read_tar(bytes);
  CHECK(paths_of(entries) ==
        std::vector<std::string>{"usr", "usr/bin", "usr/bin/tool", "usr/bin/tool-hl", "usr/bin/sym", "old"});
  for (const auto& e : entries) {
    INFO(e.name);
    CHECK(e.name.rfind("./", 0) == std::string::npos);
    CHECK(e.uid == 0);
    CHECK(e.gid == 0);
    CHECK(e.uname.empty());
    CHECK(e.gname.empty());
    CHECK(e.mtime_nsec == 0);
    CHECK_FALSE(e.atime_set);
    CHECK_FALSE(e.ctime_set);
  }
  CHECK(find(entries, "usr/bin/tool").mtime == 315532800);
  CHECK(find(entries, "old").mtime == 1000);
  CHECK(find(entries, "usr/bin/tool").data == "#!/bin/sh\necho tool\n");
  CHECK(find(entries, "usr/bin/tool-hl").hardlink == "usr/bin/tool");
  CHECK(find(entries, "usr/bin/sym").symlink == "tool");
  CHECK(bytes.find("alice") == std::string::npos);
  CHECK(bytes.find("staff") == std::string::npos);
  // Deterministic: the same input twice gives the same bytes.
  CHECK(rewrite(src) == bytes);
}

TEST_CASE("rewrite_tar output does not depend on what the normalisation removes",
          "[tar_writer]") {
  TempDir tmp;
  // Two inputs that differ only in owner names, mtimes newer than the clamp,
  // compression and format (gnutar vs full PAX with atime/ctime).
  write_source_tar(tmp / "a.tar.gz", source_items(2000000000, "alice"), true, false);
  write_source_tar(tmp / "b.tar", source_items(1500000000, "bob"), false, true);
  const std::string a = rewrite(tmp / "a.tar.gz");
  const std::string b = rewrite(tmp / "b.tar");
  CHECK(a == b);
  CHECK(b.find("atime=") == std::string::npos);
  CHECK(b.find("ctime=") == std::string::npos);
}

TEST_CASE("rewrite_tar with custom owners and clamp", "[tar_writer]") {
  TempDir tmp;
  write_source_tar(tmp / "in.tar.gz", source_items(2000000000, "alice"), true, false);
  TarOptions opt;
  opt.uid = std::nullopt;
  opt.gid = 50;
  opt.mtime_clamp = 1500;
  const auto entries = read_tar(rewrite(tmp / "in.tar.gz", opt));
  for (const auto& e : entries) {
    INFO(e.name);
    CHECK(e.uid == 1000);
    CHECK(e.gid == 50);
    CHECK(e.uname.empty());
  }
  CHECK(find(entries, "usr/bin/tool").mtime == 1500);
  CHECK(find(entries, "old").mtime == 1000);
}

TEST_CASE("rewrite_tar under a destination prefixes names and link targets", "[tar_writer]") {
  TempDir tmp;
  write_source_tar(tmp / "in.tar.gz", source_items(2000000000, "alice"), true, false);
  TarOptions opt;
  opt.dest = "/opt/tools";
  const auto entries = read_tar(rewrite(tmp / "in.tar.gz", opt));
  CHECK(find(entries, "opt/tools/usr/bin/tool").data == "#!/bin/sh\necho tool\n");
  CHECK(find(entries, "opt/tools/usr/bin/tool-hl").hardlink == "opt/tools/usr/bin/tool");
  // Symlink targets are the link's content, not a path in the tar.
  CHECK(find(entries, "opt/tools/usr/bin/sym").symlink == "tool");
}

TEST_CASE("rewrite_tar under a destination emits the destination's parents first",
          "[tar_writer]") {
  // TarOptions::dest: "The parents of a non-root destination are emitted as
  // directories." (NOTES: reproducible tars have explicit parent dirs.)
  // Without them the runtime invents opt/ and opt/tools/ with its own modes.
  TempDir tmp;
  write_source_tar(tmp / "in.tar.gz", source_items(2000000000, "alice"), true, false);
  TarOptions opt;
  opt.dest = "/opt/tools";
  const auto entries = read_tar(rewrite(tmp / "in.tar.gz", opt));
  REQUIRE(entries.size() >= 2);
  CHECK(entries[0].path == "opt");
  CHECK(entries[0].type == AE_IFDIR);
  CHECK(entries[1].path == "opt/tools");
  CHECK(entries[1].type == AE_IFDIR);
  for (int i = 0; i < 2; ++i) {
    CHECK(entries[static_cast<std::size_t>(i)].perm == 0755);
    CHECK(entries[static_cast<std::size_t>(i)].uid == 0);
    CHECK(entries[static_cast<std::size_t>(i)].mtime == dockless::kDefaultMtimeClamp);
  }
  // Each once: the source's own root entry ("./") is not added again.
  CHECK(std::count_if(entries.begin(), entries.end(), [](const TarEntry& e) { return e.path == "opt/tools"; }) == 1);
  check_parents_first(entries);
}

TEST_CASE("rewrite_tar of a file that is not a tar gives an Error naming it", "[tar_writer]") {
  TempDir tmp;
  write_text(tmp / "junk.tar", std::string(2000, 'j'));
  try {
    (void)rewrite(tmp / "junk.tar");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains("junk.tar"));
  }
  CHECK_THROWS_AS(rewrite(tmp / "absent.tar"), Error);
}

namespace {

/// Rewrites `path` with `content`, then puts its mtime back: what an editor
/// that keeps timestamps, or a checkout of the same size, leaves behind.
void rewrite_keeping_mtime(const fs::path& path, const std::string& content) {
  struct stat before;
  REQUIRE(::stat(path.c_str(), &before) == 0);
  write_text(path, content);
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

}  // namespace

TEST_CASE("stat_directory_tree changes with what the tar would hold, and only with that", "[tar_writer]") {
  TempDir tmp;
  write_text(tmp / "src/a.py", "print('a')\n");
  write_text(tmp / "src/b.py", "print('b')\n");
  write_text(tmp / "build/out.o", "object");
  ::symlink("a.py", (tmp / "src/link").c_str());
  TarOptions opt;
  opt.dest = "/opt/app";
  opt.include = [](const std::string& rel, bool) { return rel != "build" && rel.rfind("build/", 0) != 0; };
  const dockless::TreeStat first = dockless::stat_directory_tree(tmp.path(), opt);

  SECTION("the same tree gives the same digest, and counts the entries the tar writes") {
    CHECK(dockless::stat_directory_tree(tmp.path(), opt).digest == first.digest);
    TarStats stats;
    (void)tar_of(tmp.path(), opt, &stats);
    CHECK(first.entries + 1 == stats.entries);  // the tar also writes the parent "opt"
    struct stat st;
    REQUIRE(::lstat((tmp / "src/b.py").c_str(), &st) == 0);
    CHECK(first.newest_change_ns >= std::int64_t(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec);
  }
  SECTION("a file rewritten with the same size and mtime is seen (its ctime moved)") {
    ::usleep(20000);  // past the file system's timestamp tick
    rewrite_keeping_mtime(tmp / "src/a.py", "print('A')\n");
    CHECK(dockless::stat_directory_tree(tmp.path(), opt).digest != first.digest);
  }
  SECTION("a new file, a removed one and a mode change are seen") {
    ::usleep(20000);
    write_text(tmp / "src/c.py", "");
    const auto added = dockless::stat_directory_tree(tmp.path(), opt).digest;
    CHECK(added != first.digest);
    fs::remove(tmp / "src/c.py");
    fs::permissions(tmp / "src/b.py", fs::perms::owner_exec, fs::perm_options::add);
    const auto chmodded = dockless::stat_directory_tree(tmp.path(), opt).digest;
    CHECK(chmodded != first.digest);
    CHECK(chmodded != added);
  }
  SECTION("what the filter leaves out does not count") {
    ::usleep(20000);
    write_text(tmp / "build/out.o", "another object");
    write_text(tmp / "build/new.o", "");
    CHECK(dockless::stat_directory_tree(tmp.path(), opt).digest == first.digest);
  }
  SECTION("another destination is another tree") {
    TarOptions elsewhere = opt;
    elsewhere.dest = "/srv";
    CHECK(dockless::stat_directory_tree(tmp.path(), elsewhere).digest != first.digest);
  }
}

TEST_CASE("a tree written from its stat walk's entries is the tar a fresh walk writes", "[tar_writer]") {
  TempDir tmp;
  const fs::path src = tmp / "src";
  make_tree(src);
  fs::create_symlink("a/z", src / "s");
  fs::create_hard_link(src / "b.txt", src / "hl");
  write_text(src / "skip" / "deep" / "keep.py", "kept below an excluded directory\n");
  write_text(src / "skip" / "other.log", "left out\n");
  write_text(src / "gone" / "x.log", "a directory with nothing written\n");
  TarOptions opt;
  opt.dest = "/opt/app";
  // Everything under skip/ and gone/ is left out, except skip/deep/keep.py.
  opt.include = [](const std::string& rel, bool) {
    if (rel == "skip/deep/keep.py") return true;
    return rel.rfind("skip", 0) != 0 && rel.rfind("gone", 0) != 0;
  };
  opt.descend_excluded = [](const std::string& rel) { return rel == "skip" || rel == "skip/deep" || rel == "gone"; };

  dockless::WalkedTree walked;
  const dockless::TreeStat stat = dockless::stat_directory_tree(src, opt, &walked);
  CHECK(stat.digest == dockless::stat_directory_tree(src, opt).digest);  // listing changes nothing
  CHECK(walked.entries.size() == stat.entries);
  StringSink sink;
  const TarStats from_walk = dockless::write_walked_tree(src, walked, opt, sink);
  CHECK(sink.finishes == 1);
  TarStats fresh_stats;
  const std::string fresh = tar_of(src, opt, &fresh_stats);
  CHECK(sink.bytes == fresh);
  CHECK(from_walk.entries == fresh_stats.entries);
  CHECK(from_walk.file_bytes == fresh_stats.file_bytes);
  const auto names = paths_of(read_tar(sink.bytes));
  CHECK(std::count(names.begin(), names.end(), "opt/app/skip/deep/keep.py") == 1);
  CHECK(std::count(names.begin(), names.end(), "opt/app/skip/other.log") == 0);
  CHECK(std::count(names.begin(), names.end(), "opt/app/gone") == 0);

  SECTION("the tar from any entry on is the whole tar's bytes from that entry's header") {
    std::vector<std::uint64_t> offsets;
    StringSink whole;
    dockless::write_walked_tree(src, walked, opt, whole, dockless::WalkedTreeWrite{std::nullopt, &offsets});
    CHECK(whole.bytes == fresh);
    REQUIRE(offsets.size() == walked.entries.size() + 1);
    CHECK(offsets.front() == 512);  // after the destination's parent, opt/
    CHECK(offsets.back() == fresh.size() - 1024);  // the end-of-archive blocks
    for (std::size_t k = 0; k < walked.entries.size(); ++k) {
      INFO("from entry " << k << ", " << walked.entries[k].tar_name);
      std::vector<std::uint64_t> rest;
      StringSink part;
      dockless::write_walked_tree(src, walked, opt, part, dockless::WalkedTreeWrite{k, &rest});
      CHECK(part.bytes == fresh.substr(offsets[k]));
      REQUIRE(rest.size() == offsets.size() - k);
      for (std::size_t i = 0; i < rest.size(); ++i) CHECK(rest[i] + offsets[k] == offsets[k + i]);
    }
    // The hardlink (hl, to b.txt) stays a hardlink when b.txt is before the start.
    std::size_t hl = 0;
    while (walked.entries[hl].tar_name != "opt/app/hl") ++hl;
    StringSink part;
    dockless::write_walked_tree(src, walked, opt, part, dockless::WalkedTreeWrite{hl, nullptr});
    const auto from_hl = read_tar(part.bytes);
    REQUIRE(!from_hl.empty());
    CHECK(from_hl.front().path == "opt/app/hl");
    CHECK(from_hl.front().hardlink == "opt/app/b.txt");
  }
  SECTION("a directory replaced since the walk is an error, not a tar of something else") {
    fs::rename(src / "a", tmp / "a-old");
    fs::create_directories(src / "a" / "y");
    write_text(src / "a" / "z", "zed\n");
    StringSink again;
    CHECK_THROWS_WITH(dockless::write_walked_tree(src, walked, opt, again),
                      Catch::Contains("a") && Catch::Contains("replaced while the tree was read"));
  }
  SECTION("a file that shrank since the walk is an error") {
    write_text(src / "b.txt", "b");
    StringSink again;
    CHECK_THROWS_WITH(dockless::write_walked_tree(src, walked, opt, again), Catch::Contains("shrank"));
  }
  SECTION("a directory swapped for a symlink since the walk is not followed") {
    fs::rename(src / "a", tmp / "a-old");
    fs::create_directory_symlink(tmp / "a-old", src / "a");
    StringSink again;
    CHECK_THROWS_AS(dockless::write_walked_tree(src, walked, opt, again), Error);
  }
}
