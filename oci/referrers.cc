#include "oci/referrers.h"

#include "base/error.h"
#include "oci/image_index.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace dockless {

std::string referrers_tag(const Digest& subject) { return "sha256-" + subject.hex(); }

std::optional<Digest> subject_of(const std::string& bytes) {
  rapidjson::Document doc = json::parse(bytes, "manifest");
  json::require_object(doc, "manifest");
  std::optional<Descriptor> s = optional_descriptor(doc, "subject", "manifest subject");
  if (!s) return std::nullopt;
  return s->digest;
}

Descriptor referrer_descriptor(const std::string& bytes, const std::string& media_type) {
  Descriptor d;
  d.media_type = media_type;
  d.digest = sha256_of(bytes);
  d.size = static_cast<std::int64_t>(bytes.size());
  if (media_type::is_index(media_type)) {
    ImageIndex i = ImageIndex::parse(bytes);
    if (!i.subject) throw Error("index " + d.digest.str() + " has no subject");
    d.artifact_type = i.artifact_type;
    d.annotations = i.annotations;
  } else {
    Manifest m = Manifest::parse(bytes);
    if (!m.subject) throw Error("manifest " + d.digest.str() + " has no subject");
    d.artifact_type = m.artifact_type.empty() ? m.config.media_type : m.artifact_type;
    d.annotations = m.annotations;
  }
  return d;
}

void check_subject(const std::string& bytes, const Digest& d, const Digest& subject,
                   const std::string& what) {
  std::optional<Digest> s = subject_of(bytes);
  if (!s)
    throw Error(what + ": referrer " + d.str() + " of " + subject.str() + " has no subject");
  if (*s != subject)
    throw Error(what + ": referrer " + d.str() + " is listed for " + subject.str() +
                " but its subject is " + s->str());
}

std::vector<Descriptor> parse_referrers(const std::string& index_bytes, const std::string& what) {
  try {
    return ImageIndex::parse(index_bytes).manifests;
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
}

std::optional<std::string> add_referrer(const std::optional<std::string>& existing,
                                        const Descriptor& referrer) {
  ImageIndex index;
  if (existing) index = ImageIndex::parse(*existing);
  for (const auto& m : index.manifests)
    if (m.digest == referrer.digest) return std::nullopt;
  index.schema_version = 2;
  index.media_type = std::string(media_type::kOciIndex);
  index.manifests.push_back(referrer);
  return index.to_json();
}

}  // namespace dockless
