// Assembles an image (config + manifest) from base content and new layers,
// and stores it in a blob store.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "layers/layer_writer.h"
#include "oci/blob_store.h"
#include "oci/descriptor.h"
#include "oci/image_config.h"
#include "oci/platform.h"

namespace dockless {

class ImageBuilder {
 public:
  /// Starts from a base: its config and its layer descriptors (may be empty).
  ImageBuilder(ImageConfig base_config, std::vector<Descriptor> base_layers);

  /// A new image for `platform` with nothing in it.
  static ImageBuilder from_scratch(const Platform& platform, const std::string& created);

  /// Appends a layer and its history entry ("dockless: venv NAME").
  void add_layer(const LayerBlob& layer, const std::string& created_by);

  ImageConfig& config() { return config_; }
  const ImageConfig& config() const { return config_; }

  /// Stores the config and the manifest in `store` (every layer must be
  /// there already, or be one that `elsewhere` says lives in a registry)
  /// and returns the manifest's descriptor, with platform.
  /// `config_ready`, when set, gets the config's descriptor and bytes
  /// before they are stored (an upload can start from memory).
  Descriptor store(const BlobStore& store, const std::function<bool(const Digest&)>& elsewhere = nullptr,
                   const std::function<void(const Descriptor&, std::shared_ptr<const std::string>)>& config_ready =
                       nullptr) const;

  /// Annotations for the manifest (org.opencontainers.image.base.name, ...).
  std::map<std::string, std::string>& annotations() { return annotations_; }

 private:
  ImageConfig config_;
  std::vector<Descriptor> layers_;
  std::map<std::string, std::string> annotations_;
};

}  // namespace dockless
