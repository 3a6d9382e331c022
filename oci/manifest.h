// An image manifest (OCI or Docker schema2): config + ordered layers.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/descriptor.h"

namespace dockless {

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
