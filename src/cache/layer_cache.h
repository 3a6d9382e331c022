// The build cache's index of finished layers: cache key -> the layer(s) it
// produced (one, or the several parts of the uv cache), stored as small JSON
// files under <cache>/layers/. An entry counts only while all its blobs are
// in the store. Finding or storing an entry marks it and its blobs used, for
// `dockless cache prune --keep-days`.
#pragma once

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "layers/layer_writer.h"
#include "oci/blob_store.h"
#include "oci/json_util.h"

namespace dockless {

/// One layer of a cache entry.
struct CachedLayer {
  std::string name;             ///< shown in history and reports ("venv vllm")
  LayerBlob blob;
  std::set<std::string> users;  ///< uv cache parts: the environments using it
};

/// Entry JSON <-> layers (shared with the registry cache manifest): an array
/// of {name, mediaType, digest, size, diffID, uncompressedSize, users}.
/// Throws Error on anything malformed.
std::vector<CachedLayer> cached_layers_from_json(const rapidjson::Value& layers, const std::string& what);
void write_cached_layers(json::Writer& w, const std::vector<CachedLayer>& layers);

class LayerCache {
 public:
  LayerCache(std::filesystem::path dir, const BlobStore& store);

  std::optional<std::vector<CachedLayer>> find(const std::string& key) const;
  /// Records key -> layers atomically (their blobs must be stored already).
  void put(const std::string& key, const std::vector<CachedLayer>& layers) const;

 private:
  std::filesystem::path dir_;
  const BlobStore& store_;
};

}  // namespace dockless
