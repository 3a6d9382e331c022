// One tar entry from one file on disk, with the normalisation every layer
// shares: numeric owners (fixed, kept, or mapped from host to container ids),
// clamped whole-second mtimes, symlinks as symlinks, a file with several links
// as one file plus hardlinks, chosen xattrs as PAX SCHILY.xattr records.
// The tree walkers (tar_writer, overlay_layer, tree_diff) decide which files
// go into a layer and under what name; this decides how one is written.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "layers/archive_handle.h"

namespace dockless {

/// 1980-01-01T00:00:00Z: the mtime clamp when SOURCE_DATE_EPOCH is unset.
/// Not 0, because ZIP (hence wheel building from the image's source tree)
/// cannot store times before 1980.
inline constexpr std::int64_t kDefaultMtimeClamp = 315532800;

struct TarStats {
  std::uint64_t entries = 0;
  std::uint64_t file_bytes = 0;
};

/// One line of /proc/PID/uid_map (or gid_map): container ids
/// [container_first, container_first + count) are host ids
/// [host_first, host_first + count).
struct IdRange {
  std::uint32_t container_first = 0;
  std::uint32_t host_first = 0;
  std::uint32_t count = 0;
};

/// Host id -> container id, for files a user namespace wrote (they are owned
/// by subuid/subgid host ids). A null function keeps ids as they are; a
/// function returning nullopt says the id has no container id (an Error).
struct OwnerMap {
  std::function<std::optional<std::uint32_t>(std::uint32_t host_uid)> uid;
  std::function<std::optional<std::uint32_t>(std::uint32_t host_gid)> gid;

  /// The map a user namespace with these uid_map/gid_map lines implies.
  static OwnerMap from_ranges(std::vector<IdRange> uids, std::vector<IdRange> gids);
};

/// Options of the layers made from what a build step changed (overlay upper
/// dir, tree diff). Owners are the files' own numeric ids, through owner_map.
struct ChangeLayerOptions {
  /// Every mtime above this is written as this (seconds, no fraction).
  std::int64_t mtime_clamp = kDefaultMtimeClamp;
  /// Write all extended attributes. security.capability is written either
  /// way (file capabilities are part of what apt installs, e.g. ping); the
  /// overlay's own trusted.overlay.* / user.overlay.* never are.
  bool xattrs = false;
  OwnerMap owner_map;
};

/// True for the xattrs overlayfs keeps for itself (trusted.overlay.*,
/// user.overlay.*): they describe the upper dir, not the image.
bool is_overlay_private_xattr(std::string_view name);

struct EntryOptions {
  /// Owner written for every entry; nullopt writes the file's own id
  /// through owner_map.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  OwnerMap owner_map;
  std::int64_t mtime_clamp = 0;
  /// Which xattrs to write (names arrive sorted); null writes none.
  std::function<bool(std::string_view name)> keep_xattr;
  /// Maps a symlink's target as written (TarOptions::map_symlink); null keeps it.
  std::function<std::string(const std::string& target)> map_symlink;
};

/// EntryOptions for a ChangeLayerOptions (the xattr rule above included).
EntryOptions change_layer_entry_options(const ChangeLayerOptions& options);

class TarEntryWriter {
 public:
  TarEntryWriter(EntryOptions options, TarStreamWriter& out)
      : opt_(std::move(options)), out_(out) {}

  /// Writes the file `name` in `dirfd` (stat `st`, shown and read for xattrs
  /// as `host_path`) as `tar_name`. A regular file whose inode was written
  /// before becomes a hardlink to it. A directory's children are not written.
  void write(const std::string& tar_name, const std::string& host_path, const struct stat& st,
             int dirfd, const std::string& name);

  /// Notes a file written earlier in the same tar (by another writer), so
  /// that a later link to it is written as a hardlink, as write() would.
  void note_written(const std::string& tar_name, const struct stat& st);

  /// Writes an empty regular file (a whiteout `.wh.NAME` or an opaque marker
  /// `.wh..wh..opq`): mode 0644, owner 0:0, mtime min(mtime, clamp).
  void write_marker(const std::string& tar_name, std::int64_t mtime);

  TarStats stats;

 private:
  void set_owner(archive_entry* e, const struct stat& st, const std::string& host_path) const;
  void add_xattrs(archive_entry* e, const std::string& host_path) const;
  void copy_data(int fd, std::uint64_t size, const std::string& host_path);

  EntryOptions opt_;
  TarStreamWriter& out_;
  std::map<std::pair<dev_t, ino_t>, std::string> hardlinks_;
  std::vector<char> buffer_;
};

/// The names in the directory `dirfd` (shown as `host_dir`), sorted bytewise,
/// without "." and "..".
std::vector<std::string> list_directory_sorted(int dirfd, const std::string& host_dir);

/// The names and values of a file's xattrs, sorted by name (none when the
/// file system keeps none; one that vanishes while read is left out).
std::vector<std::pair<std::string, std::string>> read_xattrs(const std::string& path);

}  // namespace dockless
