// How uv.lock is rewritten: toml++ parses it and gives the exact source
// position of every `url` / `registry` string, and only those literals are
// replaced in the original text. Re-serializing the parsed table instead would
// reorder keys and reformat every inline table (uv would still read it, but
// nothing would show that the hashes are untouched); a plain line-based
// search for `url = "` would also hit text that only looks like a key. The
// result is parsed again and its URLs compared with the expected ones.
#include "src/build/lock_mirror.h"

#include <toml++/toml.h>

#include <algorithm>
#include <sstream>

#include "base/error.h"
#include "base/file_util.h"
#include "src/transfer/toml_document.h"

namespace dockless {

namespace {

/// "https://user:secret@host/x" -> "https://host/x", for messages.
std::string shown(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  auto host = scheme + 3;
  auto slash = url.find('/', host);
  auto at = url.rfind('@', slash == std::string::npos ? url.size() : slash);
  if (at == std::string::npos || at < host) return url;
  return url.substr(0, host) + url.substr(at + 1);
}

bool at_boundary(const std::string& url, const std::string& prefix) {
  if (url.size() < prefix.size() || url.compare(0, prefix.size(), prefix) != 0) return false;
  if (url.size() == prefix.size()) return true;
  char c = url[prefix.size()];
  return c == '/' || c == '?' || c == '#';
}

/// A string value of uv.lock that is a URL to route, and where it is.
struct Site {
  std::string value;
  std::string replacement;
  toml::source_region where;
};

/// Finds every `url` string under `node` (sdist, wheels, source and
/// requires-dist of a direct URL). `registry` values stay as they are: uv
/// keys its cache of registry wheels by the index URL, so the shipped uv
/// cache then serves the image's own uv.lock offline, as without a mirror;
/// and `uv sync --frozen` downloads from the file URLs only.
class LockWalker {
 public:
  LockWalker(const std::vector<IndexMirror>& m, const UrlRoutes& r) : mirrors(m), routes(r), used(m.size(), 0) {}

  void walk(const toml::node& node, std::string_view key) {
    if (const auto* t = node.as_table()) {
      for (auto&& [k, v] : *t) walk(v, k.str());
    } else if (const auto* a = node.as_array()) {
      for (const auto& e : *a) walk(e, key);
    } else if (const auto* s = node.as_string(); s && key == "registry") {
      registries.push_back(s->get());
    } else if (const auto* s = node.as_string(); s && key == "url") {
      auto route = routes.find(s->get());
      bool routed = route != routes.end();
      Site site{s->get(), routed ? route->second : mirror_url(s->get(), mirrors, &used), s->source()};
      values.push_back(site.replacement);
      if (routed) ++routed_count;
      if (site.replacement == site.value) unmirrored.push_back(site.value);
      else sites.push_back(std::move(site));
    }
  }

  const std::vector<IndexMirror>& mirrors;
  const UrlRoutes& routes;
  std::vector<std::size_t> used;
  std::size_t routed_count = 0;  ///< URLs replaced by a route
  std::vector<Site> sites;
  std::vector<std::string> unmirrored;  ///< file URLs no mirror covers
  std::vector<std::string> values;      ///< every URL, mirrored, in document order
  std::vector<std::string> registries;  ///< source.registry values (never rewritten)
};

/// The byte offset of 1-based code-point column `column` in `line`.
std::size_t byte_offset(std::string_view line, std::size_t column) {
  std::size_t i = 0;
  for (std::size_t c = 1; c < column && i < line.size(); ++c) {
    ++i;
    while (i < line.size() && (static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) ++i;
  }
  return i;
}

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      lines.emplace_back(text.substr(pos));
      break;
    }
    lines.emplace_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

/// Replaces each site's literal (a basic string holding exactly its value:
/// uv writes URLs unescaped) with the quoted replacement.
std::string replace_sites(std::string_view text, std::vector<Site> sites, const std::string& file) {
  std::vector<std::string> lines = split_lines(text);
  // Right to left, so earlier columns on a line stay valid.
  std::sort(sites.begin(), sites.end(), [](const Site& a, const Site& b) {
    return std::make_pair(a.where.begin.line, a.where.begin.column) >
           std::make_pair(b.where.begin.line, b.where.begin.column);
  });
  for (const Site& s : sites) {
    std::size_t ln = s.where.begin.line;
    const std::string literal = "\"" + s.value + "\"";
    if (ln == 0 || ln > lines.size() || s.where.end.line != s.where.begin.line)
      throw Error(file + ":" + std::to_string(ln) + ": cannot rewrite " + shown(s.value) + " for a mirror");
    std::string& line = lines[ln - 1];
    std::size_t at = byte_offset(line, s.where.begin.column);
    if (line.compare(at, literal.size(), literal) != 0)
      throw Error(file + ":" + std::to_string(ln) + ": cannot rewrite " + shown(s.value) +
                  " for a mirror (not a plain quoted string)");
    line.replace(at, literal.size(), "\"" + s.replacement + "\"");
  }
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) out += (i ? "\n" : "") + lines[i];
  return out;
}


}  // namespace

std::string normalize_mirror_url(std::string_view url, const std::string& what) {
  std::string u(url);
  while (u.size() > 1 && u.back() == '/' && u.find("://") + 3 < u.size()) u.pop_back();
  auto scheme = u.find("://");
  std::string s = scheme == std::string::npos ? "" : u.substr(0, scheme);
  if (s != "http" && s != "https" && s != "file")
    throw Error(what + ": \"" + shown(u) + "\" is not an http://, https:// or file:// URL");
  if (s != "file" && (u.size() == scheme + 3 || u[scheme + 3] == '/'))
    throw Error(what + ": \"" + shown(u) + "\" has no host");
  for (char c : u) {
    if (c == ' ' || c == '"' || c == '\\' || c == '?' || c == '#' || static_cast<unsigned char>(c) < 0x20 ||
        c == 0x7f)
      throw Error(what + ": \"" + shown(u) + "\" has a character a URL prefix cannot have (space, quote, "
                  "backslash, ? or #)");
  }
  return u;
}

IndexMirror parse_index_mirror_option(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw UsageError("--index-mirror " + shown(text) + ": expected ORIGINAL=MIRROR, e.g. "
                     "https://files.pythonhosted.org=http://mirror.local/pypi-files");
  try {
    return {normalize_mirror_url(text.substr(0, eq), "--index-mirror ORIGINAL"),
            normalize_mirror_url(text.substr(eq + 1), "--index-mirror MIRROR"), "--index-mirror"};
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

std::vector<IndexMirror> merge_index_mirrors(const std::map<std::string, std::string>& spec,
                                             const std::vector<IndexMirror>& command_line) {
  std::vector<IndexMirror> out;
  for (const auto& [from, to] : spec) out.push_back({from, to, "uv.index-mirrors"});
  for (const auto& m : command_line) {
    auto same = std::find_if(out.begin(), out.end(), [&](const IndexMirror& o) { return o.original == m.original; });
    if (same != out.end()) *same = m;
    else out.push_back(m);
  }
  return out;
}

std::string mirror_url(const std::string& url, const std::vector<IndexMirror>& mirrors,
                       std::vector<std::size_t>* used) {
  std::size_t best = mirrors.size();
  for (std::size_t i = 0; i < mirrors.size(); ++i) {
    if (!at_boundary(url, mirrors[i].original)) continue;
    if (best == mirrors.size() || mirrors[i].original.size() > mirrors[best].original.size()) best = i;
  }
  if (best == mirrors.size()) return url;
  if (used) ++(*used)[best];
  return mirrors[best].mirror + url.substr(mirrors[best].original.size());
}

MirroredLock mirror_lock(std::string_view lock_text, const std::vector<IndexMirror>& mirrors,
                         const std::string& file, const UrlRoutes& routes) {
  toml::table doc = parse_toml_document(lock_text, file);
  LockWalker w(mirrors, routes);
  w.walk(doc, "");
  MirroredLock out;
  out.text = replace_sites(lock_text, w.sites, file);
  out.rewritten = w.sites.size();
  out.routed = w.routed_count;
  // The rewrite changed exactly the URLs it meant to, and nothing else parses differently.
  toml::table again = parse_toml_document(out.text, file + " (mirrored copy)");
  const std::vector<IndexMirror> none;
  const UrlRoutes no_routes;
  LockWalker check(none, no_routes);
  check.walk(again, "");
  if (check.values != w.values)
    throw Error(file + ": the mirrored copy does not hold the expected URLs; uv.lock left as it is");
  for (std::size_t i = 0; i < mirrors.size(); ++i) {
    if (w.used[i] != 0) continue;
    std::string warning = mirrors[i].where + " " + shown(mirrors[i].original) + ": no URL in " + file + " starts with it";
    bool an_index = std::any_of(w.registries.begin(), w.registries.end(),
                                [&](const std::string& r) { return at_boundary(r, mirrors[i].original); });
    const std::string example = !w.unmirrored.empty() ? w.unmirrored.front()
                                : !w.sites.empty()     ? w.sites.front().value
                                                       : "";
    if (an_index && !example.empty())
      warning += " (it is an index; uv downloads the files from their own URLs, such as " + shown(example) +
                 ": map their prefix)";
    out.warnings.push_back(warning);
  }
  if (out.rewritten > w.routed_count && !w.unmirrored.empty())
    out.warnings.push_back(std::to_string(w.unmirrored.size()) + " download URL(s) of " + file +
                           " match no mirror and are fetched as locked, e.g. " + shown(w.unmirrored.front()));
  return out;
}

std::filesystem::path prepare_mirrored_lock(const std::filesystem::path& lock,
                                            const std::vector<IndexMirror>& mirrors,
                                            const std::filesystem::path& dir,
                                            const std::function<void(const std::string&)>& note,
                                            const std::function<void(const std::string&)>& warn,
                                            const UrlRoutes& routes) {
  std::error_code ec;
  if ((mirrors.empty() && routes.empty()) || !std::filesystem::exists(lock, ec))
    return {};  // no uv.lock: no uv sync either
  MirroredLock m = mirror_lock(read_file(lock), mirrors, "uv.lock", routes);
  for (const auto& w : m.warnings) warn(w);
  std::filesystem::path out = dir / "index-mirror" / "uv.lock";
  std::filesystem::create_directories(out.parent_path());
  write_file_atomic(out, m.text);
  // A wheelhouse says what it routed itself (wheelhouse_source.cc).
  if (!mirrors.empty())
    note("uv.lock: " + std::to_string(m.rewritten - std::min(m.rewritten, m.routed)) + " URL(s) routed to " +
         std::to_string(mirrors.size()) + " index mirror(s) (a private copy; uv.lock is unchanged)");
  return out;
}

// uv (0.13, NO_COLOR) writes:
//   error: Failed to download `common-a==1.0.0`
//     cause: Failed to fetch: http://127.0.0.1:1/files/common_a-1.0.0-py3-none-any.whl
//     cause: HTTP status client error (404 File not found) for url (http://...)
// older versions "Caused by:" and backquoted URLs.
void UvDownloadFailure::feed(std::string_view line) {
  constexpr std::string_view kError = "error: Failed to download `";
  if (package_.empty() && line.rfind(kError, 0) == 0) {
    auto end = line.find('`', kError.size());
    if (end == std::string_view::npos) return;
    package_ = std::string(line.substr(kError.size(), end - kError.size()));
    in_report_ = true;
    return;
  }
  if (!in_report_) return;
  std::string_view l = line;
  while (!l.empty() && (l.front() == ' ' || l.front() == '\t')) l.remove_prefix(1);
  std::string_view cause;
  for (std::string_view p : {std::string_view("cause: "), std::string_view("Caused by: ")})
    if (l.rfind(p, 0) == 0) cause = l.substr(p.size());
  if (cause.empty()) {
    if (!l.empty()) in_report_ = false;  // the report ended (a hint follows)
    return;
  }
  constexpr std::string_view kFetch = "Failed to fetch: ";
  if (url_.empty() && cause.rfind(kFetch, 0) == 0) {
    std::string_view u = cause.substr(kFetch.size());
    while (!u.empty() && (u.front() == '`' || u.front() == '"')) u.remove_prefix(1);
    while (!u.empty() && (u.back() == '`' || u.back() == '"')) u.remove_suffix(1);
    url_ = std::string(u);
  }
  // Offline (UV_OFFLINE): the URL is at the end, and the reason is that.
  constexpr std::string_view kOffline = "Network connectivity is disabled, but the requested data wasn't found in the cache: ";
  if (cause.rfind(kOffline, 0) == 0) {
    if (url_.empty()) url_ = std::string(cause.substr(kOffline.size()));
    cause_ = "offline, and neither the uv cache nor a --wheels-from wheelhouse has it";
    return;
  }
  // The innermost cause, without the URL uv repeats.
  std::string c(cause);
  if (auto f = c.find(" for url ("); f != std::string::npos) c.erase(f);
  if (auto f = c.find("HTTP status client error ("); f == 0 && c.back() == ')')
    c = c.substr(26, c.size() - 27);
  cause_ = c;
}

std::string UvDownloadFailure::line() const {
  if (package_.empty()) return "";
  std::string out = "cannot download `" + package_ + "`";
  if (!url_.empty()) out += " from " + shown(url_);
  if (!cause_.empty() && cause_.rfind("Failed to fetch", 0) != 0) out += ": " + cause_;
  return out;
}

}  // namespace dockless
