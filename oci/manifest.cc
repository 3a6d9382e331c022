#include "oci/manifest.h"

#include "base/error.h"

namespace dockless {

Manifest Manifest::parse(std::string_view text) {
  rapidjson::Document doc = json::parse(text, "manifest");
  json::require_object(doc, "manifest");
  Manifest m;
  auto version = json::get_int(doc, "schemaVersion", "manifest");
  if (!version || *version != 2)
    throw Error("unsupported manifest: schemaVersion must be 2");
  m.media_type = json::get_string(doc, "mediaType", "manifest").value_or("");
  m.artifact_type = json::get_string(doc, "artifactType", "manifest").value_or("");
  auto config = doc.FindMember("config");
  if (config == doc.MemberEnd()) throw Error("invalid manifest: missing field \"config\"");
  m.config = Descriptor::from_json(config->value, "manifest config");
  m.layers = descriptors_from_json(doc, "layers", "manifest", "manifest layer");
  if (m.layers.size() > kMaxLayers)
    throw Error("unsupported manifest: " + std::to_string(m.layers.size()) + " layers, more than the " +
                std::to_string(kMaxLayers) + " dockless accepts");
  m.subject = optional_descriptor(doc, "subject", "manifest subject");
  m.annotations = json::get_string_map(doc, "annotations", "manifest");
  m.unknown = json::collect_unknown(doc, {"schemaVersion", "mediaType", "artifactType", "config",
                                          "layers", "subject", "annotations"});
  return m;
}

std::string Manifest::to_json() const {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  json::write_key(w, "schemaVersion");
  w.Int(schema_version);
  if (!media_type.empty()) json::write_string_member(w, "mediaType", media_type);
  if (!artifact_type.empty()) json::write_string_member(w, "artifactType", artifact_type);
  json::write_key(w, "config");
  config.write(w);
  write_descriptors(w, "layers", layers);
  write_subject_and_annotations(w, subject, annotations);
  json::write_unknown(w, unknown);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace dockless
