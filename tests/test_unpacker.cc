// Layer unpacker: OCI semantics (modes, times, links, whiteouts, stacking)
// and hostile layers. Tars are written here with libarchive so any name can be
// used; every hostile case snapshots the scratch tree around the target and
// checks that nothing outside the target changed.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <zlib.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <memory>
#include <thread>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "layers/unpacker.h"
#include "oci/blob_store.h"
#include "base/error.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using dockless::Error;
using dockless::UnpackOptions;
using dockless::UnpackStats;
using dockless::unpack_layer;
using dockless::unpack_gzip_layer_as_written;
using dockless::test::TempDir;
using dockless::test::write_text;

namespace {

constexpr time_t kTime = 1600000000;

struct Entry {
  std::string name{};
  mode_t type = AE_IFREG;
  std::string data{};
  std::string link{};  // symlink or hardlink target
  bool hardlink = false;
  mode_t mode = 0644;
  time_t mtime = kTime;
  long nsec = 0;
  la_int64_t uid = 0;
  la_int64_t gid = 0;
  dev_t rdev = 0;
  std::vector<std::pair<std::string, std::string>> xattrs{};
};

// Builds a layer tar entry by entry, names written exactly as given.
class Tar {
 public:
  Tar& add(Entry e) {
    entries_.push_back(std::move(e));
    return *this;
  }
  Tar& file(const std::string& name, const std::string& data, mode_t mode = 0644,
            time_t mtime = kTime) {
    return add({.name = name, .data = data, .mode = mode, .mtime = mtime});
  }
  Tar& dir(const std::string& name, mode_t mode = 0755, time_t mtime = kTime) {
    return add({.name = name, .type = AE_IFDIR, .mode = mode, .mtime = mtime});
  }
  Tar& symlink(const std::string& name, const std::string& target, time_t mtime = kTime) {
    return add({.name = name, .type = AE_IFLNK, .link = target, .mode = 0777, .mtime = mtime});
  }
  Tar& hardlink(const std::string& name, const std::string& target) {
    return add({.name = name, .link = target, .hardlink = true});
  }

  // filter: "none", "gzip" or "zstd".
  void write(const fs::path& path, const std::string& filter = "none") const {
    archive* a = archive_write_new();
    REQUIRE(archive_write_set_format_pax_restricted(a) == ARCHIVE_OK);
    if (filter == "gzip") REQUIRE(archive_write_add_filter_gzip(a) == ARCHIVE_OK);
    if (filter == "zstd") REQUIRE(archive_write_add_filter_zstd(a) >= ARCHIVE_WARN);
    REQUIRE(archive_write_open_filename(a, path.c_str()) == ARCHIVE_OK);
    for (const Entry& e : entries_) {
      archive_entry* ae = archive_entry_new();
      archive_entry_copy_pathname(ae, e.name.c_str());
      archive_entry_set_filetype(ae, e.type);
      archive_entry_set_perm(ae, e.mode);
      archive_entry_set_mtime(ae, e.mtime, e.nsec);
      archive_entry_set_uid(ae, e.uid);
      archive_entry_set_gid(ae, e.gid);
      if (e.type == AE_IFCHR || e.type == AE_IFBLK) archive_entry_set_rdev(ae, e.rdev);
      for (const auto& [k, v] : e.xattrs)
        archive_entry_xattr_add_entry(ae, k.c_str(), v.data(), v.size());
      if (e.hardlink) {
        archive_entry_copy_hardlink(ae, e.link.c_str());
        archive_entry_set_size(ae, 0);
      } else if (e.type == AE_IFLNK) {
        archive_entry_copy_symlink(ae, e.link.c_str());
        archive_entry_set_size(ae, 0);
      } else {
        archive_entry_set_size(ae, static_cast<la_int64_t>(e.data.size()));
      }
      INFO(archive_error_string(a));
      REQUIRE(archive_write_header(a, ae) >= ARCHIVE_WARN);
      if (!e.hardlink && e.type == AE_IFREG && !e.data.empty())
        REQUIRE(archive_write_data(a, e.data.data(), e.data.size()) ==
                static_cast<la_ssize_t>(e.data.size()));
      archive_entry_free(ae);
    }
    REQUIRE(archive_write_close(a) == ARCHIVE_OK);
    archive_write_free(a);
  }

 private:
  std::vector<Entry> entries_;
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct stat lstat_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st;
}

bool exists_nofollow(const fs::path& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

// Every name under dir (relative, "" for dir itself) with type, mode, size,
// mtime, link count and content: any write, even one undone, shows up here.
// `skip` (relative) is neither recorded nor entered.
void snapshot_into(const fs::path& base, const std::string& rel, const std::string& skip,
                   std::map<std::string, std::string>& out) {
  if (rel == skip) return;
  fs::path p = rel.empty() ? base : base / rel;
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  std::ostringstream desc;
  desc << std::oct << st.st_mode << std::dec << " n" << st.st_nlink << " s" << st.st_size << " m"
       << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec << " u" << st.st_uid << " g"
       << st.st_gid;
  if (S_ISREG(st.st_mode)) desc << " data:" << read_text(p);
  if (S_ISLNK(st.st_mode)) desc << " -> " << fs::read_symlink(p).string();
  out[rel] = desc.str();
  if (S_ISDIR(st.st_mode)) {
    for (const auto& child : fs::directory_iterator(p))
      snapshot_into(base, (rel.empty() ? "" : rel + "/") + child.path().filename().string(), skip,
                    out);
  }
}

// A scratch tree: root/ (the unpack target) next to outside/ holding a
// sentinel, and layers/ for the tar files.
struct Scratch {
  TempDir tmp;
  fs::path root = tmp / "root";
  fs::path outside = tmp / "outside";
  fs::path layers = tmp / "layers";
  int n = 0;

  Scratch() {
    fs::create_directories(root);
    fs::create_directories(layers);
    write_text(outside / "sentinel", "precious");
    write_text(outside / "sub" / "deep", "also precious");
  }

  fs::path write(const Tar& tar, const std::string& filter = "none") {
    fs::path p = layers / ("layer" + std::to_string(n++) + ".tar");
    tar.write(p, filter);
    return p;
  }

  // Everything in the scratch tree except the target.
  std::map<std::string, std::string> outside_view() {
    std::map<std::string, std::string> view;
    snapshot_into(tmp.path(), "", "root", view);
    return view;
  }

  // Unpacks tar and checks that nothing outside root changed. Returns the
  // error message, or "" when the layer was applied.
  std::string unpack_confined(const Tar& tar, const UnpackOptions& options = UnpackOptions()) {
    fs::path layer = write(tar);
    auto before = outside_view();
    std::string error;
    try {
      unpack_layer(layer, root, options);
    } catch (const Error& e) {
      error = e.what();
    }
    auto after = outside_view();
    CHECK(after == before);
    CHECK(read_text(outside / "sentinel") == "precious");
    CHECK(lstat_of(outside / "sentinel").st_nlink == 1);
    return error;
  }
};

}  // namespace

// ---------------------------------------------------------------------------
// Functional

TEST_CASE("unpacker: files, dirs, symlinks and hardlinks keep modes and mtimes", "[unpacker]") {
  Scratch s;
  Tar tar;
  tar.dir("d", 0750, kTime + 1)
      .file("d/f", "hello", 0640, kTime + 2)
      .file("d/exec", "#!/bin/sh\n", 0755, kTime + 3)
      .file("d/ro", "read only", 0444, kTime + 4)
      .file("d/suid", "s", 04755, kTime + 5)
      .symlink("d/link", "f", kTime + 6)
      .symlink("abs", "/d/f", kTime + 7)
      .hardlink("d/hl", "d/f")
      .dir("ro_dir", 0555, kTime + 8)
      .file("ro_dir/child", "c", 0600, kTime + 9)
      .file("implicit/parent/file", "x")
      .add({.name = "nsec", .data = "n", .mtime = kTime, .nsec = 123456789});
  fs::path layer = s.write(tar);
  UnpackStats stats = unpack_layer(layer, s.root);
  CHECK(stats.entries == 12);
  CHECK(stats.whiteouts == 0);
  CHECK(stats.skipped == 0);

  const fs::path r = s.root;
  CHECK(lstat_of(r / "d/f").st_atim.tv_sec == kTime + 2);  // before any read
  CHECK(read_text(r / "d/f") == "hello");
  CHECK((lstat_of(r / "d").st_mode & 07777) == 0750);
  CHECK(lstat_of(r / "d").st_mtim.tv_sec == kTime + 1);  // set after its children
  CHECK((lstat_of(r / "d/f").st_mode & 07777) == 0640);
  CHECK(lstat_of(r / "d/f").st_mtim.tv_sec == kTime + 2);
  CHECK((lstat_of(r / "d/exec").st_mode & 07777) == 0755);
  CHECK((lstat_of(r / "d/ro").st_mode & 07777) == 0444);
  CHECK((lstat_of(r / "d/suid").st_mode & 07777) == (::geteuid() == 0 ? 04755 : 0755));
  CHECK(S_ISLNK(lstat_of(r / "d/link").st_mode));
  CHECK(fs::read_symlink(r / "d/link") == "f");
  CHECK(lstat_of(r / "d/link").st_mtim.tv_sec == kTime + 6);
  CHECK(fs::read_symlink(r / "abs") == "/d/f");
  CHECK(lstat_of(r / "d/hl").st_ino == lstat_of(r / "d/f").st_ino);
  CHECK(lstat_of(r / "d/f").st_nlink == 2);
  CHECK((lstat_of(r / "ro_dir").st_mode & 07777) == 0555);
  CHECK(lstat_of(r / "ro_dir").st_mtim.tv_sec == kTime + 8);
  CHECK(read_text(r / "ro_dir/child") == "c");
  CHECK((lstat_of(r / "implicit").st_mode & 07777) == 0755);
  CHECK((lstat_of(r / "implicit/parent").st_mode & 07777) == 0755);
  CHECK(read_text(r / "implicit/parent/file") == "x");
  // pax_restricted carries sub-second times only when they are set.
  CHECK(lstat_of(r / "nsec").st_mtim.tv_sec == kTime);
}

TEST_CASE("unpacker: gzip and zstd layers are detected from their bytes", "[unpacker]") {
  for (const std::string filter : {"none", "gzip", "zstd"}) {
    DYNAMIC_SECTION(filter) {
      Scratch s;
      std::string big(300000, 'z');
      Tar tar;
      tar.dir("etc").file("etc/os-release", "ID=debian\n").file("big", big);
      fs::path layer = s.layers / ("layer.tar." + filter);
      tar.write(layer, filter);
      UnpackStats stats = unpack_layer(layer, s.root);
      CHECK(stats.entries == 3);
      CHECK(read_text(s.root / "etc/os-release") == "ID=debian\n");
      CHECK(read_text(s.root / "big") == big);
    }
  }
}

namespace {

/// One gzip member of `data` (zlib, as any other tool would write it).
std::string gzip_member(std::string_view data) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

/// `n` bytes that barely compress (a linear congruential stream).
std::string noise(std::size_t n, std::uint32_t seed) {
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>((seed = seed * 1103515245u + 12345u) >> 24);
  return out;
}

/// The bytes of a tar holding "big" and "d/small" (= "small").
std::string big_and_small_tar(const Scratch& s, const std::string& big) {
  Tar tar;
  tar.file("big", big).dir("d").file("d/small", "small");
  fs::path plain = s.layers / "plain.tar";
  tar.write(plain);
  return read_text(plain);
}

}  // namespace

TEST_CASE("unpacker: gzip layers of many MiB, of several members, with trailing bytes", "[unpacker]") {
  Scratch s;
  // Spans several of the reader's 1 MiB chunks, incompressible enough that
  // the compressed stream does too.
  const std::string big = noise(5 * 1024 * 1024 + 123, 12345);
  const std::string bytes = big_and_small_tar(s, big);
  const std::size_t half = bytes.size() / 2;
  auto check_tree = [&] {
    CHECK(read_text(s.root / "big") == big);
    CHECK(read_text(s.root / "d" / "small") == "small");
  };
  SECTION("one member") {
    fs::path p = s.layers / "one.tar.gz";
    write_text(p, gzip_member(bytes));
    unpack_layer(p, s.root);
    check_tree();
  }
  SECTION("two members, split inside a file's data") {
    fs::path p = s.layers / "two.tar.gz";
    write_text(p, gzip_member(std::string_view(bytes).substr(0, half)) +
                      gzip_member(std::string_view(bytes).substr(half)));
    unpack_layer(p, s.root);
    check_tree();
  }
  SECTION("bytes after the last member that start no other are ignored") {
    fs::path p = s.layers / "trailing.tar.gz";
    write_text(p, gzip_member(bytes) + std::string(1000, '\0') + "junk");
    unpack_layer(p, s.root);
    check_tree();
  }
}

TEST_CASE("unpacker: a gzip layer is applied as it is downloaded, and a download that fails stops it",
          "[unpacker]") {
  Scratch s;
  const std::string big = noise(3 * 1024 * 1024 + 7, 777);
  const std::string gz = gzip_member(big_and_small_tar(s, big));
  dockless::BlobStore store(s.layers / "store");
  auto file = std::make_shared<dockless::GrowingFile>();
  // The "download": the blob lands in the store in pieces while the unpacker reads it.
  auto download = [&](std::size_t stop_at) {
    dockless::BlobWriter writer(store);
    writer.follow(file);
    for (std::size_t at = 0; at < std::min(stop_at, gz.size()); at += 65536) {
      writer.write(gz.data() + at, std::min<std::size_t>(65536, gz.size() - at));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (stop_at >= gz.size()) writer.commit();
  };  // a writer destroyed uncommitted abandons its follower
  SECTION("whole: the same tree as from the finished file") {
    std::thread writer(download, gz.size());
    unpack_gzip_layer_as_written(file, "layer-x", s.root);
    writer.join();
    CHECK(read_text(s.root / "big") == big);
    CHECK(read_text(s.root / "d" / "small") == "small");
  }
  SECTION("the download stops half-way: one error naming the layer, no hang") {
    std::thread writer(download, gz.size() / 2);
    CHECK_THROWS_WITH(unpack_gzip_layer_as_written(file, "layer-x", s.root),
                      Catch::Contains("layer-x") && Catch::Contains("abandoned"));
    writer.join();
  }
}

TEST_CASE("unpacker: non-ASCII names are kept as UTF-8 bytes", "[unpacker]") {
  Scratch s;
  Tar tar;
  tar.file("caf\xc3\xa9/na\xc3\xafve.txt", "u");
  unpack_layer(s.write(tar), s.root);
  CHECK(read_text(s.root / "caf\xc3\xa9" / "na\xc3\xafve.txt") == "u");
}

TEST_CASE("unpacker: the root entry sets the root's mode only", "[unpacker]") {
  Scratch s;
  Tar tar;
  tar.dir("./", 0751).file("f", "x");
  unpack_layer(s.write(tar), s.root);
  CHECK((lstat_of(s.root).st_mode & 07777) == 0751);
  CHECK(read_text(s.root / "f") == "x");
}

TEST_CASE("unpacker: whiteout removes a file", "[unpacker]") {
  Scratch s;
  Tar base;
  base.dir("a").file("a/f", "f").file("a/g", "g");
  unpack_layer(s.write(base), s.root);
  Tar upper;
  upper.file("a/.wh.f", "").file("a/.wh.missing", "").file("nodir/.wh.x", "");
  UnpackStats stats = unpack_layer(s.write(upper), s.root);
  CHECK(stats.whiteouts == 3);
  CHECK(stats.entries == 0);
  CHECK_FALSE(exists_nofollow(s.root / "a/f"));
  CHECK(read_text(s.root / "a/g") == "g");
  CHECK_FALSE(exists_nofollow(s.root / "a/.wh.f"));
  CHECK_FALSE(exists_nofollow(s.root / "nodir"));  // nothing to hide, nothing made
}

TEST_CASE("unpacker: whiteout removes a directory tree, read-only parts included",
          "[unpacker]") {
  Scratch s;
  Tar base;
  base.dir("d")
      .dir("d/sub")
      .file("d/sub/x", "x")
      .dir("d/ro", 0555)
      .file("d/ro/y", "y", 0444)
      .dir("d/locked", 0)
      .symlink("d/out", s.outside.string())
      .file("keep", "k");
  unpack_layer(s.write(base), s.root);
  Tar upper;
  upper.file(".wh.d", "");
  CHECK(s.unpack_confined(upper).empty());
  CHECK_FALSE(exists_nofollow(s.root / "d"));
  CHECK(read_text(s.root / "keep") == "k");
}

TEST_CASE("unpacker: a whiteout in a layer does not hide that layer's own entries",
          "[unpacker]") {
  Scratch s;
  Tar base;
  base.dir("d").file("d/old", "old");
  unpack_layer(s.write(base), s.root);
  Tar tar;
  tar.file("f", "mine").file(".wh.f", "").file("d/new", "new").file(".wh.d", "");
  unpack_layer(s.write(tar), s.root);
  CHECK(read_text(s.root / "f") == "mine");
  CHECK(read_text(s.root / "d/new") == "new");
  CHECK_FALSE(exists_nofollow(s.root / "d/old"));
}

TEST_CASE("unpacker: opaque directory keeps this layer's entries in either order",
          "[unpacker]") {
  for (bool marker_first : {true, false}) {
    DYNAMIC_SECTION("marker " << (marker_first ? "before" : "after") << " the new entries") {
      Scratch s;
      Tar base;
      base.dir("o")
          .file("o/old", "old")
          .dir("o/sub")
          .file("o/sub/oldx", "oldx")
          .dir("o/gone")
          .file("o/gone/y", "y")
          .symlink("o/out", s.outside.string())
          .file("sibling", "stays");
      unpack_layer(s.write(base), s.root);

      Tar upper;
      upper.dir("o", 0700);
      if (marker_first) upper.file("o/.wh..wh..opq", "");
      upper.file("o/new", "new").file("o/sub/newx", "newx");
      if (!marker_first) upper.file("o/.wh..wh..opq", "");
      std::string err = s.unpack_confined(upper);
      CHECK(err.empty());

      CHECK(read_text(s.root / "o/new") == "new");
      CHECK(read_text(s.root / "o/sub/newx") == "newx");
      CHECK_FALSE(exists_nofollow(s.root / "o/old"));
      CHECK_FALSE(exists_nofollow(s.root / "o/sub/oldx"));
      CHECK_FALSE(exists_nofollow(s.root / "o/gone"));
      CHECK_FALSE(exists_nofollow(s.root / "o/out"));
      CHECK_FALSE(exists_nofollow(s.root / "o/.wh..wh..opq"));
      CHECK((lstat_of(s.root / "o").st_mode & 07777) == 0700);
      CHECK(read_text(s.root / "sibling") == "stays");
    }
  }
}

TEST_CASE("unpacker: a second layer stacks on the first", "[unpacker]") {
  Scratch s;
  Tar base;
  base.dir("etc", 0755)
      .file("etc/conf", "v1")
      .file("etc/keep", "keep")
      .file("becomes_dir", "file")
      .dir("becomes_file")
      .file("becomes_file/child", "c")
      .symlink("becomes_regular", "etc/conf")
      .dir("usr")
      .dir("usr/lib")
      .symlink("lib", "usr/lib")  // usr-merge
      .dir("ro", 0555)
      .file("ro/a", "a");
  unpack_layer(s.write(base), s.root);

  Tar upper;
  upper.dir("etc", 0700, kTime + 50)
      .file("etc/conf", "v2", 0600)
      .dir("becomes_dir")
      .file("becomes_dir/x", "x")
      .file("becomes_file", "now a file")
      .file("becomes_regular", "regular")
      .file("lib/libfoo.so", "elf")  // through the usr-merge symlink
      .file("ro/b", "b");
  CHECK(s.unpack_confined(upper).empty());

  const fs::path r = s.root;
  CHECK(read_text(r / "etc/conf") == "v2");
  CHECK((lstat_of(r / "etc/conf").st_mode & 07777) == 0600);
  CHECK(read_text(r / "etc/keep") == "keep");  // directory over directory keeps children
  CHECK((lstat_of(r / "etc").st_mode & 07777) == 0700);
  CHECK(lstat_of(r / "etc").st_mtim.tv_sec == kTime + 50);
  CHECK(read_text(r / "becomes_dir/x") == "x");
  CHECK(read_text(r / "becomes_file") == "now a file");
  CHECK(S_ISREG(lstat_of(r / "becomes_regular").st_mode));
  CHECK(read_text(r / "etc/conf") == "v2");  // not written through the old symlink
  CHECK(S_ISLNK(lstat_of(r / "lib").st_mode));
  CHECK(read_text(r / "usr/lib/libfoo.so") == "elf");
  CHECK(read_text(r / "ro/b") == "b");
  CHECK((lstat_of(r / "ro").st_mode & 07777) == 0555);  // read-only mode restored
}

TEST_CASE("unpacker: an entry replaced later in the same layer", "[unpacker]") {
  Scratch s;
  Tar tar;
  tar.dir("g", 0700)
      .dir("g/sub", 0711)
      .dir("g-x", 0751)
      .file("g", "now a file")  // drops the pending modes of g and g/sub
      .dir("g", 0750)
      .file("g/sub/f", "f")  // g/sub is now an implicit parent: 0755
      .dir("h", 0700)
      .symlink("h", "g-x")
      .file("k", "first")
      .file("k", "second");
  unpack_layer(s.write(tar), s.root);
  CHECK((lstat_of(s.root / "g").st_mode & 07777) == 0750);
  CHECK((lstat_of(s.root / "g/sub").st_mode & 07777) == 0755);
  CHECK(read_text(s.root / "g/sub/f") == "f");
  CHECK(S_ISLNK(lstat_of(s.root / "h").st_mode));
  CHECK((lstat_of(s.root / "g-x").st_mode & 07777) == 0751);  // not given h's 0700
  CHECK(read_text(s.root / "k") == "second");
}

TEST_CASE("unpacker: ownership follows the options", "[unpacker]") {
  Scratch s;
  Tar tar;
  tar.add({.name = "d", .type = AE_IFDIR, .mode = 0755, .uid = 1234, .gid = 5678})
      .add({.name = "d/f", .data = "x", .uid = 1234, .gid = 5678})
      .add({.name = "d/l", .type = AE_IFLNK, .link = "f", .uid = 1234, .gid = 5678});
  fs::path layer = s.write(tar);
  UnpackOptions defaults;
  CHECK(defaults.preserve_ownership == (::geteuid() == 0));
  CHECK(defaults.create_devices == (::geteuid() == 0));

  UnpackOptions mine;
  mine.preserve_ownership = false;
  unpack_layer(layer, s.root, mine);
  CHECK(lstat_of(s.root / "d/f").st_uid == ::geteuid());

  if (::geteuid() == 0) {
    TempDir other;
    UnpackOptions keep;
    keep.preserve_ownership = true;
    unpack_layer(layer, other.path(), keep);
    for (const char* name : {"d", "d/f", "d/l"}) {
      INFO(name);
      CHECK(lstat_of(other / name).st_uid == 1234);
      CHECK(lstat_of(other / name).st_gid == 5678);
    }
  }
}

TEST_CASE("unpacker: device nodes and fifos are skipped unless asked for", "[unpacker]") {
  Tar tar;
  tar.add({.name = "dev/null", .type = AE_IFCHR, .mode = 0666, .rdev = makedev(1, 3)})
      .add({.name = "fifo", .type = AE_IFIFO, .mode = 0640})
      .hardlink("fifo2", "fifo")
      .file("regular", "r");
  SECTION("skipped") {
    Scratch s;
    UnpackOptions opts;
    opts.create_devices = false;
    UnpackStats stats = unpack_layer(s.write(tar), s.root, opts);
    CHECK(stats.skipped == 3);
    CHECK(stats.entries == 1);
    CHECK_FALSE(exists_nofollow(s.root / "dev/null"));
    CHECK_FALSE(exists_nofollow(s.root / "fifo"));
    CHECK_FALSE(exists_nofollow(s.root / "fifo2"));
  }
  if (::geteuid() == 0) {
    SECTION("created as root") {
      Scratch s;
      UnpackOptions opts;
      opts.create_devices = true;
      UnpackStats stats = unpack_layer(s.write(tar), s.root, opts);
      CHECK(stats.skipped == 0);
      struct stat st = lstat_of(s.root / "dev/null");
      CHECK(S_ISCHR(st.st_mode));
      CHECK(st.st_rdev == makedev(1, 3));
      CHECK((st.st_mode & 07777) == 0666);
      CHECK(S_ISFIFO(lstat_of(s.root / "fifo").st_mode));
      CHECK(lstat_of(s.root / "fifo2").st_ino == lstat_of(s.root / "fifo").st_ino);
    }
  }
}

TEST_CASE("unpacker: user xattrs are applied as root", "[unpacker]") {
  Scratch s;
  Tar tar;
  tar.add({.name = "f", .data = "x", .xattrs = {{"user.test", "value"}, {"trusted.no", "x"}}});
  unpack_layer(s.write(tar), s.root);
  char buf[64];
  ssize_t n = ::getxattr((s.root / "f").c_str(), "user.test", buf, sizeof buf);
  if (::geteuid() == 0 && !(n < 0 && errno == ENOTSUP)) {
    REQUIRE(n == 5);
    CHECK(std::string(buf, 5) == "value");
  } else {
    CHECK(n < 0);
  }
}

TEST_CASE("unpacker: a damaged layer gives one error naming the layer", "[unpacker]") {
  Scratch s;
  // The error unpacking `p` gives: one line that names the layer.
  auto error_of = [&](const fs::path& p) {
    try {
      unpack_layer(p, s.root);
    } catch (const Error& e) {
      std::string msg = e.what();
      CHECK(msg.starts_with("layer " + p.string() + ": "));
      CHECK(msg.find('\n') == std::string::npos);
      return msg;
    }
    FAIL("no error");
    return std::string();
  };
  SECTION("not a tar") {
    fs::path p = s.layers / "junk";
    write_text(p, std::string(2000, 'j'));
    error_of(p);
  }
  SECTION("truncated gzip") {
    Tar tar;
    tar.file("a", std::string(100000, 'a')).file("b", "b");
    fs::path p = s.layers / "t.tar.gz";
    tar.write(p, "gzip");
    std::string bytes = read_text(p);
    write_text(p, bytes.substr(0, bytes.size() / 2));
    CHECK(error_of(p).find("truncated gzip data") != std::string::npos);
  }
  SECTION("a gzip member whose CRC does not match") {
    Tar tar;
    tar.file("a", std::string(100000, 'a'));
    fs::path p = s.layers / "crc.tar.gz";
    tar.write(p, "gzip");
    std::string bytes = read_text(p);
    bytes[bytes.size() - 6] ^= 0x55;  // in the trailer's CRC-32
    write_text(p, bytes);
    CHECK(error_of(p).find("CRC or length check failed") != std::string::npos);
  }
  SECTION("missing root") {
    Tar tar;
    tar.file("a", "a");
    CHECK_THROWS_AS(unpack_layer(s.write(tar), s.root / "nope"), Error);
  }
  SECTION("a symlink standing for the root") {
    Tar tar;
    tar.symlink("./", "x");
    CHECK_THROWS_WITH(unpack_layer(s.write(tar), s.root),
                      Catch::Contains("entry \"./\": only a directory"));
  }
  SECTION("a damaged header") {
    Tar tar;
    tar.file("a", "a");
    fs::path p = s.write(tar);
    std::string bytes = read_text(p);
    bytes[0] = 'X';  // breaks the header checksum
    write_text(p, bytes);
    CHECK_THROWS_AS(unpack_layer(p, s.root), Error);
  }
}

// ---------------------------------------------------------------------------
// Hostile layers: each must leave everything outside root untouched.

TEST_CASE("unpacker hostile: dot-dot names are refused", "[unpacker]") {
  for (const std::string name : {"../escape", "a/../../escape", "a/b/../c", "./../escape",
                                 "/../escape", "..", "a/.."}) {
    DYNAMIC_SECTION(name) {
      Scratch s;
      Tar tar;
      tar.file("before", "b").file(name, "pwned");
      std::string err = s.unpack_confined(tar);
      fs::path layer = s.layers / "layer0.tar";
      CHECK(err == "layer " + layer.string() + ": entry \"" + name + "\": path leaves the root");
      CHECK_FALSE(exists_nofollow(s.tmp / "escape"));
      CHECK(read_text(s.root / "before") == "b");  // what came before stays
    }
  }
}

TEST_CASE("unpacker hostile: absolute names land inside the root", "[unpacker]") {
  Scratch s;
  Tar tar;
  tar.file("/abs/file", "inside").file("//double//slash", "d").file(s.outside / "sentinel", "x");
  CHECK(s.unpack_confined(tar).empty());
  CHECK(read_text(s.root / "abs/file") == "inside");
  CHECK(read_text(s.root / "double/slash") == "d");
  CHECK(read_text(s.root / s.outside.relative_path() / "sentinel") == "x");
}

TEST_CASE("unpacker hostile: a symlink to / or ../.. in the layer is scoped to the root",
          "[unpacker]") {
  Scratch s;
  // Names are chosen so that a broken unpacker writes into the scratch tree,
  // where the snapshot sees it, rather than somewhere on the host.
  const std::string tmp_abs = s.tmp.path().string();              // "/tmp/dockless-test-X"
  const std::string tmp_name = s.tmp.path().filename().string();  // "dockless-test-X"
  const std::string unique = "escape-" + tmp_name;
  Tar tar;
  tar.symlink("evil", "/")
      .file("evil/" + unique, "e1")
      .file("evil" + tmp_abs + "/escape1", "e1")
      .symlink("evil2", "../..")
      .file("evil2/" + tmp_name + "/escape2", "e2")
      .symlink("evil3", "../../../../../../../../..")
      .file("evil3" + tmp_abs + "/escape3", "e3");
  CHECK(s.unpack_confined(tar).empty());
  CHECK(read_text(s.root / unique) == "e1");
  CHECK(read_text(s.root / (tmp_abs.substr(1) + "/escape1")) == "e1");
  CHECK(read_text(s.root / tmp_name / "escape2") == "e2");
  CHECK(read_text(s.root / (tmp_abs.substr(1) + "/escape3")) == "e3");
  CHECK(fs::read_symlink(s.root / "evil") == "/");  // targets are stored as is
  // Had it been followed to the host's "/": fail, and leave nothing behind.
  const fs::path host = fs::path("/") / unique;
  const bool leaked = exists_nofollow(host);
  if (leaked) fs::remove(host);
  CHECK_FALSE(leaked);
}

TEST_CASE("unpacker hostile: symlink to ../outside then a file through it", "[unpacker]") {
  Scratch s;
  SECTION("target missing inside the root: error") {
    Tar tar;
    tar.symlink("link", "../outside").file("link/pwned", "x");
    std::string err = s.unpack_confined(tar);
    CHECK_THAT(err, Catch::Contains("entry \"link/pwned\""));
    CHECK_FALSE(exists_nofollow(s.outside / "pwned"));
  }
  SECTION("target present inside the root: written there") {
    Tar tar;
    tar.dir("outside").symlink("link", "../outside").file("link/pwned", "x");
    CHECK(s.unpack_confined(tar).empty());
    CHECK(read_text(s.root / "outside/pwned") == "x");
    CHECK_FALSE(exists_nofollow(s.outside / "pwned"));
  }
}

TEST_CASE("unpacker hostile: symlinks already on disk that point outside", "[unpacker]") {
  Scratch s;
  fs::create_symlink(s.outside, s.root / "abs");  // absolute host path
  fs::create_symlink("../outside", s.root / "rel");
  fs::create_symlink("../../../../../../../..", s.root / "up");
  SECTION("absolute, missing inside: error") {
    Tar tar;
    tar.file("abs/pwned", "x");
    CHECK_THAT(s.unpack_confined(tar), Catch::Contains("entry \"abs/pwned\""));
  }
  SECTION("relative, missing inside: error") {
    Tar tar;
    tar.file("rel/pwned", "x");
    CHECK_THAT(s.unpack_confined(tar), Catch::Contains("entry \"rel/pwned\""));
  }
  SECTION("overwrite of a file through it lands inside") {
    fs::create_directories(s.root / s.outside.relative_path());
    Tar tar;
    tar.file("abs/sentinel", "overwritten")
        .file("up" + s.outside.string() + "/up-escape", "t")
        .file("abs/sub/deep", "d");
    CHECK(s.unpack_confined(tar).empty());
    CHECK(read_text(s.root / s.outside.relative_path() / "sentinel") == "overwritten");
    CHECK(read_text(s.root / s.outside.relative_path() / "sub/deep") == "d");
    CHECK(read_text(s.root / s.outside.relative_path() / "up-escape") == "t");
  }
  SECTION("whiteouts and opaque markers through it touch nothing outside") {
    Tar tar;
    tar.file("abs/.wh.sentinel", "")
        .file("rel/.wh.sub", "")
        .file("up" + s.tmp.path().string() + "/.wh.outside", "");
    CHECK(s.unpack_confined(tar).empty());
    Tar opaque;
    opaque.file("abs/.wh..wh..opq", "");
    s.unpack_confined(opaque);  // error (dangling) or inside: either way confined
  }
}

TEST_CASE("unpacker hostile: hardlinks cannot reach outside", "[unpacker]") {
  Scratch s;
  SECTION("dot-dot target") {
    Tar tar;
    tar.hardlink("h", "../outside/sentinel");
    std::string err = s.unpack_confined(tar);
    CHECK_THAT(err, Catch::Contains("entry \"h\"") && Catch::Contains("leaves the root"));
    CHECK_FALSE(exists_nofollow(s.root / "h"));
  }
  SECTION("absolute target resolves inside the root") {
    Tar missing;
    missing.hardlink("h", "/etc/passwd");
    CHECK_THAT(s.unpack_confined(missing), Catch::Contains("entry \"h\"") &&
                                               Catch::Contains("\"etc/passwd\""));
    Tar present;
    present.file("etc/passwd", "root:x:0:0").hardlink("h", "/etc/passwd");
    CHECK(s.unpack_confined(present).empty());
    CHECK(lstat_of(s.root / "h").st_ino == lstat_of(s.root / "etc/passwd").st_ino);
  }
  SECTION("absolute host path of the outside file") {
    Tar tar;
    tar.hardlink("h", (s.outside / "sentinel").string());
    CHECK_FALSE(s.unpack_confined(tar).empty());
    CHECK_FALSE(exists_nofollow(s.root / "h"));
  }
  SECTION("target through a symlinked directory pointing outside") {
    fs::create_symlink(s.outside, s.root / "out");
    Tar tar;
    tar.hardlink("h", "out/sentinel");
    CHECK_FALSE(s.unpack_confined(tar).empty());
  }
  SECTION("link to a symlink that points outside links the symlink itself") {
    fs::create_symlink("../outside/sentinel", s.root / "ondisk");
    Tar tar;
    tar.symlink("s", (s.outside / "sentinel").string()).hardlink("h", "s").hardlink("h2", "ondisk");
    CHECK(s.unpack_confined(tar).empty());
    struct stat h = lstat_of(s.root / "h");
    CHECK(S_ISLNK(h.st_mode));
    CHECK(h.st_ino == lstat_of(s.root / "s").st_ino);
    CHECK(fs::read_symlink(s.root / "h") == s.outside / "sentinel");
    CHECK(S_ISLNK(lstat_of(s.root / "h2").st_mode));
    CHECK(lstat_of(s.root / "h2").st_ino == lstat_of(s.root / "ondisk").st_ino);
  }
  SECTION("a directory cannot be hardlinked") {
    Tar tar;
    tar.dir("d").hardlink("h", "d");
    CHECK_THAT(s.unpack_confined(tar), Catch::Contains("directory"));
  }
}

TEST_CASE("unpacker hostile: entries replace symlinks instead of following them",
          "[unpacker]") {
  Scratch s;
  fs::create_symlink(s.outside / "sentinel", s.root / "f");
  fs::create_symlink(s.outside, s.root / "d");
  fs::create_symlink(s.outside / "sentinel", s.root / "l");
  Tar tar;
  tar.file("f", "replaced")
      .dir("d", 0755)
      .file("d/x", "in d")
      .symlink("inlayer", (s.outside / "sentinel").string())
      .file("inlayer", "replaced too")
      .hardlink("l", "f");
  CHECK(s.unpack_confined(tar).empty());
  CHECK(S_ISREG(lstat_of(s.root / "f").st_mode));
  CHECK(read_text(s.root / "f") == "replaced");
  CHECK(S_ISDIR(lstat_of(s.root / "d").st_mode));
  CHECK(read_text(s.root / "d/x") == "in d");
  CHECK(S_ISREG(lstat_of(s.root / "inlayer").st_mode));
  CHECK(read_text(s.root / "inlayer") == "replaced too");
  CHECK(lstat_of(s.root / "l").st_ino == lstat_of(s.root / "f").st_ino);
  CHECK_FALSE(exists_nofollow(s.outside / "x"));
}

TEST_CASE("unpacker hostile: symlink loops give an error, not a hang", "[unpacker]") {
  Scratch s;
  Tar tar;
  tar.symlink("a", "b").symlink("b", "a").symlink("self", "self").file("a/x", "x");
  CHECK_THAT(s.unpack_confined(tar), Catch::Contains("entry \"a/x\""));
  Tar more;
  more.file("self/x", "x");
  CHECK_THAT(s.unpack_confined(more), Catch::Contains("entry \"self/x\""));
  Tar link;
  link.hardlink("h", "a");  // the final symlink is not followed: linking it is fine
  CHECK(s.unpack_confined(link).empty());
  CHECK(lstat_of(s.root / "h").st_ino == lstat_of(s.root / "a").st_ino);
}

TEST_CASE("unpacker hostile: very long names", "[unpacker]") {
  Scratch s;
  std::string deep;
  for (int i = 0; i < 60; ++i) deep += "component-" + std::to_string(i) + "/";
  SECTION("a long PAX name is applied") {
    std::string target(1000, 't');
    Tar tar;
    tar.file(deep + "file", "deep").symlink(deep + "link", target);
    CHECK(s.unpack_confined(tar).empty());
    CHECK(read_text(s.root / (deep + "file")) == "deep");
    CHECK(fs::read_symlink(s.root / (deep + "link")) == target);
  }
  SECTION("dot-dot hidden in a long name") {
    std::string name = deep;
    for (int i = 0; i < 80; ++i) name += "../";
    name += "escape";
    Tar tar;
    tar.file(name, "x");
    std::string err = s.unpack_confined(tar);
    CHECK_THAT(err, Catch::Contains("path leaves the root"));
    CHECK(err.size() < 400);  // the name is shortened in the message
    CHECK(err.find('\n') == std::string::npos);
  }
  SECTION("a component longer than NAME_MAX") {
    Tar tar;
    tar.file("a/" + std::string(300, 'n'), "x");
    CHECK_FALSE(s.unpack_confined(tar).empty());
  }
  SECTION("control characters are escaped in the message") {
    Tar tar;
    tar.file("../a\nb", "x");
    CHECK_THAT(s.unpack_confined(tar), Catch::Contains("\"../a\\x0ab\""));
  }
}

TEST_CASE("unpacker hostile: whiteouts cannot name anything outside", "[unpacker]") {
  Scratch s;
  write_text(s.root / "x", "x");
  for (const std::string name : {"../.wh.outside", "../outside/.wh.sentinel", "a/.wh...",
                                 ".wh..", ".wh.", "/../.wh.x"}) {
    DYNAMIC_SECTION(name) {
      Tar tar;
      tar.file(name, "");
      std::string err = s.unpack_confined(tar);
      CHECK_THAT(err, Catch::Contains("entry \"" + name + "\""));
      CHECK(read_text(s.root / "x") == "x");
    }
  }
  SECTION("a whiteout through a symlink to / stays in the root") {
    // Unique name: a broken unpacker would look for it in the host's "/".
    const std::string x = "x-" + s.tmp.path().filename().string();
    write_text(s.root / x, "x");
    Tar tar;
    tar.symlink("up", "/").file("up/.wh." + x, "").file("up" + s.outside.string() + "/.wh.sub", "");
    CHECK(s.unpack_confined(tar).empty());
    CHECK_FALSE(exists_nofollow(s.root / x));
  }
}
