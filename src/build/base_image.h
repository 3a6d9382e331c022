// The base image of a build: its manifest, config and layers brought into
// the build's store, and, when uv runs, its root filesystem.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "layers/layer_writer.h"
#include "oci/blob_store.h"
#include "oci/image_config.h"
#include "oci/manifest.h"
#include "oci/platform.h"
#include "src/transfer/transfer.h"

namespace dockless {

struct BaseImage {
  std::string name;  ///< as the annotation names it: the reference, or oci:DIR[:TAG]
  LocalImage image;  ///< its top descriptor and where it came from; store = the build's
  Manifest manifest;
  ImageConfig config;
  std::vector<LayerBlob> layers;
  bool layers_remote = false;  ///< its layers stay in the registry (push-only build)
};

/// Loads `base` (spec image.base) for `platform` into `store`. A build that
/// only pushes (`push_only`) leaves a registry base's layers there until uv
/// needs the root filesystem (the push mounts them).
BaseImage fetch_base_image(const std::string& base, const Platform& platform, bool push_only,
                           ImageTransfer& transfer, BlobStore& store);

/// The base's root filesystem, unpacked once per machine under
/// `cache_dir`/snapshots (fetching the layers a push-only build left in the
/// registry, unless the snapshot is made already), marked used.
std::filesystem::path base_rootfs(const BaseImage& base, const std::filesystem::path& cache_dir,
                                  ImageTransfer& transfer, BlobStore& store);

}  // namespace dockless
