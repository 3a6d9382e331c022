// The build cache's index of finished layers: cache key -> the layer blob
// (digest, diffID, size, media type), stored as small JSON files under
// <cache>/layers/. An entry counts only while its blob is in the store.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "layers/layer_writer.h"
#include "oci/blob_store.h"

namespace dockless {

class LayerCache {
 public:
  LayerCache(std::filesystem::path dir, const BlobStore& store);

  std::optional<LayerBlob> find(const std::string& key) const;
  /// Records key -> layer atomically (the blob must be stored already).
  void put(const std::string& key, const LayerBlob& layer) const;

 private:
  std::filesystem::path dir_;
  const BlobStore& store_;
};

}  // namespace dockless
