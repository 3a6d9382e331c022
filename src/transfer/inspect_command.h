// `dockless inspect oci:DIR[:TAG]`: the manifest and config of an image.
#pragma once

#include <string>

#include "oci/oci_layout.h"
#include "oci/platform.h"

namespace dockless {

enum class InspectFormat { kManifest, kConfig, kBoth };

struct InspectOptions {
  LayoutRef image;
  InspectFormat format = InspectFormat::kBoth;
  Platform platform;  ///< picks a manifest when the tag names an index
};

/// Pretty JSON of what was asked for.
std::string run_inspect(const InspectOptions& options);

}  // namespace dockless
