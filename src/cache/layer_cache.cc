#include "src/cache/layer_cache.h"

#include "base/error.h"
#include "base/file_util.h"
#include "src/cache/last_used.h"

namespace dockless {

void write_cached_layers(json::Writer& w, const std::vector<CachedLayer>& layers) {
  w.StartArray();
  for (const auto& l : layers) {
    w.StartObject();
    json::write_string_member(w, "name", l.name);
    json::write_string_member(w, "mediaType", l.blob.descriptor.media_type);
    json::write_string_member(w, "digest", l.blob.descriptor.digest.str());
    json::write_key(w, "size");
    w.Int64(l.blob.descriptor.size);
    json::write_string_member(w, "diffID", l.blob.diff_id.str());
    json::write_key(w, "uncompressedSize");
    w.Uint64(l.blob.uncompressed_size);
    if (!l.users.empty()) {
      json::write_key(w, "users");
      json::write_string_array(w, std::vector<std::string>(l.users.begin(), l.users.end()));
    }
    w.EndObject();
  }
  w.EndArray();
}

std::vector<CachedLayer> cached_layers_from_json(const rapidjson::Value& layers, const std::string& what) {
  if (!layers.IsArray() || layers.Empty()) throw Error(what + ": \"layers\" must be a non-empty array");
  std::vector<CachedLayer> out;
  for (const auto& v : layers.GetArray()) {
    json::require_object(v, what);
    CachedLayer l;
    l.name = json::get_string(v, "name", what).value_or("");
    l.blob.descriptor.media_type = json::require_string(v, "mediaType", what);
    l.blob.descriptor.digest = Digest::parse(json::require_string(v, "digest", what));
    l.blob.descriptor.size = json::get_int(v, "size", what).value_or(-1);
    if (l.blob.descriptor.size < 0) throw Error(what + ": a layer has no size");
    l.blob.diff_id = Digest::parse(json::require_string(v, "diffID", what));
    l.blob.uncompressed_size = static_cast<std::uint64_t>(json::get_int(v, "uncompressedSize", what).value_or(0));
    for (const auto& u : json::get_string_array(v, "users", what).value_or(std::vector<std::string>{}))
      l.users.insert(u);
    out.push_back(std::move(l));
  }
  return out;
}

LayerCache::LayerCache(std::filesystem::path dir, const BlobStore& store)
    : dir_(std::move(dir)), store_(store) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw Error("cannot create " + dir_.string() + ": " + ec.message());
}

std::optional<std::vector<CachedLayer>> LayerCache::find(const std::string& key) const {
  std::filesystem::path file = dir_ / (key + ".json");
  std::string text;
  try {
    text = read_file(file);
  } catch (const Error&) {
    return std::nullopt;
  }
  try {
    rapidjson::Document doc = json::parse(text, "layer cache entry");
    json::require_object(doc, "layer cache entry");
    if (!doc.HasMember("layers")) return std::nullopt;
    std::vector<CachedLayer> layers = cached_layers_from_json(doc["layers"], "layer cache entry");
    for (const auto& l : layers) {
      const Descriptor& d = l.blob.descriptor;
      if (!store_.contains(d.digest) || store_.size_of(d.digest) != static_cast<std::uint64_t>(d.size))
        return std::nullopt;
    }
    mark_used(file);
    for (const auto& l : layers) mark_used(store_.path_of(l.blob.descriptor.digest));
    return layers;
  } catch (const Error&) {
    return std::nullopt;  // a damaged entry is a miss, never a failure
  }
}

void LayerCache::put(const std::string& key, const std::vector<CachedLayer>& layers) const {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  json::write_key(w, "layers");
  write_cached_layers(w, layers);
  w.EndObject();
  write_file_atomic(dir_ / (key + ".json"), std::string_view(buf.GetString(), buf.GetSize()));
}

}  // namespace dockless
