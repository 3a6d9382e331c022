// An image manifest (OCI or Docker schema2): config + ordered layers.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/descriptor.h"

namespace dockless {

/// The most layers a manifest may list. Real images have tens (overlay
/// mounts stop near 128); a 4 MiB manifest could list some 30,000, each a
/// request and an unpack before anything fails. 10,000 leaves room for any
/// artifact and refuses such a manifest before the first blob is fetched.
inline constexpr std::size_t kMaxLayers = 10000;

struct Manifest {
  int schema_version = 2;
  std::string media_type;  ///< may be empty in old OCI manifests
  std::string artifact_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;
  json::UnknownFields unknown;

  /// Throws Error on invalid JSON, a missing field or a bad digest.
  static Manifest parse(std::string_view text);
  /// Compact, byte-stable JSON: the same model always gives the same bytes.
  std::string to_json() const;
};

}  // namespace dockless
