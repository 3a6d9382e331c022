#include "src/transfer/tag_contents.h"

#include "base/error.h"
#include "oci/image_index.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace dockless {

TagContents read_tag(RegistryClient& client, const Reference& ref, const BlobStore& store) {
  TagContents out;
  if (ref.tag.empty()) return out;
  auto bytes_of = [&](const Digest& d) {
    return store.contains(d) ? store.read(d) : client.get_manifest(ref.repository, d.str()).bytes;
  };
  auto add_image = [&](const Digest& d) {
    Manifest m = Manifest::parse(bytes_of(d));
    out.blobs.insert(m.config.digest.str());
    for (const auto& l : m.layers) out.blobs.insert(l.digest.str());
  };
  try {
    std::optional<Descriptor> head = client.head_manifest(ref.repository, ref.tag);
    if (!head) return out;
    out.digest = head->digest;
    if (media_type::is_manifest(head->media_type)) {
      add_image(head->digest);
    } else if (media_type::is_index(head->media_type)) {
      for (const auto& child : ImageIndex::parse(bytes_of(head->digest)).manifests)
        if (media_type::is_manifest(child.media_type)) add_image(child.digest);
    }
  } catch (const Error&) {
    out = TagContents{};
  }
  return out;
}

}  // namespace dockless
