// The build cache shared through a registry (--cache-from / --cache-to), so
// a build pod on a fresh machine reuses what another one built. At REF sits
// an OCI artifact: an image manifest (artifactType dockless build cache)
// whose config blob maps cache keys to layer descriptors, and whose layers
// are those layers, so the registry keeps them referenced and any OCI tool
// (skopeo copy) can move the cache as a whole.
//
// An entry belongs to a slot ("venv vllm", "source /opt/app", "uv cache"):
// --cache-to replaces this build's slots and keeps the others, so a variant
// built with --skip never drops what the full build cached.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/reference.h"
#include "oci/registry_client.h"
#include "src/cache/layer_cache.h"

namespace dockless {

namespace media_type {
inline constexpr std::string_view kBuildCache = "application/vnd.dockless.build-cache.v1+json";
}

struct BuildCacheEntry {
  std::string key, slot;
  std::vector<CachedLayer> layers;
};

/// The config blob of a cache artifact.
struct BuildCacheIndex {
  /// What a uv cache layer fits (seeding a persistent uv cache needs the
  /// same platform, uv version and cache dir).
  std::string platform, uv_version, uv_cache_dir;
  std::vector<BuildCacheEntry> entries;

  /// Throws Error on malformed JSON.
  static BuildCacheIndex parse(std::string_view text);
  std::string to_json() const;
  const BuildCacheEntry* find(const std::string& key) const;
  const BuildCacheEntry* find_slot(const std::string& slot) const;
};

/// The cache at `ref`, or nullopt when the registry has no manifest there.
/// Throws Error when it is not a dockless build cache or cannot be read.
std::optional<BuildCacheIndex> read_build_cache(RegistryClient& client, const Reference& ref,
                                                const BlobStore& store);

/// Pushes `index` to `ref`: each layer blob that is in `store` (the others
/// must already be in ref's repository: kept from the cache there before),
/// the config, then the manifest. Returns the manifest's digest.
Digest write_build_cache(RegistryClient& client, const Reference& ref, const BuildCacheIndex& index,
                         const BlobStore& store, int jobs, std::uint64_t chunk_size);

}  // namespace dockless
