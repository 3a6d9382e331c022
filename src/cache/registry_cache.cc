#include "src/cache/registry_cache.h"

#include <map>

#include "base/error.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "base/parallel.h"

namespace dockless {

BuildCacheIndex BuildCacheIndex::parse(std::string_view text) {
  const std::string what = "build cache index";
  rapidjson::Document doc = json::parse(text, what);
  json::require_object(doc, what);
  BuildCacheIndex index;
  index.platform = json::get_string(doc, "platform", what).value_or("");
  index.uv_version = json::get_string(doc, "uvVersion", what).value_or("");
  index.uv_cache_dir = json::get_string(doc, "uvCacheDir", what).value_or("");
  if (!doc.HasMember("entries") || !doc["entries"].IsArray()) throw Error(what + ": no \"entries\" array");
  for (const auto& v : doc["entries"].GetArray()) {
    json::require_object(v, what);
    BuildCacheEntry e;
    e.key = json::require_string(v, "key", what);
    e.slot = json::get_string(v, "slot", what).value_or("");
    if (!v.HasMember("layers")) throw Error(what + ": an entry has no layers");
    e.layers = cached_layers_from_json(v["layers"], what);
    index.entries.push_back(std::move(e));
  }
  return index;
}

std::string BuildCacheIndex::to_json() const {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  json::write_string_member(w, "platform", platform);
  json::write_string_member(w, "uvVersion", uv_version);
  json::write_string_member(w, "uvCacheDir", uv_cache_dir);
  json::write_key(w, "entries");
  w.StartArray();
  for (const auto& e : entries) {
    w.StartObject();
    json::write_string_member(w, "key", e.key);
    json::write_string_member(w, "slot", e.slot);
    json::write_key(w, "layers");
    write_cached_layers(w, e.layers);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

const BuildCacheEntry* BuildCacheIndex::find(const std::string& key) const {
  for (const auto& e : entries)
    if (e.key == key) return &e;
  return nullptr;
}

const BuildCacheEntry* BuildCacheIndex::find_slot(const std::string& slot) const {
  for (const auto& e : entries)
    if (e.slot == slot) return &e;
  return nullptr;
}

std::optional<BuildCacheIndex> read_build_cache(RegistryClient& client, const Reference& ref,
                                                const BlobStore& store) {
  std::optional<Descriptor> head = client.head_manifest(ref.repository, ref.manifest_ref());
  if (!head) return std::nullopt;
  ManifestData data = client.get_manifest(ref.repository, head->digest.str());
  if (!media_type::is_manifest(data.media_type))
    throw Error(ref.str() + " is not a dockless build cache (it is a " + data.media_type + ")");
  Manifest m = Manifest::parse(data.bytes);
  if (m.config.media_type != media_type::kBuildCache)
    throw Error(ref.str() + " is not a dockless build cache (its config is " + m.config.media_type +
                "); give --cache-from/--cache-to a ref of its own, not the image's");
  if (m.config.size > (16 << 20)) throw Error(ref.str() + ": build cache index larger than 16 MiB");
  client.fetch_blob(ref.repository, m.config, store);
  return BuildCacheIndex::parse(store.read(m.config.digest));
}

Digest write_build_cache(RegistryClient& client, const Reference& ref, const BuildCacheIndex& index,
                         const BlobStore& store, int jobs, std::uint64_t chunk_size) {
  std::map<std::string, Descriptor> blobs;  // by digest: each once, in a stable order
  for (const auto& e : index.entries)
    for (const auto& l : e.layers) blobs.emplace(l.blob.descriptor.digest.str(), l.blob.descriptor);
  std::vector<Descriptor> local;
  for (const auto& [digest, d] : blobs)
    if (store.contains(d.digest)) local.push_back(d);
  parallel_for_each(local, jobs, [&](const Descriptor& d) {
    client.push_blob(ref.repository, d, store.path_of(d.digest), "", chunk_size);
  });
  std::string config = index.to_json();
  Digest config_digest = store.put(config);
  Manifest m;
  m.media_type = std::string(media_type::kOciManifest);
  m.artifact_type = std::string(media_type::kBuildCache);
  m.config.media_type = std::string(media_type::kBuildCache);
  m.config.digest = config_digest;
  m.config.size = static_cast<std::int64_t>(config.size());
  client.push_blob(ref.repository, m.config, store.path_of(config_digest), "", 0);
  for (const auto& [digest, d] : blobs) m.layers.push_back(d);
  std::string target = ref.tag.empty() ? "latest" : ref.tag;
  return client.put_manifest(ref.repository, target, m.to_json(), m.media_type);
}

}  // namespace dockless
