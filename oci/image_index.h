// An image index (OCI) or manifest list (Docker): manifests per platform; also
// the shape of an OCI layout's index.json.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/descriptor.h"

namespace dockless {

struct ImageIndex {
  int schema_version = 2;
  std::string media_type;
  std::string artifact_type;
  std::vector<Descriptor> manifests;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;
  json::UnknownFields unknown;

  static ImageIndex parse(std::string_view text);
  std::string to_json() const;
};

}  // namespace dockless
