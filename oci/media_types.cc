#include "oci/media_types.h"

namespace dockless::media_type {

bool is_manifest(std::string_view mt) { return mt == kOciManifest || mt == kDockerManifest; }

bool is_index(std::string_view mt) { return mt == kOciIndex || mt == kDockerManifestList; }

bool is_layer(std::string_view mt) { return layer_compression(mt) != LayerCompression::kUnknown; }

LayerCompression layer_compression(std::string_view mt) {
  if (mt == kOciLayerTar || mt == "application/vnd.oci.image.layer.nondistributable.v1.tar")
    return LayerCompression::kNone;
  if (mt == kOciLayerGzip || mt == kDockerLayerGzip || mt == kDockerLayerForeignGzip ||
      mt == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
    return LayerCompression::kGzip;
  if (mt == kOciLayerZstd || mt == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
    return LayerCompression::kZstd;
  return LayerCompression::kUnknown;
}

}  // namespace dockless::media_type
