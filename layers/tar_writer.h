// Deterministic tar streams (libarchive, pax_restricted) from a directory or
// from an existing tar: same input, same bytes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "layers/byte_sink.h"
#include "layers/tar_entry_writer.h"
#include "oci/digest.h"

namespace dockless {

/// SOURCE_DATE_EPOCH when set (must be a non-negative integer, else Error),
/// otherwise kDefaultMtimeClamp.
std::int64_t mtime_clamp_from_environment();

struct TarOptions {
  /// Where the directory's contents go in the image ("/" or "/opt/venv").
  /// The parents of a non-root destination are emitted as directories.
  std::string dest = "/";
  /// Owner written for every entry; nullopt keeps each file's own id.
  std::optional<uid_t> uid = 0;
  std::optional<gid_t> gid = 0;
  /// Every mtime above this is written as this (seconds, no fraction).
  std::int64_t mtime_clamp = kDefaultMtimeClamp;
  /// Write extended attributes (PAX SCHILY.xattr) from the files.
  bool xattrs = false;
  /// Optional filter on paths relative to the directory ("a/b"); returning
  /// false leaves the entry (and, for a directory, all below it) out.
  std::function<bool(const std::string& rel_path, bool is_dir)> include;
  /// For a directory that `include` leaves out: true when something below it
  /// may still be included ('!' rules). The walk then looks inside, and
  /// writes the directory only if an entry below it is written.
  std::function<bool(const std::string& rel_path)> descend_excluded;
  /// Maps a symlink's target as written (write_directory_tar); null keeps
  /// it. For links into directories renamed since: the layer names the new
  /// directory while the links on disk keep a target that still resolves.
  std::function<std::string(const std::string& target)> map_symlink;
};

/// Writes the tree under `dir` as a tar to `out` (then calls out.finish()).
/// Entries: depth first, names sorted bytewise within each directory, parents
/// before children, no leading "./", uname/gname empty, no atime/ctime,
/// symlinks as symlinks, files with several links inside the tree as one
/// file plus hardlinks. Sockets are skipped. Throws Error naming the path.
TarStats write_directory_tar(const std::filesystem::path& dir, const TarOptions& options,
                             ByteSink& out);

/// What write_directory_tar would read, without reading any file: a digest
/// of each entry's name and stat (type and mode, owner, size, inode, device,
/// link count, mtime and ctime to the nanosecond) in the walk's order, and
/// the newest mtime or ctime in it. Content cannot change without a new
/// ctime, so an equal digest means an equal tar, as long as the newest
/// change is older than the file system's timestamp granularity (a file
/// written twice within one tick keeps its ctime): the caller checks that.
struct TreeStat {
  Digest digest;
  std::int64_t newest_change_ns = 0;  ///< since the epoch
  std::uint64_t entries = 0;
};

/// The entries a walk found, in write_directory_tar's order, with their
/// stat: write_walked_tree writes the tar from them without walking again.
struct WalkedTree {
  struct Entry {
    std::string tar_name, host_path;
    struct stat st;
    std::uint32_t depth = 0;  ///< 0: the destination itself; 1: the tree's top level; ...
  };
  std::vector<Entry> entries;
};

/// The later of a file's mtime and ctime, in ns since the epoch (what
/// TreeStat::newest_change_ns is the maximum of).
std::int64_t newest_change_ns(const struct stat& st);

/// `walked`, when given, gets the entries (what an edit's tar is then
/// written from: one walk of the tree instead of two).
TreeStat stat_directory_tree(const std::filesystem::path& dir, const TarOptions& options,
                             WalkedTree* walked = nullptr);

/// What of a walked tree write_walked_tree writes, and what it notes.
struct WalkedTreeWrite {
  /// Set: only the tar from this entry's header on, as the whole tar has
  /// it (no parents of the destination; the entries before are known only
  /// as what a later hardlink may point to).
  std::optional<std::size_t> from;
  /// Gets the offset of each written entry's header in the bytes written,
  /// then the offset of the end-of-archive blocks.
  std::vector<std::uint64_t>* offsets = nullptr;
};

/// For each count in `counts` (ascending, at most the entries walked): the
/// digest stat_directory_tree gives for only the walk's first `count`
/// entries (all of them: its digest).
std::vector<Digest> walked_prefix_digests(const WalkedTree& walked, const std::vector<std::uint64_t>& counts);

/// The tar write_directory_tar would write, from a walk's entries: the
/// headers carry the walk's stat, and each file is read from its directory
/// as the walk opened it (no symlink followed). A directory replaced since
/// the walk, or a file that shrank, is an Error.
TarStats write_walked_tree(const std::filesystem::path& dir, const WalkedTree& walked, const TarOptions& options,
                           ByteSink& out, const WalkedTreeWrite& how = {});

/// Re-writes an existing tar (plain, gzip, zstd, xz, bzip2) with the same
/// normalisation (mtime clamp, owners, names), keeping its entry order.
TarStats rewrite_tar(const std::filesystem::path& tar_file, const TarOptions& options,
                     ByteSink& out);

}  // namespace dockless
