#include "oci/descriptor.h"

#include "base/error.h"

namespace dockless {

namespace {
constexpr const char* kRefName = "org.opencontainers.image.ref.name";
}

Descriptor Descriptor::from_json(const rapidjson::Value& v, const std::string& what) {
  json::require_object(v, what);
  Descriptor d;
  d.media_type = json::require_string(v, "mediaType", what);
  try {
    d.digest = Digest::parse(json::require_string(v, "digest", what));
  } catch (const Error& e) {
    throw Error("invalid " + what + ": field \"digest\": " + e.what());
  }
  auto size = json::get_int(v, "size", what);
  if (!size) throw Error("invalid " + what + ": missing field \"size\"");
  if (*size < 0) throw Error("invalid " + what + ": negative size");
  d.size = *size;
  d.urls = json::get_string_array(v, "urls", what).value_or(std::vector<std::string>{});
  d.annotations = json::get_string_map(v, "annotations", what);
  d.artifact_type = json::get_string(v, "artifactType", what).value_or("");
  auto p = v.FindMember("platform");
  if (p != v.MemberEnd() && !p->value.IsNull()) {
    json::require_object(p->value, what + " platform");
    Platform plat;
    plat.os = json::require_string(p->value, "os", what + " platform");
    plat.architecture = json::require_string(p->value, "architecture", what + " platform");
    plat.variant = json::get_string(p->value, "variant", what + " platform").value_or("");
    d.platform = plat;
    d.platform_unknown = json::collect_unknown(p->value, {"os", "architecture", "variant"});
  }
  d.unknown = json::collect_unknown(
      v, {"mediaType", "digest", "size", "urls", "annotations", "platform", "artifactType"});
  return d;
}

void Descriptor::write(json::Writer& w) const {
  w.StartObject();
  json::write_string_member(w, "mediaType", media_type);
  json::write_string_member(w, "digest", digest.str());
  json::write_key(w, "size");
  w.Int64(size);
  if (!urls.empty()) {
    json::write_key(w, "urls");
    json::write_string_array(w, urls);
  }
  if (!annotations.empty()) {
    json::write_key(w, "annotations");
    json::write_string_map(w, annotations);
  }
  if (platform) {
    json::write_key(w, "platform");
    w.StartObject();
    json::write_string_member(w, "architecture", platform->architecture);
    json::write_string_member(w, "os", platform->os);
    if (!platform->variant.empty()) json::write_string_member(w, "variant", platform->variant);
    json::write_unknown(w, platform_unknown);
    w.EndObject();
  }
  if (!artifact_type.empty()) json::write_string_member(w, "artifactType", artifact_type);
  json::write_unknown(w, unknown);
  w.EndObject();
}

std::string Descriptor::ref_name() const {
  auto it = annotations.find(kRefName);
  return it == annotations.end() ? "" : it->second;
}

std::vector<Descriptor> descriptors_from_json(const rapidjson::Value& doc, const char* key,
                                              const std::string& what, const std::string& item) {
  std::vector<Descriptor> out;
  auto list = doc.FindMember(key);
  if (list == doc.MemberEnd() || list->value.IsNull()) return out;
  if (!list->value.IsArray())
    throw Error("invalid " + what + ": \"" + key + "\" must be an array");
  int i = 0;
  for (const auto& d : list->value.GetArray())
    out.push_back(Descriptor::from_json(d, item + " " + std::to_string(++i)));
  return out;
}

std::optional<Descriptor> optional_descriptor(const rapidjson::Value& doc, const char* key,
                                              const std::string& what) {
  auto member = doc.FindMember(key);
  if (member == doc.MemberEnd() || member->value.IsNull()) return std::nullopt;
  return Descriptor::from_json(member->value, what);
}

void write_descriptors(json::Writer& w, std::string_view key, const std::vector<Descriptor>& list) {
  json::write_key(w, key);
  w.StartArray();
  for (const auto& d : list) d.write(w);
  w.EndArray();
}

void write_subject_and_annotations(json::Writer& w, const std::optional<Descriptor>& subject,
                                   const std::map<std::string, std::string>& annotations) {
  if (subject) {
    json::write_key(w, "subject");
    subject->write(w);
  }
  if (!annotations.empty()) {
    json::write_key(w, "annotations");
    json::write_string_map(w, annotations);
  }
}

}  // namespace dockless
