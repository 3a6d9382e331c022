// The uv cache split by environment users, and content-derived archive ids,
// on a cache laid out the way uv 0.13 lays it out (archive-v0, wheels-v8
// pointer files and symlinks, root files) with symlink- and copy-mode venvs.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "src/build/uv_cache_partition.h"
#include "base/file_util.h"
#include "tests/test_support.h"

using namespace dockless;
namespace fs = std::filesystem;

namespace {

const std::string kImageCache = "/root/.cache/uv";

/// An unpacked wheel in archive-v0/<id> (a module and a dist-info with RECORD).
void make_archive(const fs::path& cache, const std::string& id, const std::string& pkg) {
  fs::path a = cache / "archive-v0" / id;
  test::write_text(a / pkg / "__init__.py", "VALUE = '" + pkg + "'\n");
  test::write_text(a / (pkg + "-1.0.dist-info") / "METADATA", "Name: " + pkg + "\n");
  test::write_text(a / (pkg + "-1.0.dist-info") / "RECORD", pkg + "/__init__.py,sha256=x," + pkg + "\n");
  // uv's pointer file names the archive, and a symlink points at it.
  fs::path idx = cache / "wheels-v8" / "index" / "h1" / pkg;
  test::write_text(idx / "1.0-py3-none-any.http", std::string("\x95\xb0", 2) + id + "policy");
  fs::create_directories(idx);
  fs::create_symlink("../../../../archive-v0/" + id, idx / "1.0-py3-none-any");
}

/// A venv with pkg installed: symlinks into the cache (symlink mode) or copies.
void install(const fs::path& venv, const std::string& id, const std::string& pkg, bool symlink) {
  fs::path site = venv / "lib" / "python3.11" / "site-packages";
  fs::create_directories(site / pkg);
  fs::create_directories(site / (pkg + "-1.0.dist-info"));
  std::string target = kImageCache + "/archive-v0/" + id;
  if (symlink) {
    fs::create_symlink(target + "/" + pkg + "/__init__.py", site / pkg / "__init__.py");
    fs::create_symlink(target + "/" + pkg + "-1.0.dist-info/METADATA",
                       site / (pkg + "-1.0.dist-info") / "METADATA");
  } else {
    test::write_text(site / pkg / "__init__.py", "VALUE = '" + pkg + "'\n");
    test::write_text(site / (pkg + "-1.0.dist-info") / "METADATA", "Name: " + pkg + "\n");
  }
}

const CachePart* find_part(const std::vector<CachePart>& parts, const std::string& name) {
  for (const auto& p : parts)
    if (cache_part_name(p) == name) return &p;
  return nullptr;
}

}  // namespace

TEST_CASE("entries go to the part of exactly the environments that use them", "[uv_cache_partition]") {
  test::TempDir t;
  fs::path cache = t / "cache";
  make_archive(cache, "AAAAAAAAAAAAAAAA", "common_a");
  make_archive(cache, "BBBBBBBBBBBBBBBB", "shared_vs");
  make_archive(cache, "CCCCCCCCCCCCCCCC", "only_vllm");
  make_archive(cache, "DDDDDDDDDDDDDDDD", "stale");  // from an earlier build: nobody uses it
  test::write_text(cache / "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n");
  install(t / "vllm", "AAAAAAAAAAAAAAAA", "common_a", true);
  install(t / "vllm", "BBBBBBBBBBBBBBBB", "shared_vs", true);
  install(t / "vllm", "CCCCCCCCCCCCCCCC", "only_vllm", true);
  install(t / "sglang", "AAAAAAAAAAAAAAAA", "common_a", false);  // copy mode: matched by dist-info
  install(t / "sglang", "BBBBBBBBBBBBBBBB", "shared_vs", false);
  install(t / "main", "AAAAAAAAAAAAAAAA", "common_a", true);

  auto parts = partition_uv_cache(cache, {{"vllm", t / "vllm"}, {"sglang", t / "sglang"}, {"main", t / "main"}});
  REQUIRE(parts.size() == 4);
  CHECK(cache_part_name(parts[0]) == "common");  // common first, then shared, then single
  const CachePart* all = find_part(parts, "shared:main+sglang+vllm");
  const CachePart* two = find_part(parts, "shared:sglang+vllm");
  const CachePart* one = find_part(parts, "env:vllm");
  REQUIRE(all);
  REQUIRE(two);
  REQUIRE(one);
  CHECK(all->includes("archive-v0/AAAAAAAAAAAAAAAA/common_a/__init__.py", false));
  CHECK(all->includes("wheels-v8/index/h1/common_a/1.0-py3-none-any.http", false));
  CHECK(all->includes("wheels-v8/index/h1/common_a/1.0-py3-none-any", false));
  CHECK(two->includes("archive-v0/BBBBBBBBBBBBBBBB", true));
  CHECK(one->includes("archive-v0/CCCCCCCCCCCCCCCC/only_vllm", true));
  CHECK(one->includes("archive-v0", true));  // a directory above a listed path
  CHECK_FALSE(one->includes("archive-v0/BBBBBBBBBBBBBBBB", true));
  CHECK(parts[0].includes("CACHEDIR.TAG", false));
  for (const auto& p : parts) {
    CHECK_FALSE(p.includes("archive-v0/DDDDDDDDDDDDDDDD", true));  // unused: shipped nowhere
    CHECK_FALSE(p.includes("wheels-v8/index/h1/stale/1.0-py3-none-any.http", false));
  }
}

TEST_CASE("archive ids become content-derived, and every reference follows", "[uv_cache_partition]") {
  auto run = [](const fs::path& root, const std::string& random_id) {
    fs::path cache = root / "cache";
    make_archive(cache, random_id, "pkg");
    install(root / "venv", random_id, "pkg", true);
    CHECK(canonicalize_archive_ids(cache) == 1);
    CHECK(canonicalize_archive_ids(cache) == 0);  // stable
    std::vector<std::string> ids;
    for (const auto& e : fs::directory_iterator(cache / "archive-v0"))
      if (!e.is_symlink()) ids.push_back(e.path().filename());
    REQUIRE(ids.size() == 1);
    const std::string id = ids[0];
    CHECK(id.size() == random_id.size());
    // Pointer file and pointer symlink name the new id; the old one is an alias.
    std::string http = read_file(cache / "wheels-v8/index/h1/pkg/1.0-py3-none-any.http");
    CHECK(http.find(id) != std::string::npos);
    CHECK(http.find(random_id) == std::string::npos);
    CHECK(fs::read_symlink(cache / "wheels-v8/index/h1/pkg/1.0-py3-none-any").string() ==
          "../../../../archive-v0/" + id);
    CHECK(archive_aliases(cache) == std::map<std::string, std::string>{{random_id, id}});
    // The venv is not touched (its link resolves through the alias); its layer maps it.
    const fs::path link = root / "venv/lib/python3.11/site-packages/pkg/__init__.py";
    const std::string old_target = kImageCache + "/archive-v0/" + random_id + "/pkg/__init__.py";
    CHECK(fs::read_symlink(link).string() == old_target);
    CHECK(fs::exists(cache / "archive-v0" / random_id / "pkg/__init__.py"));
    auto map = archive_link_mapper(cache, kImageCache);
    REQUIRE(map);
    CHECK(map(old_target) == kImageCache + "/archive-v0/" + id + "/pkg/__init__.py");
    CHECK(map(kImageCache + "/archive-v0/" + random_id) == kImageCache + "/archive-v0/" + id);
    CHECK(map("/elsewhere/archive-v0/" + random_id + "/x") == "/elsewhere/archive-v0/" + random_id + "/x");
    // The alias is no archive of its own: the venv uses the renamed one.
    auto parts = partition_uv_cache(cache, {{"main", root / "venv"}});
    REQUIRE(parts.size() == 1);
    CHECK(parts[0].includes("archive-v0/" + id, true));
    CHECK_FALSE(parts[0].includes("archive-v0/" + random_id, true));
    return id;
  };
  test::TempDir a, b;
  // Two "clean builds" whose uv picked different random ids end up the same.
  CHECK(run(a.path(), "r4nd0mIdNumber01") == run(b.path(), "xYz-_0987654321a"));
}
