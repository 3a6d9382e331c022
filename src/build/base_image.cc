#include "src/build/base_image.h"

#include "base/error.h"
#include "oci/media_types.h"
#include "src/cache/last_used.h"
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

/// The base's layers that a push-only build left in the registry, now
/// that uv needs the root filesystem, unless its snapshot is made already.
void fetch_base_layers(const BaseImage& base, const fs::path& cache_dir, ImageTransfer& transfer,
                       BlobStore& store) {
  if (!base.layers_remote) return;
  if (rootfs_snapshot_ready(cache_dir / "snapshots", base.layers)) return;
  transfer.fetch_missing(base.image.source_registry, base.image.source_repo, base.manifest.layers, store);
}

}  // namespace

fs::path base_rootfs(const BaseImage& base, const fs::path& cache_dir, ImageTransfer& transfer, BlobStore& store) {
  fetch_base_layers(base, cache_dir, transfer, store);
  fs::path rootfs = ensure_rootfs_snapshot(store, base.layers, cache_dir / "snapshots");
  mark_used(rootfs);
  return rootfs;
}

}  // namespace dockless
