// Several platforms in one build (--platform linux/amd64,linux/arm64 or
// image.platforms): one PlatformBuild per platform, one after another, each
// from the base's image for that platform; then one OCI image index of their
// manifests, written to every output and pushed under every tag.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "oci/descriptor.h"
#include "oci/digest.h"
#include "oci/image_index.h"
#include "oci/platform.h"
#include "src/build/build_command.h"

namespace dockless {

/// The platforms a build makes: --platform (a comma list) wins, then
/// image.platforms, then image.platform, then this machine's. A malformed or
/// repeated entry of --platform is a UsageError.
std::vector<Platform> requested_platforms(const std::string& option, const std::string& spec_platform,
                                          const std::vector<std::string>& spec_platforms);

/// An OCI image index of `images` (each manifest's descriptor with its platform), in that order.
ImageIndex platform_index(const std::vector<std::pair<Platform, Descriptor>>& images);

/// A registry cache reference for one platform of a multi-platform build:
/// its tag gets "-OS-ARCH[-VARIANT]" (each platform's cache is its own
/// artifact, so neither replaces the other's entries).
std::string platform_cache_ref(const std::string& ref, const Platform& platform);

/// Builds every platform asked for; one platform is exactly a single build
/// (a manifest), several an index. Returns the digest of what was built.
Digest run_platform_builds(const BuildOptions& options);

}  // namespace dockless
