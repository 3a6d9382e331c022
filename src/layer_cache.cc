#include "src/layer_cache.h"

#include "oci/error.h"
#include "oci/file_util.h"
#include "oci/json_util.h"

namespace dockless {

LayerCache::LayerCache(std::filesystem::path dir, const BlobStore& store)
    : dir_(std::move(dir)), store_(store) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw Error("cannot create " + dir_.string() + ": " + ec.message());
}

std::optional<LayerBlob> LayerCache::find(const std::string& key) const {
  std::string text;
  try {
    text = read_file(dir_ / (key + ".json"));
  } catch (const Error&) {
    return std::nullopt;
  }
  try {
    rapidjson::Document doc = json::parse(text, "layer cache entry");
    if (!doc.IsObject()) return std::nullopt;
    LayerBlob l;
    l.descriptor.media_type = json::require_string(doc, "mediaType", "layer cache entry");
    l.descriptor.digest = Digest::parse(json::require_string(doc, "digest", "layer cache entry"));
    l.descriptor.size = json::get_int(doc, "size", "layer cache entry").value_or(-1);
    l.diff_id = Digest::parse(json::require_string(doc, "diffID", "layer cache entry"));
    l.uncompressed_size = static_cast<std::uint64_t>(
        json::get_int(doc, "uncompressedSize", "layer cache entry").value_or(0));
    if (l.descriptor.size < 0 || !store_.contains(l.descriptor.digest) ||
        store_.size_of(l.descriptor.digest) != static_cast<std::uint64_t>(l.descriptor.size))
      return std::nullopt;
    return l;
  } catch (const Error&) {
    return std::nullopt;  // a damaged entry is a miss, never a failure
  }
}

void LayerCache::put(const std::string& key, const LayerBlob& layer) const {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  json::write_string_member(w, "mediaType", layer.descriptor.media_type);
  json::write_string_member(w, "digest", layer.descriptor.digest.str());
  json::write_key(w, "size");
  w.Int64(layer.descriptor.size);
  json::write_string_member(w, "diffID", layer.diff_id.str());
  json::write_key(w, "uncompressedSize");
  w.Uint64(layer.uncompressed_size);
  w.EndObject();
  write_file_atomic(dir_ / (key + ".json"), std::string_view(buf.GetString(), buf.GetSize()));
}

}  // namespace dockless
