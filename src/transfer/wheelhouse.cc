#include "src/transfer/wheelhouse.h"

#include <algorithm>
#include <map>
#include <toml++/toml.h>

#include "base/error.h"
#include "oci/http_client.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/url.h"
#include "src/transfer/toml_document.h"

namespace dockless {

namespace {

/// The last path segment of a URL, percent-decoded ("a%2Bb.whl" -> "a+b.whl").
std::string file_name_of(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  std::string seg = path.substr(path.rfind('/') + 1);
  std::string out;
  for (std::size_t i = 0; i < seg.size(); ++i) {
    if (seg[i] == '%' && i + 2 < seg.size() && std::isxdigit(static_cast<unsigned char>(seg[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(seg[i + 2]))) {
      out += static_cast<char>(std::stoi(seg.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += seg[i];
    }
  }
  return out;
}

void add_file(const toml::table& t, bool wheel, const std::string& what,
              std::map<std::string, LockedFile>& by_digest) {
  auto url = t["url"].value<std::string>();
  if (!url) return;  // a path or git source: nothing to download
  auto hash = t["hash"].value<std::string>();
  if (!hash) throw Error(what + ": " + *url + " has no hash");
  if (hash->rfind("sha256:", 0) != 0) throw Error(what + ": " + *url + ": hash \"" + *hash + "\" is not sha256");
  LockedFile f;
  f.url = *url;
  f.name = file_name_of(*url);
  if (f.name.empty() || f.name.find('/') != std::string::npos || f.name == "." || f.name == "..")
    throw Error(what + ": no file name in URL " + *url);
  try {
    f.digest = Digest::parse(*hash);
  } catch (const Error& e) {
    throw Error(what + ": " + *url + ": " + e.what());
  }
  f.size = t["size"].value<std::int64_t>().value_or(-1);
  f.wheel = wheel;
  by_digest.emplace(f.digest.str(), std::move(f));
}

}  // namespace

std::vector<LockedFile> locked_files(std::string_view lock_text, const std::string& what) {
  const toml::table doc = parse_toml_document(lock_text, what);
  std::map<std::string, LockedFile> by_digest;
  if (const toml::array* packages = doc["package"].as_array()) {
    for (const auto& p : *packages) {
      const toml::table* pkg = p.as_table();
      if (!pkg) continue;
      if (const toml::table* sdist = (*pkg)["sdist"].as_table()) add_file(*sdist, false, what, by_digest);
      if (const toml::array* wheels = (*pkg)["wheels"].as_array())
        for (const auto& w : *wheels)
          if (const toml::table* wt = w.as_table()) add_file(*wt, true, what, by_digest);
    }
  }
  std::vector<LockedFile> out;
  for (auto& [d, f] : by_digest) out.push_back(std::move(f));
  std::sort(out.begin(), out.end(), [](const LockedFile& a, const LockedFile& b) {
    return a.name != b.name ? a.name < b.name : a.digest.str() < b.digest.str();
  });
  return out;
}

std::uint64_t download_locked_file(const LockedFile& file, const BlobStore& store,
                                   const RegistryOptions& options) {
  if (store.contains(file.digest)) return 0;
  init_libcurl();
  std::unique_ptr<HttpClient> http = options.http_factory ? options.http_factory() : make_curl_http_client();
  std::string url = file.url;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    HttpRequest req;
    req.url = url;
    std::optional<Url> parsed = Url::parse(url);
    if (!parsed) throw Error(file.name + ": not an absolute URL: " + url);
    const std::string host = parsed->host_port();
    req.verify_tls = std::find(options.insecure_hosts.begin(), options.insecure_hosts.end(), host) ==
                     options.insecure_hosts.end();
    req.extra_ca_pem = options.ca_pem;
    BlobWriter writer(store);
    HttpResponse r;
    try {
      r = http->send(req, [&](const char* data, std::size_t n) { writer.write(data, n); });
    } catch (const TransportError& e) {
      throw Error(file.name + ": cannot download " + url + ": " + e.what());
    }
    if (r.status >= 300 && r.status < 400) {
      auto loc = r.header("Location");
      if (!loc) throw Error(file.name + ": " + url + " answered " + std::to_string(r.status) + " without a Location");
      url = resolve_url(url, *loc);
      continue;
    }
    if (r.status != 200)
      throw Error(file.name + ": " + url + " answered HTTP " + std::to_string(r.status));
    if (file.size >= 0 && writer.size() != static_cast<std::uint64_t>(file.size))
      throw Error(file.name + " from " + file.url + " is " + std::to_string(writer.size()) +
                  " bytes, uv.lock says " + std::to_string(file.size));
    const std::uint64_t got = writer.size();
    try {
      writer.commit(file.digest);
    } catch (const Error& e) {
      throw Error(file.name + " from " + file.url + " does not match uv.lock: " + e.what());
    }
    return got;
  }
  throw Error(file.name + ": more than " + std::to_string(kMaxRedirects) + " redirects from " + file.url);
}

std::string wheelhouse_manifest(const std::vector<LockedFile>& files, const std::string& lock_sha256_hex,
                                const BlobStore& store) {
  Manifest m;
  m.media_type = std::string(media_type::kOciManifest);
  m.artifact_type = std::string(media_type::kWheelhouse);
  m.config.media_type = std::string(media_type::kOciEmpty);
  m.config.digest = store.put("{}");
  m.config.size = 2;
  for (const auto& f : files) {
    Descriptor d;
    d.media_type = std::string(f.wheel ? media_type::kPythonWheel : media_type::kPythonSdist);
    d.digest = f.digest;
    d.size = static_cast<std::int64_t>(store.size_of(f.digest));
    d.annotations["org.opencontainers.image.title"] = f.name;
    d.annotations["dev.dockless.url"] = f.url;
    m.layers.push_back(std::move(d));
  }
  m.annotations["dev.dockless.lock.sha256"] = lock_sha256_hex;
  return m.to_json();
}

}  // namespace dockless
