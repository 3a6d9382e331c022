// Where a build finds finished layers, by cache key: the local layer cache,
// then each --cache-from in order; and where it leaves them for other
// machines (--cache-to). A layer found in a registry cache is downloaded
// only when an output needs its bytes; a build that only pushes leaves it
// in the registry, and the push mounts it.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "oci/blob_store.h"
#include "oci/reference.h"
#include "src/cache/layer_cache.h"
#include "src/cache/registry_cache.h"
#include "src/transfer/transfer.h"

namespace dockless {

class BuildCache {
 public:
  struct Remote {
    Reference ref;
    BuildCacheIndex index;
  };
  /// A registry cache's entry and the cache it is in.
  struct RemoteEntry {
    const Remote* cache;
    const BuildCacheEntry* entry;
  };

  /// `no_cache`: find() never finds (layers are still recorded).
  /// `download_hits`: a registry hit's blobs are brought into `store`.
  BuildCache(const LayerCache& local, const BlobStore& store, ImageTransfer& transfer, bool no_cache,
             bool download_hits);

  /// Reads each --cache-from; one that is absent or unusable is a note or a
  /// warning, never an error (the cache only saves time).
  void open(const std::vector<Reference>& from);

  /// The layers cached under `key`, and `origin` "hit" (local) or "remote".
  /// Only the layers `wanted` keeps are downloaded from a registry.
  std::optional<std::vector<CachedLayer>> find(const std::string& key, std::string& origin,
                                               const std::function<bool(const CachedLayer&)>& wanted = nullptr);
  /// Records key -> layers in the local cache.
  void put(const std::string& key, const std::vector<CachedLayer>& layers) const { local_.put(key, layers); }

  /// The registry caches' entries for `slot` that were made for the same
  /// platform, uv version and uv cache dir as `like`.
  std::vector<RemoteEntry> remote_slot(const std::string& slot, const BuildCacheIndex& like) const;
  /// Downloads the blobs of `layers` that the store lacks from `cache`.
  void download(const Remote& cache, const std::vector<CachedLayer>& layers) const;
  /// Brings the blobs of `layers` (hits of find()) into the store: those a
  /// registry cache holds are downloaded from it; local ones are there.
  void fetch(const std::vector<CachedLayer>& layers) const;

  /// Layers used by this build that are only in a registry: digest ->
  /// (registry, repository).
  std::map<std::string, std::pair<std::string, std::string>> remote_blobs() const;

  /// Writes `index` (this build's entries) to `to`, keeping the entries of
  /// other slots that the cache there had. Returns the cache's digest.
  Digest write(const Reference& to, BuildCacheIndex index);

 private:
  const LayerCache& local_;
  const BlobStore& store_;
  ImageTransfer& transfer_;
  bool no_cache_, download_hits_;
  std::vector<Remote> remotes_;
  std::map<std::string, const Remote*> remote_blobs_;  // digest -> the cache it is in
};

}  // namespace dockless
