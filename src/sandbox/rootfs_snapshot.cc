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

std::filesystem::path ensure_rootfs_snapshot(const BlobStore& store,
                                             const std::vector<LayerBlob>& layers,
                                             const std::filesystem::path& snapshots_dir) {
  std::vector<Digest> ids;
  for (const auto& l : layers) ids.push_back(l.diff_id);
  std::filesystem::path dir = snapshots_dir / chain_id(ids).hex();
  std::filesystem::path stamp = snapshots_dir / (chain_id(ids).hex() + ".complete");
  struct stat st;
  if (::stat(stamp.c_str(), &st) == 0) return dir;

  std::error_code ec;
  std::filesystem::create_directories(snapshots_dir, ec);
  if (ec) throw Error("cannot create " + snapshots_dir.string() + ": " + ec.message());
  // One builder at a time per snapshot; the others wait and then reuse it.
  std::filesystem::path lock_path = snapshots_dir / (chain_id(ids).hex() + ".lock");
  FileLock lock(lock_path, LockMode::kExclusive);
  if (::stat(stamp.c_str(), &st) == 0) return dir;

  remove_tree_as_mapped_root(dir);  // left by a build that died before its stamp
  std::filesystem::path tmp = temp_path_beside(dir);
  std::filesystem::create_directories(tmp, ec);
  if (ec) throw Error("cannot create " + tmp.string() + ": " + ec.message());
  try {
    unpack_layers_as_owners(store, layers, tmp, UnpackOptions());
    if (::rename(tmp.c_str(), dir.c_str()) != 0) throw_errno("cannot rename to " + dir.string());
  } catch (...) {
    remove_tree_as_mapped_root(tmp);
    throw;
  }
  write_file_atomic(stamp, "complete\n");
  return dir;
}

}  // namespace dockless
