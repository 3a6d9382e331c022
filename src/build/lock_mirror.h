// Installing a locked project from a package mirror without re-locking.
// `uv sync --frozen` downloads from the URLs written in uv.lock and ignores
// the index settings, so the build gives uv a private copy of uv.lock whose
// URLs start with the mirror's instead (bind-mounted read-only over the
// project's uv.lock in the sandbox). Only download URLs change (a PyPI
// mirror maps https://files.pythonhosted.org, not https://pypi.org/simple);
// hashes stay as they are, and uv still checks them; the user's uv.lock and every cache key stay the same (a
// mirror is a route, not an input).
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace dockless {

/// URLs of uv.lock that start with `original` (at a URL boundary: the end,
/// "/", "?" or "#") start with `mirror` instead. Both are kept without a
/// trailing "/".
struct IndexMirror {
  std::string original;
  std::string mirror;
  std::string where;  ///< "--index-mirror" or "uv.index-mirrors", for messages
};

/// Checks one ORIGINAL or MIRROR URL: http://, https:// or file://, no
/// spaces, quotes, backslashes, "?" or "#". Returns it without a trailing
/// "/"; throws Error("<what>: ...") otherwise.
std::string normalize_mirror_url(std::string_view url, const std::string& what);

/// "--index-mirror ORIGINAL=MIRROR" (the first "=" splits: ORIGINAL has none
/// to spare). Throws UsageError.
IndexMirror parse_index_mirror_option(const std::string& text);

/// The mirrors in effect: the spec's (ORIGINAL -> MIRROR), then the command
/// line's; a command-line entry replaces the spec's for the same ORIGINAL.
std::vector<IndexMirror> merge_index_mirrors(const std::map<std::string, std::string>& spec,
                                             const std::vector<IndexMirror>& command_line);

/// `url` with the longest matching ORIGINAL replaced by its MIRROR; `url`
/// itself when none matches. `used` (when given, one per mirror) counts hits.
std::string mirror_url(const std::string& url, const std::vector<IndexMirror>& mirrors,
                       std::vector<std::size_t>* used = nullptr);

struct MirroredLock {
  std::string text;                   ///< the rewritten uv.lock
  std::size_t rewritten = 0;          ///< URLs changed
  std::size_t routed = 0;             ///< of them, by a route
  std::vector<std::string> warnings;  ///< an ORIGINAL that matched nothing; files left unmirrored
};

/// Exact URL -> URL replacements that come before any mirror (a wheelhouse
/// file served to uv on loopback, wheelhouse_source.h).
using UrlRoutes = std::map<std::string, std::string>;

/// uv.lock's text with every `url` value (sdist, wheels, direct sources)
/// rewritten by `routes`, else by `mirrors`; all other bytes as they were, the index URLs of
/// `source = { registry = ... }` included (see lock_mirror.cc). `file` names it in errors.
/// Throws Error when the text is not TOML or a value cannot be rewritten.
MirroredLock mirror_lock(std::string_view lock_text, const std::vector<IndexMirror>& mirrors,
                         const std::string& file = "uv.lock", const UrlRoutes& routes = {});

/// For a build: with no mirrors and no routes (or no uv.lock), "". Else reads `lock`, writes its
/// rewritten copy to DIR/index-mirror/uv.lock (atomically), tells `note` how many URLs
/// go to a mirror and `warn` each warning, and returns the copy's path.
std::filesystem::path prepare_mirrored_lock(const std::filesystem::path& lock,
                                            const std::vector<IndexMirror>& mirrors,
                                            const std::filesystem::path& dir,
                                            const std::function<void(const std::string&)>& note,
                                            const std::function<void(const std::string&)>& warn,
                                            const UrlRoutes& routes = {});

/// uv's report of a failed download, read line by line from its output
/// ("error: Failed to download `pkg==1.0`", "cause: Failed to fetch: URL",
/// ..., the root cause last), as one line: "cannot download `pkg==1.0` from
/// URL: 404 File not found". Empty when the output holds no such report.
class UvDownloadFailure {
 public:
  void feed(std::string_view line);
  std::string line() const;

 private:
  std::string package_, url_, cause_;
  bool in_report_ = false;
};

}  // namespace dockless
