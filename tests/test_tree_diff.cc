// Tests for layers/tree_diff: a lower tree, its `cp -a` copy changed the way
// a build step would, and the layer of the difference read back with
// libarchive; then the layer applied to another copy of the lower tree must
// give the changed tree.
#include "layers/tree_diff.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "layers/unpacker.h"
#include "tests/layer_tar_entries.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;

namespace {

using dockless::TreeDiffOptions;
using dockless::test::layer_entry;
using dockless::test::layer_paths;
using dockless::test::read_layer_entries;
using dockless::test::StringByteSink;
using dockless::test::TempDir;
using dockless::test::write_text;

std::string diff_of(const fs::path& lower, const fs::path& changed,
                    const TreeDiffOptions& options = {}) {
  StringByteSink sink;
  dockless::write_tree_diff_layer(lower, changed, options, sink);
  CHECK(sink.finishes == 1);
  return sink.bytes;
}

void set_mtime(const fs::path& p, time_t sec, long nsec) {
  struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0);
}

void copy_tree(const fs::path& from, const fs::path& to) {
  std::string cmd = "cp -a --reflink=auto '" + from.string() + "' '" + to.string() + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

// Type, mode, owner, content or link target of every entry below root.
std::map<std::string, std::string> describe_tree(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const fs::path p = it->path();
    struct stat st;
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    std::ostringstream d;
    d << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid;
    if (S_ISLNK(st.st_mode)) d << " -> " << fs::read_symlink(p).string();
    if (S_ISREG(st.st_mode)) {
      std::ifstream in(p, std::ios::binary);
      d << " " << std::string(std::istreambuf_iterator<char>(in), {});
    }
    out[fs::relative(p, root).string()] = d.str();
  }
  return out;
}

void make_lower(const fs::path& lo) {
  write_text(lo / "keep.txt", "keep\n");
  write_text(lo / "edit.txt", "old\n");
  write_text(lo / "gone.txt", "gone\n");
  write_text(lo / "dir_to_file" / "a", "a\n");
  write_text(lo / "file_to_dir", "file\n");
  write_text(lo / "emptied" / "x", "x\n");
  write_text(lo / "emptied" / "y", "y\n");
  write_text(lo / "partly" / "p", "p\n");
  write_text(lo / "partly" / "q", "q\n");
  write_text(lo / "links" / "orig", "linked\n");
  write_text(lo / "owned.txt", "owned\n");
  write_text(lo / "sub" / "deep" / "same.txt", "same\n");
  write_text(lo / "touched.txt", "touched\n");
  fs::create_symlink("keep.txt", lo / "sym");
  std::vector<fs::path> all{lo};
  for (const auto& e : fs::recursive_directory_iterator(lo)) all.push_back(e.path());
  for (const auto& p : all) set_mtime(p, 1000000000, 123456789);
}

// What a step might do: edit, delete, replace, link, chmod, touch.
void change(const fs::path& ch) {
  write_text(ch / "edit.txt", "new content\n");
  fs::remove(ch / "gone.txt");
  fs::remove_all(ch / "dir_to_file");
  write_text(ch / "dir_to_file", "now a file\n");
  fs::remove(ch / "file_to_dir");
  write_text(ch / "file_to_dir" / "inner", "inner\n");
  fs::remove(ch / "emptied" / "x");
  fs::remove(ch / "emptied" / "y");
  write_text(ch / "emptied" / "z", "z\n");
  fs::remove(ch / "partly" / "q");
  fs::create_hard_link(ch / "links" / "orig", ch / "links" / "new");
  fs::permissions(ch / "owned.txt", static_cast<fs::perms>(0600));
  set_mtime(ch / "touched.txt", 1000000000, 987654321);  // same bytes, new mtime
}

TEST_CASE("tree diff: edits, deletions, replacements, new links, mode changes", "[tree_diff]") {
  TempDir t;
  make_lower(t / "lower");
  copy_tree(t / "lower", t / "changed");
  CHECK(read_layer_entries(diff_of(t / "lower", t / "changed")).empty());  // a copy: no change
  change(t / "changed");

  const std::string bytes = diff_of(t / "lower", t / "changed");
  auto entries = read_layer_entries(bytes);
  CHECK(layer_paths(entries) ==
        std::vector<std::string>{".wh.gone.txt", "dir_to_file", "edit.txt", "emptied",
                                 "emptied/.wh..wh..opq", "emptied/z", "file_to_dir",
                                 "file_to_dir/inner", "links", "links/new", "links/orig",
                                 "owned.txt", "partly", "partly/.wh.q", "touched.txt"});
  CHECK(layer_entry(entries, "dir_to_file").type == AE_IFREG);
  CHECK(layer_entry(entries, "file_to_dir").type == AE_IFDIR);
  CHECK(layer_entry(entries, "edit.txt").data == "new content\n");
  CHECK(layer_entry(entries, "links/new").data == "linked\n");
  CHECK(layer_entry(entries, "links/orig").hardlink == "links/new");
  CHECK(layer_entry(entries, "owned.txt").perm == 0600);
  for (const char* marker : {".wh.gone.txt", "emptied/.wh..wh..opq", "partly/.wh.q"}) {
    INFO(marker);
    CHECK(layer_entry(entries, marker).type == AE_IFREG);
    CHECK(layer_entry(entries, marker).perm == 0644);
    CHECK(layer_entry(entries, marker).uid == 0);
  }
  for (const auto& e : entries) {
    INFO(e.path);
    CHECK(e.mtime == dockless::kDefaultMtimeClamp);
    if (e.path.find(".wh.") == std::string::npos) CHECK(e.uid == ::getuid());
  }
  CHECK(diff_of(t / "lower", t / "changed") == bytes);  // deterministic

  // Applied over another copy of the lower tree, the layer gives the changed tree.
  std::ofstream(t / "layer.tar", std::ios::binary) << bytes;
  copy_tree(t / "lower", t / "applied");
  dockless::unpack_layer(t / "layer.tar", t / "applied");
  CHECK(describe_tree(t / "applied") == describe_tree(t / "changed"));
  struct stat a, b;
  REQUIRE(::stat((t / "applied" / "links" / "new").c_str(), &a) == 0);
  REQUIRE(::stat((t / "applied" / "links" / "orig").c_str(), &b) == 0);
  CHECK(a.st_ino == b.st_ino);
}

TEST_CASE("tree diff: compare_content leaves out a file whose bytes did not change",
          "[tree_diff]") {
  TempDir t;
  make_lower(t / "lower");
  copy_tree(t / "lower", t / "changed");
  set_mtime(t / "changed" / "touched.txt", 1000000001, 0);
  write_text(t / "changed" / "edit.txt", "new\n");  // same size as "old\n"
  set_mtime(t / "changed" / "edit.txt", 1000000001, 0);
  set_mtime(t / "changed", 1000000000, 123456789);
  TreeDiffOptions opt;
  CHECK(layer_paths(read_layer_entries(diff_of(t / "lower", t / "changed", opt))) ==
        std::vector<std::string>{"edit.txt", "touched.txt"});
  opt.compare_content = true;
  CHECK(layer_paths(read_layer_entries(diff_of(t / "lower", t / "changed", opt))) ==
        std::vector<std::string>{"edit.txt"});
  // Unclamped mtimes differ: the entries would differ, so the file is written.
  opt.layer.mtime_clamp = 2000000000;
  CHECK(layer_paths(read_layer_entries(diff_of(t / "lower", t / "changed", opt))) ==
        std::vector<std::string>{"edit.txt", "touched.txt"});
}

TEST_CASE("tree diff: a chowned file, owners through the owner map", "[.root]") {
  TempDir t;
  make_lower(t / "lower");
  copy_tree(t / "lower", t / "changed");
  REQUIRE(::chown((t / "changed" / "owned.txt").c_str(), 1000, 1001) == 0);
  set_mtime(t / "changed", 1000000000, 123456789);
  auto entries = read_layer_entries(diff_of(t / "lower", t / "changed"));
  CHECK(layer_paths(entries) == std::vector<std::string>{"owned.txt"});
  CHECK(layer_entry(entries, "owned.txt").uid == 1000);
  CHECK(layer_entry(entries, "owned.txt").gid == 1001);
  TreeDiffOptions opt;
  opt.layer.owner_map = dockless::OwnerMap::from_ranges({{0, 1000, 1}}, {{5, 1001, 1}});
  entries = read_layer_entries(diff_of(t / "lower", t / "changed", opt));
  CHECK(layer_entry(entries, "owned.txt").uid == 0);
  CHECK(layer_entry(entries, "owned.txt").gid == 5);
}

}  // namespace
