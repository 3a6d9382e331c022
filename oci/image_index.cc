#include "oci/image_index.h"

#include "oci/error.h"

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
  auto manifests = doc.FindMember("manifests");
  if (manifests != doc.MemberEnd() && !manifests->value.IsNull()) {
    if (!manifests->value.IsArray())
      throw Error("invalid image index: \"manifests\" must be an array");
    int i = 0;
    for (const auto& m : manifests->value.GetArray())
      idx.manifests.push_back(Descriptor::from_json(m, "image index entry " + std::to_string(++i)));
  }
  auto subject = doc.FindMember("subject");
  if (subject != doc.MemberEnd() && !subject->value.IsNull())
    idx.subject = Descriptor::from_json(subject->value, "image index subject");
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
  json::write_key(w, "manifests");
  w.StartArray();
  for (const auto& m : manifests) m.write(w);
  w.EndArray();
  if (subject) {
    json::write_key(w, "subject");
    subject->write(w);
  }
  if (!annotations.empty()) {
    json::write_key(w, "annotations");
    json::write_string_map(w, annotations);
  }
  json::write_unknown(w, unknown);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace dockless
