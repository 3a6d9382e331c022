#include "src/transfer.h"

#include <chrono>
#include <map>
#include <memory>
#include <set>

#include "oci/docker_archive.h"
#include "oci/error.h"
#include "oci/file_util.h"
#include "oci/image_config.h"
#include "oci/image_index.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/oci_layout.h"
#include "oci/registry_client.h"
#include "src/parallel.h"
#include "src/progress.h"

namespace dockless {

namespace {

using Clock = std::chrono::steady_clock;

/// An image whose blobs are all in `store`. `top` is a manifest or an index.
struct LocalImage {
  const BlobStore* store = nullptr;
  Descriptor top;
  /// Set when the image came from a registry: where its blobs can be mounted from.
  std::string source_registry, source_repo;
};

struct ReportEntry {
  std::string direction;  // pull, push
  Digest digest;
  std::int64_t size = 0;
  std::string action;  // transferred, mounted, skipped
  double seconds = 0;
};

/// A blob of an image, and which manifest it belongs to (for messages).
struct BlobRef {
  Descriptor desc;
};

std::string short_label(const Descriptor& d) {
  std::string kind = media_type::is_layer(d.media_type) ? "blob" : "config";
  return kind + " " + d.digest.short_hex();
}

class Transfer {
 public:
  explicit Transfer(const TransferOptions& options)
      : opt_(options),
        keychain_(options.keychain),
        progress_(Progress::detect(stderr, options.quiet), stderr),
        started_(Clock::now()) {
    opt_.registry.on_retry = [this](const std::string& line) { progress_.note(line); };
  }

  Digest run(const ImageLocation& src, const ImageLocation& dst) {
    std::unique_ptr<OciLayout> dst_layout;
    const BlobStore* work_store = nullptr;
    if (dst.is_layout()) {
      dst_layout = std::make_unique<OciLayout>(OciLayout::open_or_create(dst.layout().dir));
      work_store = &dst_layout->blobs();
    } else {
      cache_ = std::make_unique<BlobStore>(opt_.cache_dir);
      work_store = cache_.get();
    }
    LocalImage image = load(src, *work_store);
    Digest top;
    if (dst.is_layout()) top = store_layout(image, *dst_layout, dst.layout().tag);
    else if (dst.is_archive()) top = store_archive(image, dst.archive(), src);
    else top = store_registry(image, dst.reference());
    write_report(src, dst, top);
    return top;
  }

 private:
  RegistryClient& client(const std::string& registry) {
    auto it = clients_.find(registry);
    if (it == clients_.end())
      it = clients_.emplace(registry, std::make_unique<RegistryClient>(registry, opt_.registry, keychain_))
               .first;
    return *it->second;
  }

  void record(const std::string& direction, const Descriptor& d, const std::string& action,
              Clock::time_point start) {
    std::lock_guard<std::mutex> lock(report_mu_);
    if (!reported_.insert(direction + d.digest.str()).second) return;
    report_.push_back({direction, d.digest, d.size, action,
                       std::chrono::duration<double>(Clock::now() - start).count()});
  }

  // ---- sources ----------------------------------------------------------

  LocalImage load(const ImageLocation& src, const BlobStore& store) {
    if (src.is_layout()) return load_layout(src.layout(), store);
    if (src.is_archive()) {
      LoadedArchiveImage a = read_docker_archive(src.archive().file, store, src.archive().ref);
      return LocalImage{&store, a.manifest, "", ""};
    }
    return load_registry(src.reference(), store);
  }

  LocalImage load_layout(const LayoutRef& ref, const BlobStore& work_store) {
    OciLayout layout = OciLayout::open(ref.dir);
    source_layout_ = std::make_unique<OciLayout>(layout);
    LocalImage image{&source_layout_->blobs(), layout.resolve(ref.tag), "", ""};
    if (media_type::is_index(image.top.media_type) && !opt_.all_platforms)
      image.top = select_platform(ImageIndex::parse(image.store->read(image.top.digest)), ref.str());
    (void)work_store;
    return image;
  }

  Descriptor select_platform(const ImageIndex& index, const std::string& what) const {
    std::string available;
    for (const auto& m : index.manifests) {
      if (!m.platform) continue;
      if (opt_.platform.matches(*m.platform)) return m;
      available += (available.empty() ? "" : ", ") + m.platform->str();
    }
    throw Error(what + " has no image for platform " + opt_.platform.str() +
                (available.empty() ? "" : " (it has: " + available + ")"));
  }

  LocalImage load_registry(const Reference& ref, const BlobStore& store) {
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
    std::vector<Descriptor> blobs;
    std::set<std::string> seen;
    for (const auto& m : manifests)
      for (const auto& b : manifest_blobs(store, m))
        if (seen.insert(b.digest.str()).second) blobs.push_back(b);
    parallel_for_each(blobs, opt_.jobs, [&](const Descriptor& b) {
      auto start = Clock::now();
      std::string id = b.digest.str();
      if (store.contains(b.digest)) {
        record("pull", b, "skipped", start);
        progress_.start(id, short_label(b), static_cast<std::uint64_t>(b.size));
        progress_.finish(id, "already here");
        return;
      }
      progress_.start(id, short_label(b), static_cast<std::uint64_t>(b.size));
      c.fetch_blob(ref.repository, b, store, [&](std::uint64_t done) { progress_.update(id, done); });
      progress_.finish(id, "pulled");
      record("pull", b, "transferred", start);
    });
    return LocalImage{&store, top_desc, ref.registry, ref.repository};
  }

  /// Config and layers of one manifest (its bytes must be in store).
  static std::vector<Descriptor> manifest_blobs(const BlobStore& store, const Descriptor& manifest) {
    Manifest m = Manifest::parse(store.read(manifest.digest));
    std::vector<Descriptor> out;
    out.push_back(m.config);
    for (const auto& l : m.layers) {
      if (!l.urls.empty() && media_type::layer_compression(l.media_type) != media_type::LayerCompression::kUnknown &&
          l.media_type.find("foreign") != std::string::npos)
        continue;  // foreign layers live elsewhere by design
      out.push_back(l);
    }
    return out;
  }

  /// Every manifest of the image (the children of an index, or the manifest).
  static std::vector<Descriptor> manifests_of(const LocalImage& image) {
    if (!media_type::is_index(image.top.media_type)) return {image.top};
    std::vector<Descriptor> out;
    for (const auto& m : ImageIndex::parse(image.store->read(image.top.digest)).manifests)
      if (media_type::is_manifest(m.media_type)) out.push_back(m);
    return out;
  }

  // ---- destinations -----------------------------------------------------

  Digest store_layout(const LocalImage& image, const OciLayout& layout, const std::string& tag) {
    const BlobStore& dst = layout.blobs();
    std::vector<Descriptor> all;
    for (const auto& m : manifests_of(image)) {
      all.push_back(m);
      for (const auto& b : manifest_blobs(*image.store, m)) all.push_back(b);
    }
    if (media_type::is_index(image.top.media_type)) all.push_back(image.top);
    for (const auto& d : all) {
      if (image.store->root() != dst.root()) dst.import_from(*image.store, d.digest);
      else if (!dst.contains(d.digest)) throw Error("blob " + d.digest.str() + " is missing");
    }
    Descriptor top = image.top;
    top.annotations.clear();
    if (!top.platform && media_type::is_manifest(top.media_type)) {
      Manifest m = Manifest::parse(dst.read(top.digest));
      ImageConfig c = ImageConfig::parse(dst.read(m.config.digest));
      top.platform = Platform{c.os, c.architecture, c.variant};
    }
    layout.set_tag(top, tag.empty() ? "latest" : tag);
    return top.digest;
  }

  Digest store_archive(const LocalImage& image, const DockerArchiveRef& ref,
                       const ImageLocation& src) {
    Descriptor manifest = image.top;
    if (media_type::is_index(manifest.media_type))
      manifest = select_platform(ImageIndex::parse(image.store->read(manifest.digest)), ref.str());
    std::vector<std::string> tags;
    if (!ref.ref.empty()) tags.push_back(ref.ref);
    else if (src.is_registry() && !src.reference().tag.empty()) tags.push_back(src.reference().str());
    progress_.note("writing " + ref.str());
    write_docker_archive(ref.file, *image.store, manifest, tags);
    return manifest.digest;
  }

  Digest store_registry(const LocalImage& image, const Reference& ref) {
    RegistryClient& c = client(ref.registry);
    std::string mount_from;
    if (image.source_registry == ref.registry && image.source_repo != ref.repository)
      mount_from = image.source_repo;
    std::vector<Descriptor> manifests = manifests_of(image);
    std::vector<Descriptor> blobs;
    std::set<std::string> seen;
    for (const auto& m : manifests)
      for (const auto& b : manifest_blobs(*image.store, m))
        if (seen.insert(b.digest.str()).second) blobs.push_back(b);
    parallel_for_each(blobs, opt_.jobs, [&](const Descriptor& b) {
      auto start = Clock::now();
      std::string id = b.digest.str();
      progress_.start(id, short_label(b), static_cast<std::uint64_t>(b.size));
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
    bool is_index = media_type::is_index(image.top.media_type);
    if (is_index)
      for (const auto& m : manifests)
        c.put_manifest(ref.repository, m.digest.str(), image.store->read(m.digest), m.media_type);
    std::string target = ref.tag.empty() ? image.top.digest.str() : ref.tag;
    if (ref.digest && *ref.digest != image.top.digest)
      throw Error("cannot push to " + ref.str() + ": the image's digest is " + image.top.digest.str());
    progress_.note("writing manifest " + image.top.digest.short_hex() + " to " + ref.str());
    return c.put_manifest(ref.repository, target, image.store->read(image.top.digest),
                          image.top.media_type);
  }

  void write_report(const ImageLocation& src, const ImageLocation& dst, const Digest& top) {
    if (opt_.report_file.empty()) return;
    rapidjson::StringBuffer buf;
    json::Writer w(buf);
    w.StartObject();
    json::write_string_member(w, "source", src.str());
    json::write_string_member(w, "destination", dst.str());
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

  TransferOptions opt_;
  Keychain keychain_;
  Progress progress_;
  Clock::time_point started_;
  std::map<std::string, std::unique_ptr<RegistryClient>> clients_;
  std::unique_ptr<BlobStore> cache_;
  std::unique_ptr<OciLayout> source_layout_;
  std::mutex report_mu_;
  std::vector<ReportEntry> report_;
  std::set<std::string> reported_;
};

}  // namespace

Digest run_copy(const ImageLocation& src, const ImageLocation& dst, const TransferOptions& options) {
  Transfer t(options);
  return t.run(src, dst);
}

}  // namespace dockless
