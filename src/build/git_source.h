// The project's source from a git repository, for `dockless build --git URL
// --git-ref REF`: no clone in the user's tree, only a bare mirror in the cache.
#pragma once

#include <filesystem>
#include <string>

namespace dockless {

struct GitSource {
  /// Any URL git accepts: file:///path/repo.git, /path/repo, https://..., host:path.
  std::string url;
  /// A branch, tag, "refs/...", or (full or abbreviated, at least 4 hex digits)
  /// commit; "" or "HEAD" = the remote's default branch.
  std::string ref;
};

struct GitCheckout {
  std::string commit;          ///< full 40-hex SHA-1 (or 64-hex SHA-256) of what was exported
  /// "refs/heads/X", "refs/tags/X", "HEAD" (the default branch), another
  /// "refs/...", or "" (the ref was a commit id).
  std::string resolved_ref;
  std::filesystem::path tree;  ///< the directory holding the files of that commit (== dest)
};

/// Fetches `source` and writes the files of its commit into `dest`.
///
/// The repository is mirrored into <cache_dir>/git/<sha256 of the URL without
/// credentials>.git, a bare repository created once and then fetched
/// incrementally (all branches and tags, pruned; plus the remote's HEAD when
/// the default branch is asked for). A full commit id that the mirror
/// already holds needs no network. An flock on "<mirror>.lock" serialises
/// concurrent builds (other processes and other threads) using one mirror.
///
/// The ref resolves as a branch, then a tag (peeled to its commit), then a
/// commit prefix; a full commit id that no branch or tag reaches is fetched
/// by id when the server allows it. Nothing found: an Error naming the ref,
/// the URL and the nearest branch and tag names.
///
/// `dest` must not exist; it is created (with its parents) and filled from
/// `git archive` of the commit: files 0644 or 0755 as git records them,
/// symlinks as symlinks, mtimes the commit time. .gitattributes'
/// export-ignore, export-subst and filter (e.g. LFS) are not applied, so the
/// files are those of a plain checkout (LFS files stay pointer files).
/// With keep_git_dir, dest/.git is a self-contained repository (no
/// alternates into the cache) holding the commit's history and the tags
/// pointing into it; HEAD is the branch when the ref named one (with
/// origin/<branch> as upstream) and a detached HEAD otherwise; origin is the
/// URL without credentials; the index matches the files (`git status` is
/// clean) and no reflogs or hooks are written.
///
/// Submodules: when the commit has a .gitmodules, every gitlink it lists is
/// fetched the same way (each its own mirror; a relative URL resolves
/// against its superproject's URL) and exported in place, recursively, up to
/// 8 levels. Limits: submodule directories get no .git even with
/// keep_git_dir; submodule.<name>.update/branch/shallow settings are
/// ignored (the gitlink's commit is used); git's protocol policy for
/// submodules applies (file:// and local paths are refused unless
/// protocol.file.allow=always is configured), as with `git submodule update`.
///
/// git runs through posix_spawnp (no shell) with stdin from /dev/null,
/// GIT_TERMINAL_PROMPT=0 and the repository-locating GIT_* variables (GIT_DIR,
/// GIT_WORK_TREE, ...) removed; credential helpers and url.*.insteadOf from
/// the user's git config still apply. A failure is an Error naming the URL
/// (credentials removed), the git command and git's last stderr line; a
/// half-written dest is removed.
GitCheckout fetch_git_source(const GitSource& source, const std::filesystem::path& cache_dir,
                             const std::filesystem::path& dest, bool keep_git_dir);

/// Removes userinfo from a URL for messages ("https://u:p@host/r" ->
/// "https://host/r"). Scp-like "user@host:path" and local paths are unchanged.
std::string redact_url(const std::string& url);

}  // namespace dockless
