#include "src/build/image_builder.h"

#include "base/error.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace dockless {

ImageBuilder::ImageBuilder(ImageConfig base_config, std::vector<Descriptor> base_layers)
    : config_(std::move(base_config)), layers_(std::move(base_layers)) {}

ImageBuilder ImageBuilder::from_scratch(const Platform& platform, const std::string& created) {
  ImageConfig c;
  c.created = created;
  c.os = platform.os;
  c.architecture = platform.architecture;
  c.variant = platform.variant;
  return ImageBuilder(std::move(c), {});
}

void ImageBuilder::add_layer(const LayerBlob& layer, const std::string& created_by) {
  layers_.push_back(layer.descriptor);
  config_.diff_ids.push_back(layer.diff_id);
  HistoryEntry h;
  h.created = config_.created;
  h.created_by = created_by;
  config_.history.push_back(std::move(h));
}

Descriptor ImageBuilder::store(
    const BlobStore& store, const std::function<bool(const Digest&)>& elsewhere,
    const std::function<void(const Descriptor&, std::shared_ptr<const std::string>)>& config_ready) const {
  if (layers_.size() != config_.diff_ids.size())
    throw Error("image has " + std::to_string(layers_.size()) + " layers but " +
                std::to_string(config_.diff_ids.size()) + " diff_ids");
  for (const auto& l : layers_)
    if (!store.contains(l.digest) && !(elsewhere && elsewhere(l.digest)))
      throw Error("layer " + l.digest.str() + " is missing from " + store.root().string());

  auto config_json = std::make_shared<const std::string>(config_.to_json());
  Manifest m;
  m.media_type = std::string(media_type::kOciManifest);
  m.config.media_type = std::string(media_type::kOciConfig);
  m.config.size = static_cast<std::int64_t>(config_json->size());
  m.config.digest = sha256_of(*config_json);
  if (config_ready) config_ready(m.config, config_json);
  store.put(*config_json, m.config.digest);
  m.layers = layers_;
  m.annotations = annotations_;
  std::string manifest_json = m.to_json();

  Descriptor d;
  d.media_type = m.media_type;
  d.size = static_cast<std::int64_t>(manifest_json.size());
  d.digest = store.put(manifest_json);
  d.platform = Platform{config_.os, config_.architecture, config_.variant};
  return d;
}

}  // namespace dockless
