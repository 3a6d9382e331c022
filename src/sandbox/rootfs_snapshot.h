// The base image's root filesystem as a directory, for the sandbox: every
// base layer applied in order (whiteouts included) into
// <cache>/snapshots/<chainID>, made once and reused by later builds.
//
// One directory per chain rather than one per layer stacked as overlay lower
// dirs: OCI whiteouts would need converting to overlay's format (char
// devices and trusted.* xattrs that an unprivileged user cannot make), and a
// base image is shared by every build of a project, so the duplicate cost is
// paid once.
#pragma once

#include <filesystem>
#include <functional>
#include <vector>

#include "layers/layer_writer.h"
#include "layers/unpacker.h"
#include "oci/blob_store.h"

namespace dockless {

/// OCI ChainID of the first n diffIDs.
Digest chain_id(const std::vector<Digest>& diff_ids);

/// Applies `layers` (blobs in `store`) in order to `root` with `options`. As
/// a user with /etc/subuid ranges, as root of an id namespace with the
/// sandbox's maps, so that every owner maps as in a root build (container id
/// N -> the subordinate id of N, 0 -> the user); else as this process.
void unpack_layers_as_owners(const BlobStore& store, const std::vector<LayerBlob>& layers,
                             const std::filesystem::path& root, UnpackOptions options);

/// True when the snapshot of `layers` under snapshots_dir is complete and,
/// for a user with /etc/subuid ranges, made with their owners.
bool rootfs_snapshot_ready(const std::filesystem::path& snapshots_dir, const std::vector<LayerBlob>& layers);

/// Fills a snapshot's (empty, temporary) directory with its layers.
using SnapshotFill = std::function<void(const std::filesystem::path& dir)>;

/// Returns the snapshot directory for `layers` (blobs in `store`), making
/// it first if needed: unpacked into a temp dir, then renamed, under a lock,
/// so a half-made snapshot is never used. Owners: see unpack_layers_as_owners.
/// `fill`, when given, makes the temp dir's contents instead (the layers as
/// they are downloaded).
std::filesystem::path ensure_rootfs_snapshot(const BlobStore& store,
                                             const std::vector<LayerBlob>& layers,
                                             const std::filesystem::path& snapshots_dir,
                                             const SnapshotFill& fill = nullptr);

}  // namespace dockless
