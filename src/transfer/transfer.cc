#include "src/transfer/transfer.h"

#include "layers/docker_archive.h"
#include "base/error.h"
#include "base/file_util.h"
#include "oci/image_config.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/oci_conversion.h"
#include "base/parallel.h"

namespace dockless {

namespace {

using Clock = std::chrono::steady_clock;

std::string short_label(const Descriptor& d) {
  std::string kind = media_type::is_layer(d.media_type) ? "blob" : "config";
  return kind + " " + d.digest.short_hex();
}

/// Every manifest of the image (the children of an index, or the manifest).
std::vector<Descriptor> manifests_of(const LocalImage& image) {
  if (!media_type::is_index(image.top.media_type)) return {image.top};
  std::vector<Descriptor> out;
  for (const auto& m : ImageIndex::parse(image.store->read(image.top.digest)).manifests)
    if (media_type::is_manifest(m.media_type)) out.push_back(m);
  return out;
}

std::vector<Descriptor> unique_blobs(const BlobStore& store, const std::vector<Descriptor>& manifests) {
  std::vector<Descriptor> blobs;
  std::set<std::string> seen;
  for (const auto& m : manifests)
    for (const auto& b : manifest_blobs(store, m))
      if (seen.insert(b.digest.str()).second) blobs.push_back(b);
  return blobs;
}

}  // namespace

std::vector<Descriptor> manifest_blobs(const BlobStore& store, const Descriptor& manifest) {
  Manifest m = Manifest::parse(store.read(manifest.digest));
  std::vector<Descriptor> out;
  out.push_back(m.config);
  for (const auto& l : m.layers) {
    // Foreign (non-distributable) layers live elsewhere by design.
    if (!l.urls.empty() && l.media_type.find("foreign") != std::string::npos) continue;
    out.push_back(l);
  }
  return out;
}

ImageTransfer::ImageTransfer(const TransferOptions& options)
    : opt_(options),
      keychain_(options.keychain),
      progress_(options.progress),
      started_(Clock::now()) {
  opt_.registry.on_retry = [this](const std::string& line) { progress_.note(line); };
  if (!opt_.cache_dir.empty()) opt_.registry.scheme_hints = opt_.cache_dir / "registry-schemes";
}

ImageTransfer::~ImageTransfer() = default;

RegistryClient& ImageTransfer::client(const std::string& registry) {
  auto it = clients_.find(registry);
  if (it == clients_.end())
    it = clients_
             .emplace(registry, std::make_unique<RegistryClient>(registry, opt_.registry, keychain_))
             .first;
  return *it->second;
}

void ImageTransfer::fetch_missing(const std::string& registry, const std::string& repo,
                                  const std::vector<Descriptor>& blobs, const BlobStore& store) {
  std::vector<Descriptor> missing;
  for (const auto& b : blobs)
    if (!store.contains(b.digest)) missing.push_back(b);
  if (missing.empty()) return;
  RegistryClient& c = client(registry);
  parallel_for_each(missing, opt_.jobs, [&](const Descriptor& d) { c.fetch_blob(repo, d, store); });
}

void ImageTransfer::record(const std::string& direction, const Descriptor& d,
                           const std::string& action, Clock::time_point start) {
  std::lock_guard<std::mutex> lock(report_mu_);
  if (!reported_.insert(direction + d.digest.str()).second) return;
  report_.push_back({direction, d.digest, d.size, action,
                     std::chrono::duration<double>(Clock::now() - start).count()});
}

// ---- sources ------------------------------------------------------------

LocalImage ImageTransfer::load(const ImageLocation& src, const BlobStore& work_store,
                               bool layers_on_demand) {
  if (src.is_layout()) return load_layout(src.layout());
  if (src.is_archive()) {
    LoadedArchiveImage a = read_docker_archive(src.archive().file, work_store, src.archive().ref);
    return LocalImage{&work_store, a.manifest, "", "", {}};
  }
  return load_registry(src.reference(), work_store, layers_on_demand);
}

LocalImage ImageTransfer::load_layout(const LayoutRef& ref) {
  layouts_.push_back(std::make_unique<OciLayout>(OciLayout::open(ref.dir)));
  const OciLayout& layout = *layouts_.back();
  LocalImage image{&layout.blobs(), layout.resolve(ref.tag), "", "", {}};
  if (media_type::is_index(image.top.media_type) && !opt_.all_platforms)
    image.top = select_platform(ImageIndex::parse(image.store->read(image.top.digest)), ref.str());
  // Every blob must be there and intact before anything uses it.
  for (const auto& m : manifests_of(image))
    for (const auto& b : manifest_blobs(*image.store, m))
      if (!image.store->contains(b.digest))
        throw Error(ref.str() + ": blob " + b.digest.str() + " is missing from the layout");
  return image;
}

Descriptor ImageTransfer::select_platform(const ImageIndex& index, const std::string& what) const {
  std::string available;
  for (const auto& m : index.manifests) {
    if (!m.platform) continue;
    if (opt_.platform.matches(*m.platform)) return m;
    available += (available.empty() ? "" : ", ") + m.platform->str();
  }
  throw Error(what + " has no image for platform " + opt_.platform.str() +
              (available.empty() ? "" : " (it has: " + available + ")"));
}

LocalImage ImageTransfer::load_registry(const Reference& ref, const BlobStore& store,
                                        bool layers_on_demand) {
  RegistryClient& c = client(ref.registry);
  ManifestData top = c.get_manifest(ref.repository, ref.manifest_ref());
  store.put(top.bytes, top.digest);
  Descriptor top_desc;
  top_desc.media_type = top.media_type;
  top_desc.digest = top.digest;
  top_desc.size = static_cast<std::int64_t>(top.bytes.size());
  std::vector<Descriptor> manifests;
  if (media_type::is_index(top.media_type)) {
    ImageIndex index = ImageIndex::parse(top.bytes);
    if (opt_.all_platforms) {
      for (const auto& m : index.manifests)
        if (media_type::is_manifest(m.media_type)) manifests.push_back(m);
    } else {
      top_desc = select_platform(index, ref.str());
      manifests.push_back(top_desc);
    }
    for (const auto& m : manifests) {
      ManifestData md = c.get_manifest(ref.repository, m.digest.str());
      store.put(md.bytes, m.digest);
    }
  } else {
    manifests.push_back(top_desc);
  }
  std::vector<Descriptor> wanted;
  for (const auto& b : unique_blobs(store, manifests))
    if (!layers_on_demand || !media_type::is_layer(b.media_type)) wanted.push_back(b);
  parallel_for_each(wanted, opt_.jobs, [&](const Descriptor& b) {
    auto start = Clock::now();
    std::string id = b.digest.str();
    progress_.start(id, short_label(b), static_cast<std::uint64_t>(b.size));
    if (store.contains(b.digest)) {
      progress_.finish(id, "already here");
      record("pull", b, "skipped", start);
      return;
    }
    c.fetch_blob(ref.repository, b, store, [&](std::uint64_t done) { progress_.update(id, done); });
    progress_.finish(id, "pulled");
    record("pull", b, "transferred", start);
  });
  return LocalImage{&store, top_desc, ref.registry, ref.repository, {}};
}

// ---- destinations -------------------------------------------------------

Digest ImageTransfer::store(const LocalImage& image, const ImageLocation& dst,
                            const std::string& default_tag) {
  if (dst.is_layout()) return store_layout(image, dst.layout());
  if (dst.is_archive()) return store_archive(image, dst.archive(), default_tag);
  return store_registry(image, dst.reference());
}

Digest ImageTransfer::store_layout(const LocalImage& image, const LayoutRef& ref) {
  OciLayout layout = OciLayout::open_or_create(ref.dir);
  const BlobStore& dst = layout.blobs();
  auto copy_blob = [&](const Digest& d) {
    if (image.store->root() != dst.root()) dst.import_from(*image.store, d);
    else if (!dst.contains(d)) throw Error("blob " + d.str() + " is missing");
  };
  // Docker schema2 manifests become OCI ones: readers of an OCI layout
  // (skopeo, podman, umoci) take nothing else there.
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
  top.annotations.clear();
  if (!top.platform && media_type::is_manifest(top.media_type)) {
    Manifest m = Manifest::parse(dst.read(top.digest));
    ImageConfig c = ImageConfig::parse(dst.read(m.config.digest));
    top.platform = Platform{c.os, c.architecture, c.variant};
  }
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

/// What the tag names now (the image pushed there last): its digest, and
/// its blobs, which the repository holds, so a re-push need not ask for
/// each one. One HEAD (and a GET unless that manifest is in `store`); empty
/// when the tag is new or cannot be read.
struct AtTag {
  std::optional<Digest> digest;
  std::set<std::string> blobs;
};
static AtTag read_tag(RegistryClient& c, const Reference& ref, const BlobStore& store) {
  AtTag out;
  if (ref.tag.empty()) return out;
  try {
    std::optional<Descriptor> head = c.head_manifest(ref.repository, ref.tag);
    if (!head) return out;
    out.digest = head->digest;
    if (!media_type::is_manifest(head->media_type)) return out;
    std::string bytes = store.contains(head->digest) ? store.read(head->digest)
                                                     : c.get_manifest(ref.repository, head->digest.str()).bytes;
    Manifest m = Manifest::parse(bytes);
    out.blobs.insert(m.config.digest.str());
    for (const auto& l : m.layers) out.blobs.insert(l.digest.str());
  } catch (const Error&) {
    out = AtTag{};  // only an optimisation: every blob is then checked
  }
  return out;
}

Digest ImageTransfer::store_registry(const LocalImage& image, const Reference& ref) {
  RegistryClient& c = client(ref.registry);
  std::string mount_from;
  if (image.source_registry == ref.registry && image.source_repo != ref.repository)
    mount_from = image.source_repo;
  std::vector<Descriptor> manifests = manifests_of(image);
  // Looked up here: the client map is not for worker threads to change.
  if (!image.source_registry.empty()) client(image.source_registry);
  for (const auto& [digest, where] : image.remote_blobs) client(where.first);
  const AtTag at_tag = read_tag(c, ref, *image.store);
  const std::set<std::string>& in_repo = at_tag.blobs;
  parallel_for_each(unique_blobs(*image.store, manifests), opt_.jobs, [&](const Descriptor& b) {
    auto start = Clock::now();
    std::string id = b.digest.str();
    progress_.start(id, short_label(b), static_cast<std::uint64_t>(b.size));
    if (in_repo.count(id)) {
      progress_.finish(id, "already in registry");
      record("push", b, "skipped", start);
      return;
    }
    if (!image.store->contains(b.digest)) {
      // Left in a registry (a same-registry copy, a build's cache hit):
      // mount it, and download it only when the registry will not.
      std::string src_registry = image.source_registry, src_repo = image.source_repo;
      if (auto it = image.remote_blobs.find(id); it != image.remote_blobs.end())
        std::tie(src_registry, src_repo) = it->second;
      if (c.blob_exists(ref.repository, b.digest)) {
        progress_.finish(id, "already in registry");
        record("push", b, "skipped", start);
        return;
      }
      std::string from = src_registry == ref.registry && src_repo != ref.repository ? src_repo : "";
      if (!from.empty() && c.mount_blob(ref.repository, b.digest, from)) {
        progress_.finish(id, "mounted from " + from);
        record("push", b, "mounted", start);
        return;
      }
      if (src_registry.empty())
        throw Error("blob " + b.digest.str() + " is neither here nor in a source registry");
      clients_.at(src_registry)->fetch_blob(src_repo, b, *image.store);
      record("pull", b, "transferred", start);
    }
    BlobPushOutcome outcome =
        c.push_blob(ref.repository, b, image.store->path_of(b.digest), mount_from,
                    opt_.chunk_size, [&](std::uint64_t done) { progress_.update(id, done); });
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
  if (media_type::is_index(image.top.media_type))
    for (const auto& m : manifests)
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
                        image.top.media_type);
}

void ImageTransfer::write_report(const std::string& source, const std::string& destination,
                                 const Digest& top) {
  if (opt_.report_file.empty()) return;
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  json::write_string_member(w, "source", source);
  json::write_string_member(w, "destination", destination);
  json::write_string_member(w, "digest", top.str());
  json::write_key(w, "seconds");
  w.Double(std::chrono::duration<double>(Clock::now() - started_).count());
  std::uint64_t transferred = 0;
  json::write_key(w, "blobs");
  w.StartArray();
  for (const auto& e : report_) {
    w.StartObject();
    json::write_string_member(w, "direction", e.direction);
    json::write_string_member(w, "digest", e.digest.str());
    json::write_key(w, "size");
    w.Int64(e.size);
    json::write_string_member(w, "action", e.action);
    json::write_key(w, "seconds");
    w.Double(e.seconds);
    w.EndObject();
    if (e.action == "transferred") transferred += static_cast<std::uint64_t>(e.size);
  }
  w.EndArray();
  json::write_key(w, "bytes_transferred");
  w.Uint64(transferred);
  w.EndObject();
  write_file_atomic(opt_.report_file,
                    json::pretty(std::string_view(buf.GetString(), buf.GetSize())) + "\n");
}

Digest run_copy(const ImageLocation& src, const ImageLocation& dst, const TransferOptions& options) {
  ImageTransfer t(options);
  std::unique_ptr<OciLayout> dst_layout;
  std::unique_ptr<BlobStore> cache;
  const BlobStore* work_store = nullptr;
  if (dst.is_layout()) {
    dst_layout = std::make_unique<OciLayout>(OciLayout::open_or_create(dst.layout().dir));
    work_store = &dst_layout->blobs();
  } else {
    cache = std::make_unique<BlobStore>(options.cache_dir);
    work_store = cache.get();
  }
  bool same_registry = src.is_registry() && dst.is_registry() &&
                       src.reference().registry == dst.reference().registry;
  LocalImage image = t.load(src, *work_store, same_registry);
  std::string default_tag =
      src.is_registry() && !src.reference().tag.empty() ? src.reference().str() : "";
  Digest top = t.store(image, dst, default_tag);
  t.write_report(src.str(), dst.str(), top);
  return top;
}

}  // namespace dockless
