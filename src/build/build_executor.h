// Runs a build as a list of steps: read the spec and source, fetch the
// base, find uv, plan (build_plan.h), make the environments the plan needs,
// write the layers no cache has, assemble the image, write the outputs.
// One executor builds one platform; multi_platform.h runs one per platform.
#pragma once

#include <memory>
#include <vector>

#include "oci/descriptor.h"
#include "oci/digest.h"
#include "oci/platform.h"
#include "src/build/build_command.h"
#include "src/transfer/image_location.h"

namespace dockless {

struct BuildState;

/// Where the image goes: --output locations and --tag references.
struct Destinations {
  std::vector<ImageLocation> outputs;
  std::vector<Reference> tags;
};

class PlatformBuild {
 public:
  explicit PlatformBuild(const BuildOptions& options);
  ~PlatformBuild();
  PlatformBuild(const PlatformBuild&) = delete;
  PlatformBuild& operator=(const PlatformBuild&) = delete;

  /// Checks the destinations, loads the source and spec; returns the
  /// platforms asked for (--platform list, image.platforms, image.platform,
  /// else this machine's).
  std::vector<Platform> prepare();
  const Destinations& destinations() const;
  /// Builds the image for `platform`, stored; returns its manifest (no outputs written).
  Descriptor build(const Platform& platform);
  /// A single-platform build's end: outputs, --cache-to, report, summary.
  Digest finish(const Descriptor& manifest);
  BuildState& state();
  /// Seconds since this build started.
  double seconds() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dockless
