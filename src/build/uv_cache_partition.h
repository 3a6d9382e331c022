// Splits a uv cache into parts by which environments use each entry, so the
// image ships exactly what its enabled venvs need, and a variant that skips
// some venvs shares every remaining layer (same bytes, same digest) with the
// full image.
//
// uv keeps unpacked wheels in archive-v0/<id>/ (the only entries venvs link
// to) and, per package, small pointer files (wheels-v*/..., sdists-v*/...)
// that name an archive id. An environment "uses" the archives whose
// <name>-<version>.dist-info it has installed (the same test works for
// symlink and copy link modes), and every pointer file that names one of
// them or lives under one of their package directories.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace dockless {

/// One part of the cache: the relative paths used by exactly the
/// environments in `users`. A path is a file, or a directory taken whole
/// (archive-v0/<id>); the directories above each path are implied.
struct CachePart {
  std::set<std::string> users;  ///< empty = common files (CACHEDIR.TAG, interpreter info...)
  std::set<std::string> paths;  ///< relative to the cache root

  /// Whether the tar of this part holds `rel` (a path relative to the cache
  /// root): it is one of `paths`, lies below one, or is a directory above one.
  bool includes(const std::string& rel, bool is_dir) const;
};

/// `envs`: environment name -> the host directory of its venv (a venv made
/// only to fill the cache for a cache extra counts like any other).
/// Returns the parts sorted by (users.size(), users): common first, then
/// shared ones, then each single environment's. Entries no environment uses
/// (left by earlier builds) are in no part. Throws Error on unreadable dirs.
std::vector<CachePart> partition_uv_cache(const std::filesystem::path& cache_root,
                                          const std::map<std::string, std::filesystem::path>& envs);

/// A stable name for a part's user set ("common", "env:a", "shared:a+b").
std::string cache_part_name(const CachePart& part);

/// uv names each archive-v0 entry at random, so two clean builds would make
/// different archive dirs and venv symlinks. This renames every entry whose
/// name is not yet derived from its content (the SHA-256 of its dist-info
/// name and RECORD) to that derived name, rewrites uv's pointer files in the
/// cache (same-length ids, so their encoding stays valid), and leaves the old
/// name as a symlink to the new one ("alias"): venvs keep linking to the old
/// name (rewriting their links cost most of a cold build: 67,655 links for
/// 15 NeMo-RL-shaped venvs) and their layers map it (archive_link_mapper).
/// Returns how many entries were renamed. Run it while no uv runs on this cache.
int canonicalize_archive_ids(const std::filesystem::path& cache_root);

/// The aliases canonicalize_archive_ids left in archive-v0: old id -> id.
std::map<std::string, std::string> archive_aliases(const std::filesystem::path& cache_root);

/// For TarOptions::map_symlink of a venv: a target
/// `<image_cache_dir>/archive-v0/<alias>/...` becomes the aliased id's, so
/// the layer is what it would be had the venv's links been rewritten.
/// Null when there are no aliases.
std::function<std::string(const std::string&)> archive_link_mapper(const std::filesystem::path& cache_root,
                                                                   const std::string& image_cache_dir);

}  // namespace dockless
