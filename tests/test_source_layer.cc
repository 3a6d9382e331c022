// Tests for src/build/source_layer: the source tree's layer is keyed by its
// tar's digest, learnt from a stat memo when nothing changed (no file read)
// and never wrongly: an edit that keeps size and mtime is still seen. An
// edited tree's layer is made at once; a first build's only hashed (its
// layer may be in a registry cache, so nothing is compressed for it yet).
#include "src/build/source_layer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "oci/blob_store.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;

namespace {

using dockless::BlobStore;
using dockless::CompressionOptions;
using dockless::ProjectSource;
using dockless::SourceLayer;
using dockless::test::TempDir;
using dockless::test::write_text;

ProjectSource project_at(const fs::path& tree) {
  ProjectSource s;
  s.tree = tree;
  s.project_root = tree;
  s.spec.source.dest = "/opt/app";
  s.ignore = dockless::IgnoreRules::load(tree / ".dockerignore");
  return s;
}

/// Code-like text with random names, `size` bytes or a little more; each
/// call goes on from where the last one left `seed`.
std::string code_text(std::uint64_t& seed, std::size_t size) {
  auto next = [&seed] { return (seed = seed * 6364136223846793005ULL + 1442695040888963407ULL) >> 33; };
  std::string text;
  while (text.size() < size) {
    std::string name;
    for (std::uint64_t n = 3 + next() % 12; n > 0; --n) name += static_cast<char>('a' + next() % 26);
    text += "def " + name + "(a, b):\n    return a * " + std::to_string(next() % 1000) + " + b\n";
  }
  return text;
}

std::size_t files_in(const fs::path& dir, const std::string& suffix = "") {
  if (!fs::exists(dir)) return 0;
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().ends_with(suffix);
  return n;
}

}  // namespace

TEST_CASE("the source layer's digest comes from a stat memo when nothing changed", "[source_layer]") {
  TempDir tmp;
  const fs::path tree = tmp / "project";
  write_text(tree / "app/main.py", "print('hello')\n");
  write_text(tree / "app/util.py", "X = 1\n");
  write_text(tree / ".dockerignore", "*.log\n");
  write_text(tree / "run.log", "noise");
  ::usleep(1200000);  // older than the racy margin (1 s): a memo may be written
  const fs::path memo = tmp / "memo";
  BlobStore store(tmp / "store");
  CompressionOptions gzip;
  const ProjectSource source = project_at(tree);

  SourceLayer first(source, 0, memo, store, gzip);
  CHECK(first.read_tree());
  CHECK_FALSE(first.made());
  CHECK(files_in(store.blob_dir()) == 0);
  CHECK(files_in(memo, ".memo") == 1);
  const dockless::LayerBlob made = first.write(gzip, store);
  CHECK(made.diff_id.str() == first.tar_digest());
  CHECK(store.contains(made.descriptor.digest));

  SECTION("an unchanged tree is not read, and its layer is the same") {
    SourceLayer again(source, 0, memo, store, gzip);
    CHECK_FALSE(again.read_tree());
    CHECK(again.tar_digest() == first.tar_digest());
    CHECK(again.write(gzip, store).descriptor.digest == made.descriptor.digest);
  }
  SECTION("an ignored file changing does not count") {
    write_text(tree / "run.log", "more noise");
    SourceLayer again(source, 0, memo, store, gzip);
    CHECK_FALSE(again.read_tree());
  }
  SECTION("an edit that keeps the size and the mtime is read, and gets no memo while it is fresh") {
    struct stat before;
    REQUIRE(::stat((tree / "app/util.py").c_str(), &before) == 0);
    write_text(tree / "app/util.py", "X = 2\n");
    struct timespec times[2] = {before.st_atim, before.st_mtim};
    REQUIRE(::utimensat(AT_FDCWD, (tree / "app/util.py").c_str(), times, 0) == 0);
    SourceLayer edited(source, 0, memo, store, gzip);
    CHECK(edited.made());
    CHECK(edited.tar_digest() != first.tar_digest());
    CHECK(files_in(store.blob_dir()) == 1);  // compressed in memory: stored only by write()
    const dockless::LayerBlob edited_layer = edited.write(gzip, store);
    CHECK(edited_layer.diff_id.str() == edited.tar_digest());
    CHECK(store.contains(edited_layer.descriptor.digest));
    CHECK(store.read(edited_layer.descriptor.digest).size() == std::size_t(edited_layer.descriptor.size));
    CHECK(files_in(memo, ".memo") == 1);
    // Changed a moment ago, so not trusted yet (a second write within one
    // tick could keep its ctime): read again, but only hashed.
    SourceLayer again(source, 0, memo, store, gzip);
    CHECK(again.read_tree());
    CHECK_FALSE(again.made());
    CHECK(again.tar_digest() == edited.tar_digest());
    ::usleep(1200000);
    SourceLayer later(source, 0, memo, store, gzip);
    CHECK(later.read_tree());  // this walk finds it old enough, and trusts it from now on
    SourceLayer settled(source, 0, memo, store, gzip);
    CHECK_FALSE(settled.read_tree());
    CHECK(settled.tar_digest() == edited.tar_digest());
  }
  SECTION("another mtime clamp or destination is another memo") {
    SourceLayer clamped(source, 1000, memo, store, gzip);
    CHECK(clamped.read_tree());
    CHECK(clamped.tar_digest() != first.tar_digest());
    ProjectSource moved = source;
    moved.spec.source.dest = "/srv/app";
    SourceLayer elsewhere(moved, 0, memo, store, gzip);
    CHECK(elsewhere.read_tree());
  }
  SECTION("without a memo directory (--no-cache) the tree is always read") {
    SourceLayer uncached(source, 0, fs::path(), store, gzip);
    CHECK(uncached.read_tree());
    CHECK(uncached.tar_digest() == first.tar_digest());
  }
  SECTION("a damaged memo is read past, not trusted") {
    for (const auto& e : fs::directory_iterator(memo)) write_text(e.path(), "sha256:not-a-digest x trusted\n");
    SourceLayer again(source, 0, memo, store, gzip);
    CHECK(again.read_tree());
    CHECK_FALSE(again.made());
    CHECK(again.tar_digest() == first.tar_digest());
  }
}

TEST_CASE("an edited tree's layer compresses again only the gzip blocks around the edit, to the same bytes",
          "[source_layer]") {
  TempDir tmp;
  const fs::path tree = tmp / "project";
  // ~1.2 MiB of code-like text with random names: about six content-defined
  // blocks (~190 KiB each on average).
  std::uint64_t seed = 12345;
  for (int f = 0; f < 60; ++f) write_text(tree / ("pkg/mod" + std::to_string(100 + f) + ".py"), code_text(seed, 20000));
  ::usleep(1200000);  // older than the racy margin: a memo may be trusted
  const fs::path memo = tmp / "memo";
  CompressionOptions gzip;
  const ProjectSource source = project_at(tree);
  BlobStore store(tmp / "store");
  SourceLayer first(source, 0, memo, store, gzip);
  first.write(gzip, store);  // a first build here: its blocks are kept beside the memo
  REQUIRE(files_in(memo, ".blocks") == 1);

  // One file in the middle edited.
  write_text(tree / "pkg/mod130.py", "def edited():\n    return 1\n");
  SourceLayer edited(source, 0, memo, store, gzip);
  REQUIRE(edited.made());
  const dockless::LayerBlob layer = edited.write(gzip, store);
  CHECK(edited.reused_blocks() >= 3);  // the blocks before the edit, and after it once the cuts agree again
  // Taken up from a point before the edited file (mod130.py starts ~30 files in).
  CHECK(edited.resumed_at() > 0);
  CHECK(edited.resumed_at() < 30 * 20100);

  // The same tree without a memo (--no-cache) compresses every block: same bytes.
  BlobStore fresh_store(tmp / "fresh");
  SourceLayer uncached(source, 0, fs::path(), store, gzip);
  const dockless::LayerBlob fresh = uncached.write(gzip, fresh_store);
  CHECK(uncached.reused_blocks() == 0);
  CHECK(fresh.descriptor.digest == layer.descriptor.digest);
  CHECK(fresh.diff_id == layer.diff_id);

  // What is kept beside the memo is an index into the layer in the store,
  // not the layer's bytes again.
  fs::path index;
  for (const auto& e : fs::directory_iterator(memo))
    if (e.path().extension() == ".blocks") index = e.path();
  REQUIRE(!index.empty());
  CHECK(fs::file_size(index) < 4096);
  CHECK(fs::file_size(index) * 100 < std::uintmax_t(layer.descriptor.size));

  // Each way the kept blocks can go bad, the next edit compresses every
  // block again, to the bytes a build without a memo makes.
  auto edit_again = [&] {
    write_text(tree / "pkg/mod131.py", "def edited_too():\n    return 2\n");
    SourceLayer again(source, 0, memo, store, gzip);
    REQUIRE(again.made());
    const dockless::LayerBlob redone = again.write(gzip, store);
    CHECK(again.reused_blocks() == 0);
    CHECK(again.resumed_at() == 0);
    SourceLayer check(source, 0, fs::path(), store, gzip);
    CHECK(check.write(gzip, fresh_store).descriptor.digest == redone.descriptor.digest);
  };
  SECTION("a damaged index is not used, and changes nothing") {
    std::string bytes = dockless::read_file(index);
    bytes[bytes.size() / 2] ^= 0x5a;
    write_text(index, bytes);
    edit_again();
  }
  SECTION("a damaged layer in the store is not used") {
    const fs::path blob = store.path_of(layer.descriptor.digest);
    std::string bytes = dockless::read_file(blob);
    bytes[bytes.size() / 3] ^= 0x5a;
    write_text(blob, bytes);
    edit_again();
  }
  SECTION("a layer pruned from the store since is not needed") {
    fs::remove(store.path_of(layer.descriptor.digest));
    edit_again();
  }
}

TEST_CASE("an edited tree's layer taken up from its last version is the layer made from scratch, wherever the edit is",
          "[source_layer]") {
  TempDir tmp;
  const fs::path tree = tmp / "project";
  std::uint64_t seed = 777;
  auto code = [&seed](std::size_t size) { return code_text(seed, size); };
  // ~1.6 MiB over three directories; a file early on with a hardlink late
  // (a hardlink after a resume point to a file before it), a symlink, an
  // empty file and a long name (a PAX header).
  for (const char* dir : {"a", "m", "z"})
    for (int f = 0; f < 20; ++f) write_text(tree / dir / ("mod" + std::to_string(100 + f) + ".py"), code(27000));
  fs::create_hard_link(tree / "a" / "mod101.py", tree / "z" / "linked.py");
  fs::create_symlink("../a/mod100.py", tree / "m" / "link.py");
  write_text(tree / "m" / "empty.py", "");
  write_text(tree / "m" / (std::string(150, 'n') + ".py"), code(3000));

  const fs::path memo = tmp / "memo";
  CompressionOptions gzip;
  ProjectSource source = project_at(tree);
  source.spec.source.dest = "/opt/app";
  BlobStore store(tmp / "store");
  BlobStore fresh_store(tmp / "fresh");
  // Each edit's layer against one made with no memo (--no-cache): the
  // same bytes. Returns where it was taken up from.
  auto build = [&] {
    SourceLayer edited(source, 0, memo, store, gzip);
    REQUIRE(edited.made());
    const dockless::LayerBlob layer = edited.write(gzip, store);
    SourceLayer uncached(source, 0, fs::path(), store, gzip);
    const dockless::LayerBlob fresh = uncached.write(gzip, fresh_store);
    CHECK(layer.descriptor.digest == fresh.descriptor.digest);
    CHECK(layer.descriptor.size == fresh.descriptor.size);
    CHECK(layer.diff_id == fresh.diff_id);
    return edited.resumed_at();
  };

  SourceLayer first(source, 0, memo, store, gzip);  // files just written: every entry is recent
  first.write(gzip, store);
  ::usleep(1200000);
  write_text(tree / "z" / "mod119.py", code(27000));
  CHECK(build() == 0);  // the last build's entries were too recent to trust

  // Edits from the end towards the start, so that no earlier edit (too
  // recent to trust) is before the next one.
  write_text(tree / "z" / "mod118.py", code(27000));  // same name, new content
  const std::uint64_t late = build();
  CHECK(late > 1300000);
  write_text(tree / "z" / "new.py", code(5000));  // a new entry: z/ changes too
  CHECK(build() > 800000);
  fs::permissions(tree / "m" / "mod115.py", fs::perms::owner_exec, fs::perm_options::add);  // a header only
  const std::uint64_t middle = build();
  CHECK(middle > 500000);
  CHECK(middle < late);
  fs::remove(tree / "m" / "mod102.py");  // an entry gone
  CHECK(build() > 300000);
  write_text(tree / "a" / "mod101.py", code(1000));  // the hardlinked file, rewritten in place
  const std::uint64_t early = build();
  CHECK(early < 100000);
  write_text(tree / "a" / "mod100.py", "# first\n");  // the first file: nothing before it to keep
  CHECK(build() == 0);
}
