// `dockless import ROOTFS --output oci:DIR[:TAG]`: a root filesystem (a
// directory or a tar) as a one-layer image.
#pragma once

#include <optional>
#include <string>

#include "layers/compression.h"
#include "oci/oci_layout.h"
#include "oci/platform.h"
#include "src/build/image_settings.h"

namespace dockless {

struct ImportOptions {
  std::string rootfs;
  LayoutRef output;
  ImageSettings settings;
  Platform platform;
  CompressionOptions compression;
  /// Owner for every entry; nullopt keeps the files' own (numeric) owners.
  std::optional<std::pair<uid_t, gid_t>> chown;
};

/// Imports and tags the image; returns the manifest digest.
Digest run_import(const ImportOptions& options);

}  // namespace dockless
