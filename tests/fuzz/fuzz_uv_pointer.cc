// uv's cache pointer files, as dockless reads them: the input is the .http
// pointer of common-a in a small real-shaped uv 0.13 cache (two archives,
// a venv linking one and copying the other). partition_uv_cache must
// return only paths that exist, and canonicalize_archive_ids must keep the
// pointer's length (ids are replaced by same-length ids) and be idempotent.
#include <filesystem>
#include <map>

#include "base/file_util.h"
#include "src/build/uv_cache_partition.h"
#include "tests/fuzz/fuzz_support.h"

using namespace dockless;
namespace fs = std::filesystem;

namespace {

// The ids uv 0.13.9 gave the archives of the seed corpus's pointer files.
constexpr const char* kIdA = "7gCSDbGeXZ3I4TZN";
constexpr const char* kIdB = "_VBQEHhGXCZff39t";
constexpr const char* kPointer = "cache/wheels-v8/index/b8679a060473ef5f/common-a/1.0.0-py3-none-any.http";

void make_cache(const fuzz::Scratch& s, std::string_view pointer) {
  for (auto [id, pkg] : {std::pair{kIdA, "common_a"}, std::pair{kIdB, "common_b"}}) {
    std::string d = std::string("cache/archive-v0/") + id + "/" + pkg + "-1.0.0.dist-info/";
    s.write(d + "METADATA", std::string("Name: ") + pkg + "\n");
    s.write(d + "RECORD", std::string(pkg) + "/__init__.py,,\n");
    s.write(std::string("cache/archive-v0/") + id + "/" + pkg + "/__init__.py", "");
  }
  s.write("cache/CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n");
  s.write(kPointer, pointer);
  fs::create_symlink(std::string("../../../../archive-v0/") + kIdA,
                     s.path() / "cache/wheels-v8/index/b8679a060473ef5f/common-a/1.0.0-py3-none-any");
  fs::path site = s.path() / "venv/lib/python3.11/site-packages";
  fs::create_directories(site / "common_a-1.0.0.dist-info");
  fs::create_symlink("/root/.cache/uv/archive-v0/" + std::string(kIdA) + "/common_a-1.0.0.dist-info/METADATA",
                     site / "common_a-1.0.0.dist-info/METADATA");
  s.write("venv/lib/python3.11/site-packages/common_b-1.0.0.dist-info/METADATA", "Name: common_b\n");
}

void check_parts(const fuzz::Scratch& s) {
  std::vector<CachePart> parts;
  if (!fuzz::returns_or_throws_error([&] {
        parts = partition_uv_cache(s.path() / "cache", {{"main", s.path() / "venv"}});
      }))
    return;
  std::error_code ec;
  for (const auto& p : parts)
    for (const auto& rel : p.paths)
      fuzz::check(fs::symlink_status(s.path() / "cache" / rel, ec).type() != fs::file_type::not_found,
                  "partition names a missing path: " + rel);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fuzz::Scratch scratch;
  scratch.clear();
  std::string_view pointer = fuzz::as_text(data, size);
  make_cache(scratch, pointer);
  check_parts(scratch);
  int renamed = 0;
  if (!fuzz::returns_or_throws_error([&] {
        renamed = canonicalize_archive_ids(scratch.path() / "cache");
      }))
    return 0;
  fuzz::check(renamed == 2, "expected both archives renamed, got " + std::to_string(renamed));
  std::string after = read_file(scratch.path() / kPointer);
  fuzz::check(after.size() == pointer.size(), "pointer file changed length");
  check_parts(scratch);
  int again = -1;
  fuzz::returns_or_throws_error([&] {
    again = canonicalize_archive_ids(scratch.path() / "cache");
  });
  fuzz::check(again == 0, "canonicalize_archive_ids is not idempotent");
  fuzz::check(read_file(scratch.path() / kPointer) == after, "second canonicalize changed the pointer");
  return 0;
}
