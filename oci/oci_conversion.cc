#include "oci/oci_conversion.h"

#include "oci/media_types.h"

namespace dockless {

namespace {
std::string oci_layer_type(const std::string& docker_type) {
  if (docker_type == media_type::kDockerLayerGzip) return std::string(media_type::kOciLayerGzip);
  if (docker_type == media_type::kDockerLayerForeignGzip)
    return "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
  if (docker_type == "application/vnd.docker.image.rootfs.diff.tar")
    return std::string(media_type::kOciLayerTar);
  return docker_type;  // OCI already (or unknown: kept)
}
}  // namespace

std::optional<Manifest> docker_manifest_to_oci(const Manifest& m) {
  if (m.media_type != media_type::kDockerManifest) return std::nullopt;
  Manifest out = m;
  out.media_type = std::string(media_type::kOciManifest);
  if (out.config.media_type == media_type::kDockerConfig)
    out.config.media_type = std::string(media_type::kOciConfig);
  for (auto& l : out.layers) l.media_type = oci_layer_type(l.media_type);
  return out;
}

std::optional<ImageIndex> docker_index_to_oci(const ImageIndex& index) {
  if (index.media_type != media_type::kDockerManifestList) return std::nullopt;
  ImageIndex out = index;
  out.media_type = std::string(media_type::kOciIndex);
  for (auto& m : out.manifests)
    if (m.media_type == media_type::kDockerManifest) m.media_type = std::string(media_type::kOciManifest);
  return out;
}

}  // namespace dockless
