// BuildCache: the local layer cache first, then --cache-from registries (an
// in-memory one here), and --cache-to keeping the entries of other slots.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "oci/blob_store.h"
#include "src/cache/build_cache.h"
#include "tests/fake_registry.h"

using namespace dockless;
using namespace dockless::test;

namespace {

const std::string kBase = "https://reg.test";

CachedLayer layer(const std::string& name, const std::string& bytes) {
  CachedLayer l;
  l.name = name;
  l.blob.descriptor.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  l.blob.descriptor.digest = sha256_of(bytes);
  l.blob.descriptor.size = static_cast<std::int64_t>(bytes.size());
  l.blob.diff_id = sha256_of("diff " + bytes);
  l.blob.uncompressed_size = bytes.size() * 2;
  return l;
}

/// A fake registry with a build cache at reg.test/cache:main (entries k1 in
/// slot "venv" and k2 in slot "source"), pushed from another machine, and
/// this machine's empty store, layer cache and transfer.
struct CacheSetup : RegistryHarness {
  FakeRegistry registry{http};
  std::string venv_bytes = std::string(2000, 'v'), source_bytes = std::string(1000, 's');
  BuildCacheIndex index;
  Reference ref = Reference::parse("reg.test/cache:main");
  BlobStore store{dir / "store"};
  LayerCache local{dir / "layers", store};
  std::optional<ImageTransfer> transfer;

  CacheSetup() {
    index.platform = "linux/amd64";
    index.entries = {{"k1", "venv", {layer("venv app", venv_bytes)}},
                     {"k2", "source", {layer("source /app", source_bytes)}}};
    BlobStore other(dir / "other-machine");
    other.put(venv_bytes);
    other.put(source_bytes);
    RegistryClient client("reg.test", options(), keychain);
    write_build_cache(client, ref, index, other, 2, 0);
    TransferOptions o;
    o.registry = options();
    o.keychain.authfile = (dir / "auth.json").string();  // anonymous
    o.cache_dir = dir / "cache";
    transfer.emplace(o);
  }
  Digest venv_digest() const { return sha256_of(venv_bytes); }
  Digest source_digest() const { return sha256_of(source_bytes); }
};

}  // namespace

TEST_CASE("a local hit needs no registry", "[build_cache_unit]") {
  CacheSetup s;
  s.store.put(s.venv_bytes);
  s.local.put("k9", {layer("venv app", s.venv_bytes)});
  const std::size_t before = s.http.requests().size();
  BuildCache cache(s.local, s.store, *s.transfer, false, true);
  std::string origin;
  auto hit = cache.find("k9", origin);
  REQUIRE(hit);
  CHECK(origin == "hit");
  CHECK(hit->at(0).blob.descriptor.digest == s.venv_digest());
  CHECK(s.http.requests().size() == before);

  BuildCache disabled(s.local, s.store, *s.transfer, /*no_cache=*/true, true);
  CHECK_FALSE(disabled.find("k9", origin));
}

TEST_CASE("a registry hit downloads the wanted layers and is then found locally", "[build_cache_unit]") {
  CacheSetup s;
  BuildCache cache(s.local, s.store, *s.transfer, false, /*download_hits=*/true);
  cache.open({s.ref});
  std::string origin;
  auto hit = cache.find("k1", origin);
  REQUIRE(hit);
  CHECK(origin == "remote");
  REQUIRE(hit->size() == 1);
  CHECK(hit->at(0).name == "venv app");
  CHECK(s.store.read(s.venv_digest()) == s.venv_bytes);
  CHECK_FALSE(s.store.contains(s.source_digest()));  // only what was asked for
  CHECK(cache.remote_blobs().empty());
  CHECK_FALSE(cache.find("k404", origin));

  BuildCache next_build(s.local, s.store, *s.transfer, false, true);
  REQUIRE(next_build.find("k1", origin));
  CHECK(origin == "hit");
}

TEST_CASE("a registry hit left in the registry is listed for mounting", "[build_cache_unit]") {
  CacheSetup s;
  BuildCache cache(s.local, s.store, *s.transfer, false, /*download_hits=*/false);
  cache.open({s.ref});
  std::string origin;
  REQUIRE(cache.find("k2", origin));
  CHECK(origin == "remote");
  CHECK_FALSE(s.store.contains(s.source_digest()));
  auto remote = cache.remote_blobs();
  REQUIRE(remote.size() == 1);
  CHECK(remote.at(s.source_digest().str()) == std::make_pair(std::string("reg.test"), std::string("cache")));
  CHECK(s.http.count("GET", kBase + "/v2/cache/blobs/" + s.source_digest().str()) == 0);

  // Written to another repository: the layer is mounted, not downloaded.
  BuildCacheIndex mine;
  mine.platform = "linux/amd64";
  mine.entries = {{"k2", "source", {layer("source /app", s.source_bytes)}}};
  cache.write(Reference::parse("reg.test/cache2:main"), mine);
  CHECK(s.registry.has_blob("cache2", s.source_digest()));
  CHECK(s.http.count("POST", kBase + "/v2/cache2/blobs/uploads/?mount=" + s.source_digest().str() +
                                 "&from=cache") == 1);
  CHECK(s.http.count("GET", kBase + "/v2/cache/blobs/" + s.source_digest().str()) == 0);
}

TEST_CASE("an absent --cache-from is no error", "[build_cache_unit]") {
  CacheSetup s;
  BuildCache cache(s.local, s.store, *s.transfer, false, true);
  CHECK_NOTHROW(cache.open({Reference::parse("reg.test/nothing:here")}));
  std::string origin;
  CHECK_FALSE(cache.find("k1", origin));
}

TEST_CASE("--cache-to replaces this build's slots and keeps the others", "[build_cache_unit]") {
  CacheSetup s;
  BuildCache cache(s.local, s.store, *s.transfer, false, true);
  const std::string new_venv(1500, 'n');
  s.store.put(new_venv);
  BuildCacheIndex mine;
  mine.platform = "linux/amd64";
  mine.entries = {{"k3", "venv", {layer("venv app", new_venv)}}};
  Digest written = cache.write(s.ref, mine);

  CHECK(s.registry.manifest("cache", "main"));
  CHECK(s.registry.manifest("cache", written.str()));
  CHECK(s.registry.has_blob("cache", sha256_of(new_venv)));
  RegistryClient client("reg.test", s.options(), s.keychain);
  BlobStore fresh(s.dir / "fresh");
  std::optional<BuildCacheIndex> now = read_build_cache(client, s.ref, fresh);
  REQUIRE(now);
  CHECK(now->find("k3"));
  CHECK(now->find("k2"));        // slot "source" kept
  CHECK_FALSE(now->find("k1"));  // slot "venv" replaced
}
