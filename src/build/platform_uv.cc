#include "src/build/platform_uv.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <toml++/toml.h>

#include "base/error.h"
#include "base/file_util.h"
#include "layers/archive_handle.h"
#include "oci/digest.h"
#include "oci/http_client.h"
#include "oci/url.h"
#include "src/build/lock_mirror.h"
#include "src/transfer/toml_document.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPypi = "https://pypi.org/simple";
// PyPI's page for uv lists every release's wheels: megabytes, and growing.
constexpr std::uint64_t kMaxPage = 64ull << 20;
// uv is ~40 MB unpacked; a wheel that says more is not uv.
constexpr std::int64_t kMaxBinary = 512ll << 20;

// Characters a platform part may have; a path prefix ("./a=b", "/opt/x=y")
// has others ('.' is allowed in variants, but a leading one is a path).
bool looks_like_platform(const std::string& s) {
  if (s.empty() || s.front() == '/' || s.front() == '.') return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.' || c == '/'))
      return false;
  return true;
}

struct Machine {
  std::string wheel_arch;  // the wheel platform tag's suffix
  int elf = 0;             // e_machine
};

Machine machine_of(const Platform& p) {
  if (p.os != "linux") throw Error("uv for " + p.str() + ": only linux platforms have uv wheels");
  if (p.architecture == "amd64") return {"x86_64", 62};
  if (p.architecture == "arm64") return {"aarch64", 183};
  if (p.architecture == "ppc64le") return {"ppc64le", 21};
  if (p.architecture == "s390x") return {"s390x", 22};
  throw Error("uv for " + p.str() + ": no uv wheel is known for this architecture; pass --uv " + p.str() +
              "=PATH");
}

// ---- the PEP 503 page ------------------------------------------------------------

struct WheelLink {
  std::string filename, url, sha256;
  int rank = 0;  // 2: a manylinux tag fits, 1: only a musllinux one
};

std::string html_unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '&') {
      static const std::pair<std::string_view, char> kEntities[] = {
          {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&#39;", '\''}, {"&#x27;", '\''}};
      bool done = false;
      for (const auto& [name, c] : kEntities)
        if (s.substr(i, name.size()) == name) {
          out += c;
          i += name.size() - 1;
          done = true;
          break;
        }
      if (done) continue;
    }
    out += s[i];
  }
  return out;
}

// The href values of the page's <a> tags, unescaped.
std::vector<std::string> hrefs(std::string_view page) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while ((i = page.find("<a", i)) != std::string_view::npos) {
    const std::size_t end = page.find('>', i);
    if (end == std::string_view::npos) break;
    std::string_view tag = page.substr(i, end - i);
    i = end;
    std::size_t h = tag.find("href=");
    if (h == std::string_view::npos || h + 5 >= tag.size()) continue;
    const char quote = tag[h + 5];
    if (quote != '"' && quote != '\'') continue;
    const std::size_t close = tag.find(quote, h + 6);
    if (close == std::string_view::npos) continue;
    out.push_back(html_unescape(tag.substr(h + 6, close - h - 6)));
  }
  return out;
}

// How well wheel `filename` of uv `version` fits `arch`: 2 manylinux, 1
// musllinux, 0 not at all (another version, arch or OS; not a wheel).
int wheel_rank(const std::string& filename, const std::string& version, const std::string& arch) {
  const std::string prefix = "uv-" + version + "-";
  if (!filename.starts_with(prefix) || !filename.ends_with(".whl")) return 0;
  const std::string stem = filename.substr(0, filename.size() - 4);
  const std::size_t dash = stem.rfind('-');
  std::string_view tags = std::string_view(stem).substr(dash + 1);  // "manylinux_2_17_aarch64.manylinux2014_aarch64"
  int rank = 0;
  while (!tags.empty()) {
    const std::size_t dot = tags.find('.');
    std::string_view tag = tags.substr(0, dot);
    tags = dot == std::string_view::npos ? std::string_view() : tags.substr(dot + 1);
    if (!tag.ends_with("_" + arch)) continue;
    if (tag.starts_with("manylinux")) rank = std::max(rank, 2);
    else if (tag.starts_with("musllinux")) rank = std::max(rank, 1);
  }
  return rank;
}

// The wheel of the page that fits best (the first of equals), or nullopt.
std::optional<WheelLink> pick_wheel(std::string_view page, const std::string& page_url, const std::string& version,
                                    const std::string& arch) {
  std::optional<WheelLink> best;
  for (const std::string& href : hrefs(page)) {
    std::string path = href.substr(0, href.find_first_of("#?"));
    std::string filename = path.substr(path.rfind('/') + 1);
    const int rank = wheel_rank(filename, version, arch);
    if (rank == 0 || (best && best->rank >= rank)) continue;
    WheelLink w;
    w.filename = filename;
    w.rank = rank;
    w.url = resolve_url(page_url, href.substr(0, href.find('#')));
    const std::size_t frag = href.find("#sha256=");
    if (frag != std::string::npos) w.sha256 = href.substr(frag + 8, 64);
    best = std::move(w);
  }
  return best;
}

// ---- HTTP ------------------------------------------------------------------------

HttpRequest request_for(const std::string& url, const RegistryOptions& options) {
  HttpRequest req;
  req.url = url;
  std::optional<Url> parsed = Url::parse(url);
  if (!parsed) throw Error("not an absolute URL: " + url);
  const auto& hosts = options.insecure_hosts;
  req.verify_tls = std::find(hosts.begin(), hosts.end(), parsed->host_port()) == hosts.end();
  req.extra_ca_pem = options.ca_pem;
  return req;
}

// GETs `url` following redirects; a 2xx body goes to `sink` when set. Returns
// the final response (its URL in `final_url`).
HttpResponse get(HttpClient& http, std::string url, const RegistryOptions& options,
                 const std::function<void(const char*, std::size_t)>& sink, std::uint64_t max_body,
                 std::string* final_url) {
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    HttpRequest req = request_for(url, options);
    req.max_body = max_body;
    if (!sink) req.headers.emplace_back("Accept", "application/vnd.pypi.simple.v1+html, text/html;q=0.9");
    HttpResponse r = http.send(req, sink);
    if (r.status >= 300 && r.status < 400) {
      auto loc = r.header("Location");
      if (!loc) throw Error(url + " answered " + std::to_string(r.status) + " without a Location");
      url = resolve_url(url, *loc);
      continue;
    }
    if (final_url) *final_url = url;
    return r;
  }
  throw Error("more than " + std::to_string(kMaxRedirects) + " redirects from " + url);
}

// ---- the wheel -----------------------------------------------------------------

struct Unpacked {
  std::string metadata_version;
  std::string binary_sha;
  bool found_binary = false;
};

// Reads the wheel (a zip, on fd) and writes its uv-VERSION.data/scripts/uv
// to `out`, hashing it; METADATA's Version is read on the way.
Unpacked unpack_uv(int fd, AtomicFile& out, const std::string& what) {
  ArchiveReadHandle a = new_archive_reader();
  archive_read_support_format_zip(a.get());
  if (archive_read_open_fd(a.get(), fd, 1 << 16) != ARCHIVE_OK)
    throw Error(what + ": not a zip: " + archive_message(a.get()));
  Unpacked u;
  archive_entry* e = nullptr;
  int r;
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
    const std::string name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    const bool is_binary = name.starts_with("uv-") && name.ends_with(".data/scripts/uv") &&
                           name.find('/') == name.find(".data/") + 5;
    const bool is_metadata = name.starts_with("uv-") && name.ends_with(".dist-info/METADATA") &&
                             name.find('/') == name.find(".dist-info/") + 10;
    if (!is_binary && !is_metadata) continue;
    if (archive_entry_size(e) > kMaxBinary) throw Error(what + ": " + name + " is too large");
    Sha256 h;
    std::string meta;
    char buf[1 << 16];
    la_ssize_t n;
    while ((n = archive_read_data(a.get(), buf, sizeof buf)) > 0) {
      if (is_binary) {
        out.write(buf, static_cast<std::size_t>(n));
        h.update(buf, static_cast<std::size_t>(n));
      } else if (meta.size() < (1u << 20)) {
        meta.append(buf, static_cast<std::size_t>(n));
      }
    }
    if (n < 0) throw Error(what + ": cannot read " + name + ": " + archive_message(a.get()));
    if (is_binary) {
      u.found_binary = true;
      u.binary_sha = h.finish().str();
    } else {
      std::size_t v = meta.find("\nVersion:");
      if (v != std::string::npos) {
        std::size_t end = meta.find('\n', v + 1);
        std::string value = meta.substr(v + 9, end == std::string::npos ? std::string::npos : end - v - 9);
        value.erase(0, value.find_first_not_of(" \t"));
        value.erase(value.find_last_not_of(" \t\r") + 1);
        u.metadata_version = value;
      }
    }
  }
  if (r != ARCHIVE_EOF) throw Error(what + ": not a readable zip: " + archive_message(a.get()));
  return u;
}

// e_machine of the ELF file at `path`, -1 when it is none.
int elf_machine(const fs::path& path) {
  std::string head;
  try {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return -1;
    char b[20];
    std::size_t got = 0;
    while (got < sizeof b) {
      std::size_t n = read_some(fd.get(), b + got, sizeof b - got, path.string());
      if (n == 0) break;
      got += n;
    }
    if (got < sizeof b || std::string_view(b, 4) != "\x7f" "ELF" || b[5] != 1) return -1;
    return static_cast<unsigned char>(b[18]) | (static_cast<unsigned char>(b[19]) << 8);
  } catch (const Error&) {
    return -1;
  }
}

struct CacheEntry {
  fs::path dir, binary, identity;
};

CacheEntry cache_entry(const fs::path& cache_dir, const std::string& version, const Platform& p) {
  CacheEntry c;
  c.dir = cache_dir / "uv-platforms" / (version + "-" + p.os + "-" + p.architecture);
  c.binary = c.dir / "uv";
  c.identity = c.dir / "uv.identity";  // "SHA\nVERSION\n", written after the binary
  return c;
}

std::optional<UvTool> cached(const CacheEntry& c) {
  std::string text;
  try {
    text = read_file(c.identity);
  } catch (const Error&) {
    return std::nullopt;
  }
  std::size_t nl = text.find('\n');
  struct stat st;
  if (nl != 71 || !text.starts_with("sha256:")) return std::nullopt;
  if (::stat(c.binary.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  UvTool uv;
  uv.binary = c.binary;
  uv.sha = text.substr(0, nl);
  uv.short_version = text.substr(nl + 1, text.find('\n', nl + 1) - nl - 1);
  if (uv.short_version.empty()) return std::nullopt;
  uv.version = "uv " + uv.short_version;
  return uv;
}

}  // namespace

namespace {

struct Found {
  WheelLink wheel;
  std::string index;  // as configured, for messages
};

// The first index (in order, mirrors applied) with a fitting wheel of
// `version`; Error naming every index and what each said when none has one.
Found find_wheel(HttpClient& http, const std::string& version, const Machine& m, const Platform& p,
                 const PlatformUvSource& source, const std::vector<IndexMirror>& mirrors) {
  std::vector<std::string> urls = source.index_urls;
  if (urls.empty()) urls.emplace_back(kPypi);
  std::string said;
  for (const std::string& index : urls) {
    std::string base = mirror_url(index, mirrors);
    while (base.ends_with('/')) base.pop_back();
    const std::string page_url = base + "/uv/";
    std::string final_url;
    HttpResponse r;
    try {
      r = get(http, page_url, source.http, {}, kMaxPage, &final_url);
    } catch (const Error& e) {
      said += "; " + index + ": " + e.what();
      continue;
    }
    if (r.status != 200) {
      said += "; " + index + ": HTTP " + std::to_string(r.status);
      continue;
    }
    if (auto w = pick_wheel(r.body, final_url, version, m.wheel_arch)) {
      if (w->sha256.size() != 64)
        throw Error("uv for " + p.str() + ": " + index + " gives no #sha256= for " + w->filename +
                    "; cannot verify it (pass --uv " + p.str() + "=PATH)");
      return {std::move(*w), index};
    }
    said += "; " + index + ": no uv " + version + " wheel for " + m.wheel_arch;
  }
  throw Error("uv for " + p.str() + ": no uv " + version + " wheel for " + m.wheel_arch + " on the index" +
              said + " (pass --uv " + p.str() + "=PATH)");
}

// Downloads the wheel into a temp file in `tmp_dir` through SHA-256 and
// checks it; returns the open temp file (removed when dropped).
std::unique_ptr<AtomicFile> download(HttpClient& http, const Found& f, const Platform& p,
                                     const PlatformUvSource& source, const std::vector<IndexMirror>& mirrors,
                                     const fs::path& tmp_dir) {
  const std::string url = mirror_url(f.wheel.url, mirrors);
  auto file = std::make_unique<AtomicFile>(tmp_dir / (f.wheel.filename + ".download"));
  Sha256 h;
  HttpResponse r;
  try {
    r = get(http, url, source.http, [&](const char* d, std::size_t n) {
      file->write(d, n);
      h.update(d, n);
    }, 0, nullptr);
  } catch (const TransportError& e) {
    throw Error("uv for " + p.str() + ": cannot download " + url + ": " + e.what());
  }
  if (r.status != 200)
    throw Error("uv for " + p.str() + ": " + url + " answered HTTP " + std::to_string(r.status));
  const std::string got = h.finish().hex();
  std::string want = f.wheel.sha256;
  std::transform(want.begin(), want.end(), want.begin(), [](unsigned char c) { return std::tolower(c); });
  if (got != want)
    throw Error("uv for " + p.str() + ": " + f.wheel.filename + " from " + url + " has sha256 " + got + ", " +
                f.index + " says " + want);
  return file;
}

UvTool unpack_into_cache(const AtomicFile& wheel, const Found& f, const std::string& version, const Machine& m,
                         const Platform& p, const CacheEntry& c) {
  const std::string what = "uv for " + p.str() + ": " + f.wheel.filename;
  fs::create_directories(c.dir);
  try {
    AtomicFile bin(c.binary);
    UniqueFd in(::open(wheel.temp_path().c_str(), O_RDONLY | O_CLOEXEC));  // AtomicFile's fd is write-only
    if (in.get() < 0) throw_errno(what + ": cannot reopen " + wheel.temp_path().string());
    Unpacked u = unpack_uv(in.get(), bin, what);
    if (!u.found_binary) throw Error(what + " holds no uv-" + version + ".data/scripts/uv");
    if (u.metadata_version != version)
      throw Error(what + ": its METADATA says version \"" + u.metadata_version + "\", not " + version);
    if (::fchmod(bin.fd(), 0755) != 0) throw_errno(what + ": cannot chmod");
    const int got = elf_machine(bin.temp_path());
    if (got != m.elf)
      throw Error(what + ": its uv is not an ELF of " + m.wheel_arch + " (e_machine " + std::to_string(got) + ")");
    bin.commit();
    write_file_atomic(c.identity, u.binary_sha + "\n" + version + "\n");
    UvTool uv;
    uv.binary = c.binary;
    uv.sha = u.binary_sha;
    uv.short_version = version;
    uv.version = "uv " + version;
    return uv;
  } catch (...) {
    std::error_code ec;
    fs::remove(c.dir, ec);  // only when empty: a concurrent build's finished copy stays
    throw;
  }
}

std::string env_value(const std::vector<std::string>& env, std::string_view name) {
  std::string found;
  for (const std::string& kv : env)
    if (kv.size() > name.size() && kv.starts_with(name) && kv[name.size()] == '=') found = kv.substr(name.size() + 1);
  return found;
}

// "name=https://..." (uv's named index form) -> the URL.
std::string strip_index_name(const std::string& v) {
  const std::size_t eq = v.find('='), scheme = v.find("://");
  return eq != std::string::npos && (scheme == std::string::npos || eq < scheme) ? v.substr(eq + 1) : v;
}

}  // namespace

std::pair<std::string, fs::path> parse_uv_option(const std::string& text) {
  if (text.empty()) throw UsageError("--uv needs PATH or PLATFORM=PATH");
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos || !looks_like_platform(text.substr(0, eq))) return {"", fs::path(text)};
  const std::string plat = text.substr(0, eq);
  if (plat.find('/') == std::string::npos)
    throw UsageError("--uv " + text + ": PLATFORM must be os/arch[/variant], e.g. linux/arm64=" +
                     text.substr(eq + 1));
  Platform p;
  try {
    p = Platform::parse(plat);
  } catch (const Error& e) {
    throw UsageError(std::string("--uv ") + text + ": " + e.what());
  }
  if (eq + 1 == text.size()) throw UsageError("--uv " + text + ": no PATH after '='");
  return {p.str(), fs::path(text.substr(eq + 1))};
}

std::vector<std::string> platform_uv_index_urls(const std::vector<std::string>& passthrough_env,
                                                const fs::path& pyproject) {
  std::vector<std::string> out;
  std::string project_default;
  std::error_code ec;
  if (!pyproject.empty() && fs::exists(pyproject, ec)) {
    const toml::table doc = parse_toml_document(read_file(pyproject), pyproject.string());
    if (const toml::array* indexes = doc["tool"]["uv"]["index"].as_array())
      for (const auto& n : *indexes) {
        const toml::table* t = n.as_table();
        if (!t || !(*t)["url"].is_string()) continue;
        const std::string u = (*t)["url"].value_or(std::string());
        if ((*t)["default"].value_or(false)) project_default = u;
        else if (!(*t)["explicit"].value_or(false)) out.push_back(u);
      }
  }
  std::vector<std::string> env_extra;
  const std::string uv_index = env_value(passthrough_env, "UV_INDEX");
  for (std::size_t i = 0; i < uv_index.size();) {
    std::size_t j = uv_index.find_first_of(" \n\t", i);
    if (j == std::string::npos) j = uv_index.size();
    if (j > i) env_extra.push_back(strip_index_name(uv_index.substr(i, j - i)));
    i = j + 1;
  }
  out.insert(out.begin(), env_extra.begin(), env_extra.end());  // the environment's come first, as in uv
  std::string def = strip_index_name(env_value(passthrough_env, "UV_DEFAULT_INDEX"));
  if (def.empty()) def = env_value(passthrough_env, "UV_INDEX_URL");
  if (def.empty()) def = project_default;
  if (def.empty()) def = kPypi;
  out.push_back(def);
  return out;
}

UvTool fetch_platform_uv(const UvTool& host, const Platform& platform, const PlatformUvSource& source,
                         const fs::path& cache_dir) {
  const std::string& version = host.short_version;
  if (version.empty()) throw Error("uv for " + platform.str() + ": the host's uv version is unknown");
  const Machine m = machine_of(platform);
  const CacheEntry c = cache_entry(cache_dir, version, platform);
  if (auto uv = cached(c)) return *uv;
  if (source.offline)
    throw Error("uv for " + platform.str() + ": --offline and uv " + version + " for it is not in " +
                c.dir.string() + " (build once online, or pass --uv " + platform.str() + "=PATH)");
  std::vector<IndexMirror> mirrors;
  for (const auto& [original, mirror] : source.index_mirrors)
    mirrors.push_back({normalize_mirror_url(original, "index mirror"), normalize_mirror_url(mirror, "index mirror"),
                       "index mirror"});
  init_libcurl();
  std::unique_ptr<HttpClient> http =
      source.http.http_factory ? source.http.http_factory() : make_curl_http_client();
  const Found f = find_wheel(*http, version, m, platform, source, mirrors);
  const fs::path tmp_dir = cache_dir / "uv-platforms";
  fs::create_directories(tmp_dir);
  std::unique_ptr<AtomicFile> wheel = download(*http, f, platform, source, mirrors, tmp_dir);
  return unpack_into_cache(*wheel, f, version, m, platform, c);
}

}  // namespace dockless
