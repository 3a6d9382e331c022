#include "oci/image_index.h"

#include "base/error.h"

namespace dockless {

ImageIndex ImageIndex::parse(std::string_view text) {
  rapidjson::Document doc = json::parse(text, "image index");
  json::require_object(doc, "image index");
  ImageIndex idx;
  auto version = json::get_int(doc, "schemaVersion", "image index");
  if (!version || *version != 2)
    throw Error("unsupported image index: schemaVersion must be 2");
  idx.media_type = json::get_string(doc, "mediaType", "image index").value_or("");
  idx.artifact_type = json::get_string(doc, "artifactType", "image index").value_or("");
  idx.manifests = descriptors_from_json(doc, "manifests", "image index", "image index entry");
  idx.subject = optional_descriptor(doc, "subject", "image index subject");
  idx.annotations = json::get_string_map(doc, "annotations", "image index");
  idx.unknown = json::collect_unknown(doc, {"schemaVersion", "mediaType", "artifactType",
                                            "manifests", "subject", "annotations"});
  return idx;
}

std::string ImageIndex::to_json() const {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  json::write_key(w, "schemaVersion");
  w.Int(schema_version);
  if (!media_type.empty()) json::write_string_member(w, "mediaType", media_type);
  if (!artifact_type.empty()) json::write_string_member(w, "artifactType", artifact_type);
  write_descriptors(w, "manifests", manifests);
  write_subject_and_annotations(w, subject, annotations);
  json::write_unknown(w, unknown);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace dockless
