#include "src/sandbox/rootfs_snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layers/unpacker.h"
#include "base/error.h"
#include "base/file_lock.h"
#include "base/file_util.h"
#include "src/sandbox/id_namespace.h"

namespace dockless {

Digest chain_id(const std::vector<Digest>& diff_ids) {
  if (diff_ids.empty()) return sha256_of("");
  Digest chain = diff_ids.front();
  for (std::size_t i = 1; i < diff_ids.size(); ++i)
    chain = sha256_of(chain.str() + " " + diff_ids[i].str());
  return chain;
}

void unpack_layers_as_owners(const BlobStore& store, const std::vector<LayerBlob>& layers,
                             const std::filesystem::path& root, UnpackOptions options) {
  auto unpack_all = [&](const UnpackOptions& u) {
    for (const auto& l : layers) unpack_layer(store.path_of(l.descriptor.digest), root, u);
  };
  if (!owners_need_id_namespace()) return unpack_all(options);
  run_as_mapped_root([&](bool all_ids) {
    // Root of the namespace: owners, setuid bits and capabilities as a root
    // build keeps them, on the subordinate ids a step's files get.
    options.preserve_ownership = all_ids;
    options.create_devices = false;  // mknod of a device needs the initial namespace
    unpack_all(options);
  });
}

namespace {

/// The stamp says how owners were made: a user with ranges does not reuse
/// a snapshot whose files all became its own (made without the id
/// namespace, by an older dockless or before the ranges were added).
constexpr const char* kStampPlain = "complete\n";
constexpr const char* kStampIds = "complete: owners mapped to subordinate ids\n";

std::filesystem::path stamp_path(const std::filesystem::path& snapshots_dir, const std::vector<LayerBlob>& layers) {
  std::vector<Digest> ids;
  for (const auto& l : layers) ids.push_back(l.diff_id);
  return snapshots_dir / (chain_id(ids).hex() + ".complete");
}

}  // namespace

bool rootfs_snapshot_ready(const std::filesystem::path& snapshots_dir, const std::vector<LayerBlob>& layers) {
  std::filesystem::path stamp = stamp_path(snapshots_dir, layers);
  struct stat st;
  if (::stat(stamp.c_str(), &st) != 0) return false;
  if (!owners_need_id_namespace()) return true;
  try {
    return read_file(stamp) == kStampIds;
  } catch (const Error&) {
    return false;
  }
}

std::filesystem::path ensure_rootfs_snapshot(const BlobStore& store,
                                             const std::vector<LayerBlob>& layers,
                                             const std::filesystem::path& snapshots_dir,
                                             const SnapshotFill& fill) {
  std::filesystem::path stamp = stamp_path(snapshots_dir, layers);
  std::filesystem::path dir = stamp.parent_path() / stamp.stem();
  if (rootfs_snapshot_ready(snapshots_dir, layers)) return dir;

  std::error_code ec;
  std::filesystem::create_directories(snapshots_dir, ec);
  if (ec) throw Error("cannot create " + snapshots_dir.string() + ": " + ec.message());
  // One builder at a time per snapshot; the others wait and then reuse it.
  std::filesystem::path lock_path = snapshots_dir / (dir.filename().string() + ".lock");
  FileLock lock(lock_path, LockMode::kExclusive);
  if (rootfs_snapshot_ready(snapshots_dir, layers)) return dir;

  // Stamp first: a build must never find a stamp without its snapshot.
  ::unlink(stamp.c_str());
  remove_tree_as_mapped_root(dir);  // left by a build that died before its stamp, or stale
  std::filesystem::path tmp = temp_path_beside(dir);
  std::filesystem::create_directories(tmp, ec);
  if (ec) throw Error("cannot create " + tmp.string() + ": " + ec.message());
  try {
    if (fill)
      fill(tmp);
    else
      unpack_layers_as_owners(store, layers, tmp, UnpackOptions());
    if (::rename(tmp.c_str(), dir.c_str()) != 0) throw_errno("cannot rename to " + dir.string());
  } catch (...) {
    remove_tree_as_mapped_root(tmp);
    throw;
  }
  write_file_atomic(stamp, owners_need_id_namespace() ? kStampIds : kStampPlain);
  return dir;
}

}  // namespace dockless
