#include "src/build/base_image.h"

#include <future>
#include <map>
#include <memory>
#include <set>

#include "base/error.h"
#include "base/file_util.h"
#include "layers/unpacker.h"
#include "oci/media_types.h"
#include "src/cache/last_used.h"
#include "src/sandbox/id_namespace.h"
#include "src/sandbox/rootfs_snapshot.h"

namespace dockless {

namespace fs = std::filesystem;

BaseImage fetch_base_image(const std::string& base, const Platform& platform, bool push_only,
                           ImageTransfer& transfer, BlobStore& store) {
  BaseImage b;
  ImageLocation where = ImageLocation::parse(base);
  if (where.is_registry()) {
    b.name = where.reference().str();
  } else {
    b.name = where.str();
  }
  b.layers_remote = where.is_registry() && push_only;
  b.image = transfer.load(where, store, b.layers_remote);
  if (media_type::is_index(b.image.top.media_type))
    throw Error("base image " + base + " is an index; no manifest for " + platform.str());
  // Base blobs into our store, so every output can be written from one place.
  for (const auto& blob : manifest_blobs(*b.image.store, b.image.top))
    if (!b.layers_remote || !media_type::is_layer(blob.media_type)) store.import_from(*b.image.store, blob.digest);
  store.import_from(*b.image.store, b.image.top.digest);
  b.image.store = &store;
  b.manifest = Manifest::parse(store.read(b.image.top.digest));
  b.config = ImageConfig::parse(store.read(b.manifest.config.digest));
  if (b.config.diff_ids.size() != b.manifest.layers.size())
    throw Error("base image " + base + ": its config lists " + std::to_string(b.config.diff_ids.size()) +
                " diff_ids for " + std::to_string(b.manifest.layers.size()) + " layers");
  for (std::size_t i = 0; i < b.manifest.layers.size(); ++i)
    b.layers.push_back(LayerBlob{b.manifest.layers[i], b.config.diff_ids[i], 0});
  return b;
}

namespace {

/// Whether the base's layers can be unpacked as they are downloaded: gzip
/// (GzipReader reads a growing file), and unpacked by this process (not
/// as root of an id namespace, in a child process).
bool unpack_as_fetched(const BaseImage& base) {
  if (owners_need_id_namespace()) return false;
  for (const auto& l : base.manifest.layers)
    if (l.media_type.find("gzip") == std::string::npos) return false;
  return true;
}

/// Fills the snapshot dir `dir` with the base's layers while they are
/// downloaded: each missing layer is applied as its bytes land in the
/// store (the downloads run ahead in parallel, --jobs), so the unpacking,
/// which takes longer, starts at once instead of after the last byte. A
/// download that fails is the error; one that restarted (which abandons
/// what was read) or a layer that failed to apply is unpacked again from
/// the store once every download is over.
void fetch_and_unpack(const BaseImage& base, ImageTransfer& transfer, const BlobStore& store,
                      const fs::path& dir) {
  std::map<std::string, std::shared_ptr<GrowingFile>> followers;
  for (const auto& l : base.manifest.layers)
    if (!store.contains(l.digest)) followers.emplace(l.digest.str(), std::make_shared<GrowingFile>());
  transfer.client(base.image.source_registry);  // made on this thread: client() is not thread-safe
  auto fetch = [&] {
    try {
      transfer.fetch_missing(base.image.source_registry, base.image.source_repo, base.manifest.layers, store,
                             followers);
    } catch (...) {
      for (auto& [digest, f] : followers) f->abandon();  // a reader waiting for a download that never came
      throw;
    }
    // No-op for every blob that came (it ended); wakes the reader of one
    // another process stored first (never downloaded here): from the store, then.
    for (auto& [digest, f] : followers) f->abandon();
  };
  std::shared_future<void> fetching = std::async(std::launch::async, fetch).share();
  try {
    std::set<std::string> read;
    for (const auto& l : base.manifest.layers) {
      auto f = followers.find(l.digest.str());
      if (f != followers.end() && read.insert(f->first).second) {
        unpack_gzip_layer_as_written(f->second, store.path_of(l.digest).string(), dir);
        continue;
      }
      if (f != followers.end()) fetching.get();  // a layer listed twice: the second time from the store
      unpack_layer(store.path_of(l.digest), dir);
    }
  } catch (const Error&) {
    for (auto& [digest, f] : followers) f->abandon();  // no reader is left
    fetching.get();                                   // a download's own error comes first
    remove_tree(dir);
    fs::create_directories(dir);
    unpack_layers_as_owners(store, base.layers, dir, UnpackOptions());
    return;
  }
  fetching.get();
}

}  // namespace

fs::path base_rootfs(const BaseImage& base, const fs::path& cache_dir, ImageTransfer& transfer, BlobStore& store) {
  const fs::path snapshots = cache_dir / "snapshots";
  SnapshotFill fill;
  // A push-only build left the layers in the registry: fetched now that
  // uv needs the root filesystem, unless its snapshot is made already.
  if (base.layers_remote && !rootfs_snapshot_ready(snapshots, base.layers)) {
    if (unpack_as_fetched(base))
      fill = [&](const fs::path& dir) { fetch_and_unpack(base, transfer, store, dir); };
    else
      transfer.fetch_missing(base.image.source_registry, base.image.source_repo, base.manifest.layers, store);
  }
  fs::path rootfs = ensure_rootfs_snapshot(store, base.layers, snapshots, fill);
  mark_used(rootfs);
  return rootfs;
}

}  // namespace dockless
