// ImageTransfer's destinations: an OCI layout, a docker-archive, a
// registry (declared in transfer.h).
#include <optional>
#include <set>

#include "base/error.h"
#include "base/parallel.h"
#include "layers/docker_archive.h"
#include "oci/content_graph.h"
#include "oci/image_config.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/oci_conversion.h"
#include "src/transfer/blob_stream.h"
#include "src/transfer/tag_contents.h"
#include "src/transfer/transfer.h"

namespace dockless {

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

Digest ImageTransfer::store(const LocalImage& image, const ImageLocation& dst,
                            const std::string& default_tag) {
  if (dst.is_layout()) return store_layout(image, dst.layout());
  if (dst.is_archive()) return store_archive(image, dst.archive(), default_tag);
  return store_registry(image, dst.reference());
}

/// Docker schema2 manifests become OCI ones: readers of an OCI layout
/// (skopeo, podman, umoci) take nothing else there. Returns the new top.
Descriptor ImageTransfer::store_docker_in_layout(const LocalImage& image, const OciLayout& layout) {
  const BlobStore& dst = layout.blobs();
  auto copy_blob = [&](const Digest& d) {
    if (image.store->root() != dst.root()) dst.import_from(*image.store, d);
    else if (!dst.contains(d)) throw Error("blob " + d.str() + " is missing");
  };
  auto store_manifest = [&](Descriptor m) {
    for (const auto& b : manifest_blobs(*image.store, m)) copy_blob(b.digest);
    Manifest parsed = Manifest::parse(image.store->read(m.digest));
    if (auto oci = docker_manifest_to_oci(parsed)) {
      std::string bytes = oci->to_json();
      m.digest = dst.put(bytes);
      m.size = static_cast<std::int64_t>(bytes.size());
      m.media_type = oci->media_type;
    } else {
      copy_blob(m.digest);
    }
    return m;
  };
  Descriptor top = image.top;
  if (media_type::is_index(top.media_type)) {
    const ImageIndex original = ImageIndex::parse(image.store->read(top.digest));
    ImageIndex out = docker_index_to_oci(original).value_or(original);
    bool changed = out.media_type != original.media_type;
    for (std::size_t i = 0; i < out.manifests.size(); ++i) {
      if (!media_type::is_manifest(out.manifests[i].media_type)) continue;
      out.manifests[i] = store_manifest(original.manifests[i]);
      changed = changed || out.manifests[i].digest != original.manifests[i].digest;
    }
    if (changed) {
      std::string bytes = out.to_json();
      top.digest = dst.put(bytes);
      top.size = static_cast<std::int64_t>(bytes.size());
      top.media_type = out.media_type;
    } else {
      copy_blob(top.digest);
    }
  } else {
    top = store_manifest(top);
  }
  return top;
}

void ImageTransfer::copy_into_layout(const LocalImage& image, const OciLayout& layout) const {
  const BlobStore& dst = layout.blobs();
  ContentGraph g = content_graph(*image.store, image.top, "oci:" + layout.dir().string());
  for (const auto* list : {&g.blobs, &g.manifests})
    for (const auto& d : *list) {
      if (image.store->root() != dst.root()) dst.import_from(*image.store, d.digest);
      else if (!dst.contains(d.digest)) throw Error("blob " + d.digest.str() + " is missing");
    }
}

/// The platform of an image manifest, from its config; nullopt for an
/// artifact (its config is not an image config).
static std::optional<Platform> platform_of(const BlobStore& store, const Descriptor& d) {
  if (!media_type::is_manifest(d.media_type)) return std::nullopt;
  std::string bytes = store.read(d.digest);
  if (!is_image_manifest(bytes)) return std::nullopt;
  ImageConfig c = ImageConfig::parse(store.read(Manifest::parse(bytes).config.digest));
  return Platform{c.os, c.architecture, c.variant};
}

Digest ImageTransfer::store_layout(const LocalImage& image, const LayoutRef& ref) {
  OciLayout layout = OciLayout::open_or_create(ref.dir);
  Descriptor top = image.top;
  if (top.media_type == media_type::kDockerManifest ||
      top.media_type == media_type::kDockerManifestList) {
    top = store_docker_in_layout(image, layout);
  } else {
    copy_into_layout(image, layout);  // bytes as they are: the digest stays
  }
  top.annotations.clear();
  if (!top.platform) top.platform = platform_of(layout.blobs(), top);
  layout.set_tag(top, ref.tag.empty() ? "latest" : ref.tag);
  return top.digest;
}

Digest ImageTransfer::store_archive(const LocalImage& image, const DockerArchiveRef& ref,
                                    const std::string& default_tag) {
  Descriptor manifest = image.top;
  if (media_type::is_index(manifest.media_type))
    manifest = select_platform(ImageIndex::parse(image.store->read(manifest.digest)), ref.str());
  if (!ref.ref.empty() && ref.ref[0] == '@')
    throw UsageError(ref.str() + ": @N selects an image when reading; name the image with a tag");
  std::vector<std::string> tags;
  if (!ref.ref.empty()) tags.push_back(ref.ref);
  else if (!default_tag.empty()) tags.push_back(default_tag);
  progress_.note("writing " + ref.str());
  write_docker_archive(ref.file, *image.store, manifest, tags);
  return manifest.digest;
}

Digest ImageTransfer::store_registry(const LocalImage& image, const Reference& ref) {
  return push_graph(image, ref, nullptr);
}

bool ImageTransfer::copy_remote_blob(RegistryClient& c, const LocalImage& image,
                                     const Reference& ref, const Descriptor& b,
                                     Clock::time_point start) {
  const std::string id = b.digest.str();
  // Left in a registry (a same-registry copy, a build's cache hit):
  // mount it, and download it only when the registry will not.
  std::string src_registry = image.source_registry, src_repo = image.source_repo;
  if (auto it = image.remote_blobs.find(id); it != image.remote_blobs.end())
    std::tie(src_registry, src_repo) = it->second;
  if (c.blob_exists(ref.repository, b.digest)) {
    progress_.finish(id, "already in registry");
    record("push", b, "skipped", start);
    return true;
  }
  std::string from = src_registry == ref.registry && src_repo != ref.repository ? src_repo : "";
  if (!from.empty() && c.mount_blob(ref.repository, b.digest, from)) {
    progress_.finish(id, "mounted from " + from);
    record("push", b, "mounted", start);
    return true;
  }
  if (src_registry.empty())
    throw Error("blob " + b.digest.str() + " is neither here nor in a source registry");
  if (opt_.chunk_size == 0) {
    // Straight from registry to registry: nothing on disk, memory bounded.
    stream_blob_between(*clients_.at(src_registry), src_repo, c, ref.repository, b,
                        [&](std::uint64_t done) { progress_.update(id, done); });
    progress_.finish(id, "copied from " + src_registry + "/" + src_repo);
    record("push", b, "transferred", start);
    return true;
  }
  // Chunked uploads resume from the file, so the blob lands here first.
  clients_.at(src_registry)->fetch_blob(src_repo, b, *image.store);
  record("pull", b, "transferred", start);
  return false;
}

Digest ImageTransfer::push_graph(const LocalImage& image, const Reference& ref,
                                 std::string* oci_subject) {
  RegistryClient& c = client(ref.registry);
  std::string mount_from;
  if (image.source_registry == ref.registry && image.source_repo != ref.repository)
    mount_from = image.source_repo;
  const ContentGraph graph = content_graph(*image.store, image.top, ref.str());
  // Looked up here: the client map is not for worker threads to change.
  if (!image.source_registry.empty()) client(image.source_registry);
  for (const auto& [digest, where] : image.remote_blobs) client(where.first);
  auto known = image.tags_read.find(ref.str());
  const TagContents at_tag = known != image.tags_read.end() ? known->second : read_tag(c, ref, *image.store);
  const std::set<std::string>& in_repo = at_tag.blobs;
  parallel_for_each(graph.blobs, opt_.jobs, [&](const Descriptor& b) {
    auto start = Clock::now();
    std::string id = b.digest.str();
    if (image.pushed.count(id)) return;  // pushed ahead, with its own progress
    progress_.start(id, short_label(b), static_cast<std::uint64_t>(b.size));
    if (in_repo.count(id)) {
      progress_.finish(id, "already in registry");
      record("push", b, "skipped", start);
      return;
    }
    if (!image.store->contains(b.digest) && copy_remote_blob(c, image, ref, b, start)) return;
    BlobPushOutcome outcome =
        c.push_blob(ref.repository, b, image.store->path_of(b.digest), mount_from,
                    opt_.chunk_size, [&](std::uint64_t done) { progress_.update(id, done); },
                    opt_.verify_pushes);
    switch (outcome) {
      case BlobPushOutcome::kSkipped:
        progress_.finish(id, "already in registry");
        record("push", b, "skipped", start);
        break;
      case BlobPushOutcome::kMounted:
        progress_.finish(id, "mounted from " + mount_from);
        record("push", b, "mounted", start);
        break;
      case BlobPushOutcome::kUploaded:
        progress_.finish(id, "pushed");
        record("push", b, "transferred", start);
        break;
    }
  });
  // Manifests after their blobs; an index after its manifests; tags last.
  for (const auto& m : graph.manifests)
    if (m.digest != image.top.digest)
      c.put_manifest(ref.repository, m.digest.str(), image.store->read(m.digest), m.media_type);
  if (ref.digest && *ref.digest != image.top.digest)
    throw Error("cannot push to " + ref.str() + ": the image's digest is " + image.top.digest.str());
  std::string target = ref.tag.empty() ? image.top.digest.str() : ref.tag;
  if (at_tag.digest && *at_tag.digest == image.top.digest) {
    progress_.note(ref.str() + " is " + image.top.digest.short_hex() + " already");
    return image.top.digest;
  }
  progress_.note("writing manifest " + image.top.digest.short_hex() + " to " + ref.str());
  return c.put_manifest(ref.repository, target, image.store->read(image.top.digest),
                        image.top.media_type, oci_subject);
}


}  // namespace dockless
