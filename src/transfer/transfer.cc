#include "src/transfer/transfer.h"

#include <set>

#include "layers/docker_archive.h"
#include "base/error.h"
#include "base/file_util.h"
#include "oci/content_graph.h"
#include "oci/image_config.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/oci_conversion.h"
#include "oci/referrers.h"
#include "base/parallel.h"

namespace dockless {

std::string short_label(const Descriptor& d) {
  std::string kind = media_type::is_layer(d.media_type) ? "blob" : "config";
  return kind + " " + d.digest.short_hex();
}

namespace {

using Clock = std::chrono::steady_clock;

/// The image `tag` names in the layout. Without a tag, the only entry, or
/// else the only one that is not a referrer (a layout written with
/// --referrers lists the image and, untagged, its referrers).
Descriptor resolve_in_layout(const OciLayout& layout, const std::string& tag) {
  try {
    return layout.resolve(tag);
  } catch (const Error&) {
    if (!tag.empty()) throw;
    std::vector<Descriptor> subjects;
    for (const auto& m : layout.read_index().manifests) {
      std::string bytes = read_manifest(layout.blobs(), m, "oci:" + layout.dir().string());
      if (!subject_of(bytes)) subjects.push_back(m);
    }
    if (subjects.size() != 1) throw;
    return subjects.front();
  }
}

}  // namespace

std::vector<Descriptor> manifest_blobs(const BlobStore& store, const Descriptor& manifest) {
  return children_of(manifest, store.read(manifest.digest));
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
                                  const std::vector<Descriptor>& blobs, const BlobStore& store,
                                  const std::map<std::string, std::shared_ptr<GrowingFile>>& followers) {
  std::vector<Descriptor> missing;
  std::set<std::string> listed;  // a manifest may list a layer twice: fetched once
  for (const auto& b : blobs)
    if (!store.contains(b.digest) && listed.insert(b.digest.str()).second) missing.push_back(b);
  if (missing.empty()) return;
  RegistryClient& c = client(registry);
  parallel_for_each(missing, opt_.jobs, [&](const Descriptor& d) {
    auto f = followers.find(d.digest.str());
    c.fetch_blob(repo, d, store, nullptr, f == followers.end() ? nullptr : f->second);
  });
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
    return LocalImage{&work_store, a.manifest, "", "", {}, {}, {}};
  }
  return load_registry(src.reference(), work_store, layers_on_demand);
}

LocalImage ImageTransfer::load_layout(const LayoutRef& ref) {
  layouts_.push_back(std::make_unique<OciLayout>(OciLayout::open(ref.dir)));
  const OciLayout& layout = *layouts_.back();
  LocalImage image{&layout.blobs(), resolve_in_layout(layout, ref.tag), "", "", {}, {}, {}};
  if (media_type::is_index(image.top.media_type) && !opt_.all_platforms)
    image.top = select_platform(
        ImageIndex::parse(read_manifest(*image.store, image.top, ref.str())), ref.str());
  // Every manifest and blob must be there and intact before anything uses it.
  check_layout_graph(*image.store, image.top, ref.str());
  return image;
}

void ImageTransfer::check_layout_graph(const BlobStore& store, const Descriptor& top,
                                       const std::string& what) const {
  for (const auto& b : content_graph(store, top, what).blobs) {
    if (!store.contains(b.digest))
      throw Error(what + ": blob " + b.digest.str() + " is missing from the layout");
    if (opt_.verify_sources) verify_blob(store, b, what);
  }
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
  if (media_type::is_index(top.media_type) && !opt_.all_platforms)
    top_desc = select_platform(ImageIndex::parse(top.bytes), ref.str());
  pull_graph(c, ref.repository, top_desc, store, layers_on_demand, ref.str());
  return LocalImage{&store, top_desc, ref.registry, ref.repository, {}, {}, {}};
}

void ImageTransfer::fetch_manifests(RegistryClient& c, const std::string& repo,
                                    const Descriptor& d, const BlobStore& store, int depth) {
  if (depth > kMaxGraphDepth)
    throw Error(repo + "@" + d.digest.str() + ": indexes nest deeper than " +
                std::to_string(kMaxGraphDepth) + " levels");
  if (!store.contains(d.digest)) {
    ManifestData md = c.get_manifest(repo, d.digest.str());
    if (d.size != 0 && md.bytes.size() != static_cast<std::uint64_t>(d.size))
      throw Error("registry " + c.registry() + ": manifest " + repo + "@" + d.digest.str() + " is " +
                  std::to_string(md.bytes.size()) + " bytes, its descriptor says " +
                  std::to_string(d.size));
    store.put(md.bytes, d.digest);
  }
  if (!media_type::is_index(d.media_type)) return;
  for (const auto& child : children_of(d, read_manifest(store, d, repo)))
    fetch_manifests(c, repo, child, store, depth + 1);
}

void ImageTransfer::pull_graph(RegistryClient& c, const std::string& repo, const Descriptor& top,
                               const BlobStore& store, bool layers_on_demand,
                               const std::string& what) {
  fetch_manifests(c, repo, top, store, 0);
  std::vector<Descriptor> wanted;
  for (const auto& b : content_graph(store, top, what).blobs)
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
    c.fetch_blob(repo, b, store, [&](std::uint64_t done) { progress_.update(id, done); });
    progress_.finish(id, "pulled");
    record("pull", b, "transferred", start);
  });
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

Digest run_copy(const ImageLocation& src, const ImageLocation& dst, const TransferOptions& options_in) {
  TransferOptions options = options_in;
  // A copy hands blobs on: check them. A monolithic push from a layout
  // hashes each blob as it sends it (one read, not two); chunked uploads
  // and other destinations check them first.
  options.verify_pushes = src.is_layout() && dst.is_registry() && options.chunk_size == 0;
  options.verify_sources = !options.verify_pushes;
  ImageTransfer t(options);
  // What is fetched lands in the cache dir, even for a layout: a transfer
  // that fails half-way (a blob whose bytes lie, a manifest too large) must
  // leave the layout as it was, without the manifests and layers it got so
  // far. store() hard-links the blobs into the layout once all are here.
  const BlobStore cache(options.cache_dir);
  // Registry to registry: layers are mounted (same registry) or streamed
  // across, never stored here on the way.
  bool both_registries = src.is_registry() && dst.is_registry();
  if (options.referrers && dst.is_archive())
    throw UsageError("--referrers: a docker-archive cannot hold referrers (use oci:DIR or a registry)");
  LocalImage image = t.load(src, cache, both_registries);
  std::vector<Referrer> referrers;
  if (options.referrers) referrers = t.load_referrers(src, image);
  std::string default_tag =
      src.is_registry() && !src.reference().tag.empty() ? src.reference().str() : "";
  Digest top = t.store(image, dst, default_tag);
  if (!referrers.empty()) t.store_referrers(image, referrers, dst);
  t.write_report(src.str(), dst.str(), top);
  return top;
}

}  // namespace dockless
