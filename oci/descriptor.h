// An OCI content descriptor: what a manifest, index or layout says about a blob.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
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

/// The descriptors of the array member `key` ("layers", "manifests"); absent
/// or null gives none. `what` names the document ("manifest"), `item` each
/// entry ("manifest layer" -> "manifest layer 3") in errors.
std::vector<Descriptor> descriptors_from_json(const rapidjson::Value& doc, const char* key,
                                              const std::string& what, const std::string& item);

/// An optional descriptor member ("subject"); `what` names it in errors.
std::optional<Descriptor> optional_descriptor(const rapidjson::Value& doc, const char* key,
                                              const std::string& what);

/// Writes "key": [descriptors].
void write_descriptors(json::Writer& w, std::string_view key, const std::vector<Descriptor>& list);

/// Writes the optional "subject" and "annotations" that manifests and
/// indexes both end with.
void write_subject_and_annotations(json::Writer& w, const std::optional<Descriptor>& subject,
                                   const std::map<std::string, std::string>& annotations);

}  // namespace dockless
