// An OCI content descriptor: what a manifest, index or layout says about a blob.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "oci/digest.h"
#include "oci/json_util.h"
#include "oci/platform.h"

namespace dockless {

struct Descriptor {
  std::string media_type;
  Digest digest;
  std::int64_t size = 0;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
  json::UnknownFields platform_unknown;  ///< os.version, os.features, ...
  std::string artifact_type;
  json::UnknownFields unknown;

  /// Reads a descriptor object; `what` names it in errors ("manifest layer 3").
  static Descriptor from_json(const rapidjson::Value& v, const std::string& what);
  void write(json::Writer& w) const;

  /// The value of org.opencontainers.image.ref.name, or "".
  std::string ref_name() const;
};

}  // namespace dockless
