#include "oci/content_graph.h"

#include <fcntl.h>

#include <set>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/image_index.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace dockless {

namespace {

bool is_foreign(const Descriptor& l) {
  return !l.urls.empty() && l.media_type.find("foreign") != std::string::npos;
}

struct Walker {
  const BlobStore& store;
  const std::string& what;
  ContentGraph graph;
  std::set<std::string> seen_manifests, seen_blobs;

  void visit(const Descriptor& d, int depth) {
    if (!seen_manifests.insert(d.digest.str()).second) return;
    if (depth > kMaxGraphDepth)
      throw Error(what + ": indexes nest deeper than " + std::to_string(kMaxGraphDepth) + " levels");
    std::string bytes = read_manifest(store, d, what);
    for (const auto& c : children_of(d, bytes)) {
      if (is_manifest_like(c.media_type)) {
        visit(c, depth + 1);
      } else if (seen_blobs.insert(c.digest.str()).second) {
        graph.blobs.push_back(c);
      }
    }
    graph.manifests.push_back(d);
  }
};

}  // namespace

bool is_manifest_like(const std::string& media_type) {
  return media_type::is_manifest(media_type) || media_type::is_index(media_type);
}

std::vector<Descriptor> children_of(const Descriptor& d, const std::string& bytes) {
  const std::string what = "manifest " + d.digest.str();
  rapidjson::Document doc = json::parse(bytes, what);
  json::require_object(doc, what);
  std::string declared = json::get_string(doc, "mediaType", what).value_or("");
  if (!declared.empty() && !d.media_type.empty() && declared != d.media_type)
    throw Error(what + " says mediaType " + declared + " but is listed as " + d.media_type);
  bool index = media_type::is_index(d.media_type.empty() ? declared : d.media_type) ||
               (declared.empty() && doc.HasMember("manifests"));
  if (index) {
    std::vector<Descriptor> out = ImageIndex::parse(bytes).manifests;
    for (const auto& c : out)
      if (!is_manifest_like(c.media_type))
        throw Error(what + " lists " + c.digest.str() + " of media type \"" + c.media_type +
                    "\", which is neither a manifest nor an index");
    return out;
  }
  Manifest m = Manifest::parse(bytes);
  std::vector<Descriptor> out{m.config};
  for (const auto& l : m.layers)
    if (!is_foreign(l)) out.push_back(l);
  // A manifest's blobs are blobs, whatever their media type says.
  for (auto& c : out)
    if (is_manifest_like(c.media_type)) c.media_type = "application/octet-stream";
  return out;
}

ContentGraph content_graph(const BlobStore& store, const Descriptor& top, const std::string& what) {
  Walker w{store, what, {}, {}, {}};
  w.visit(top, 0);
  return std::move(w.graph);
}

std::string read_manifest(const BlobStore& store, const Descriptor& d, const std::string& what) {
  if (!store.contains(d.digest))
    throw Error(what + ": manifest " + d.digest.str() + " is missing");
  std::uint64_t size = store.size_of(d.digest);
  if (size > kMaxManifestBytes)
    throw Error(what + ": manifest " + d.digest.str() + " is " + std::to_string(size) +
                " bytes, more than the " + std::to_string(kMaxManifestBytes) + " allowed");
  if (d.size != 0 && size != static_cast<std::uint64_t>(d.size))
    throw Error(what + ": manifest " + d.digest.str() + " is " + std::to_string(size) +
                " bytes, its descriptor says " + std::to_string(d.size));
  try {
    return store.read(d.digest);
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
}

void verify_blob(const BlobStore& store, const Descriptor& d, const std::string& what) {
  std::filesystem::path p = store.path_of(d.digest);
  UniqueFd in(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) throw Error(what + ": blob " + d.digest.str() + " is missing");
  Sha256 h;
  std::uint64_t size = 0;
  char buf[1 << 16];
  for (;;) {
    std::size_t n = read_some(in.get(), buf, sizeof buf, p.string());
    if (n == 0) break;
    h.update(buf, n);
    size += n;
  }
  Digest actual = h.finish();
  if (actual != d.digest)
    throw Error(what + ": blob " + d.digest.str() + " is corrupt: its content has digest " +
                actual.str());
  if (size != static_cast<std::uint64_t>(d.size))
    throw Error(what + ": blob " + d.digest.str() + " is " + std::to_string(size) +
                " bytes, its descriptor says " + std::to_string(d.size));
}

bool is_image_manifest(const std::string& bytes) {
  Manifest m = Manifest::parse(bytes);
  if (!m.artifact_type.empty()) return false;
  if (m.config.media_type != media_type::kOciConfig && m.config.media_type != media_type::kDockerConfig)
    return false;
  for (const auto& l : m.layers)
    if (!media_type::is_layer(l.media_type)) return false;
  return true;
}

}  // namespace dockless
