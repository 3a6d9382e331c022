#include "src/build/sbom.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

#include "base/error.h"
#include "base/file_util.h"
#include "layers/archive_handle.h"
#include "oci/image_config.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "src/build/build_state.h"
#include "src/build/python_dist.h"
#include "src/transfer/toml_document.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kEmptyConfig = "application/vnd.oci.empty.v1+json";
constexpr std::size_t kMaxPyvenvCfg = 64 * 1024;

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

/// The path components of a tar entry name, without "./" and "/" prefixes.
std::vector<std::string> components(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view part = path.substr(i, j - i);
    if (!part.empty() && part != ".") out.emplace_back(part);
    i = j + 1;
  }
  return out;
}

/// Whether `parts` starts with the components of the image path `prefix`.
bool under(const std::vector<std::string>& parts, const std::vector<std::string>& prefix) {
  return parts.size() > prefix.size() && std::equal(prefix.begin(), prefix.end(), parts.begin());
}

/// What the SBOM needs from the image's layers (after the base's).
struct LayerScan {
  struct Place {
    std::string venv;  ///< "" for the uv cache
    std::vector<std::string> prefix;
  };
  std::vector<Place> places;
  std::map<std::string, SbomPythonPackage> packages;  ///< by normalized name@version
  std::string python_version;

  void add(const std::string& dist_dir, const std::string& venv) {
    auto nv = dist_info_name(dist_dir);
    if (!nv) return;
    std::string key = normalize_python_name(nv->first) + "@" + nv->second;
    SbomPythonPackage& p = packages[key];
    p.name = nv->first;
    p.version = nv->second;
    if (venv.empty()) {
      p.in_uv_cache = true;
    } else if (std::find(p.venvs.begin(), p.venvs.end(), venv) == p.venvs.end()) {
      p.venvs.push_back(venv);
      std::sort(p.venvs.begin(), p.venvs.end());
    }
  }

  /// One entry: a dist-info directory of a venv's site-packages or anywhere
  /// in the uv cache; a venv's pyvenv.cfg (the Python version).
  void entry(archive* a, const std::vector<std::string>& parts) {
    if (parts.back().rfind(".wh.", 0) == 0) return;  // a deletion, not a package
    for (const auto& place : places) {
      if (!under(parts, place.prefix)) continue;
      std::size_t n = place.prefix.size();
      if (place.venv.empty()) {
        for (std::size_t i = n; i < parts.size(); ++i) add(parts[i], "");
      } else if (parts.size() == n + 1 && parts[n] == "pyvenv.cfg" && python_version.empty()) {
        read_pyvenv_cfg(a);
      } else {
        for (std::size_t i = n; i + 1 < parts.size(); ++i)
          if (parts[i] == "site-packages") add(parts[i + 1], place.venv);
      }
      return;
    }
  }

  void read_pyvenv_cfg(archive* a) {
    std::string text(kMaxPyvenvCfg, '\0');
    la_ssize_t n = archive_read_data(a, text.data(), text.size());
    if (n <= 0) return;
    text.resize(static_cast<std::size_t>(n));
    for (const char* key : {"version_info", "version"}) {
      std::size_t at = text.find(std::string("\n") + key);
      if (text.rfind(key, 0) == 0) at = 0;
      else if (at != std::string::npos) ++at;
      else continue;
      std::size_t eq = text.find('=', at), end = text.find('\n', at);
      if (eq == std::string::npos || (end != std::string::npos && eq > end)) continue;
      std::string v = text.substr(eq + 1, end == std::string::npos ? std::string::npos : end - eq - 1);
      v.erase(0, v.find_first_not_of(" \t"));
      v.erase(v.find_last_not_of(" \t\r") + 1);
      if (!v.empty()) python_version = v;
      return;
    }
  }

  void scan(const fs::path& layer) {
    ArchiveReadHandle a = new_archive_reader();
    archive_read_support_filter_all(a.get());
    archive_read_support_format_tar(a.get());
    if (archive_read_open_filename(a.get(), layer.c_str(), 1 << 16) != ARCHIVE_OK)
      throw Error("cannot read layer " + layer.string() + ": " + archive_message(a.get()));
    archive_entry* e = nullptr;
    int r;
    while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
      const char* name = archive_entry_pathname(e);
      if (name == nullptr) continue;
      std::vector<std::string> parts = components(name);
      if (!parts.empty()) entry(a.get(), parts);
    }
    if (r != ARCHIVE_EOF) throw Error("cannot read layer " + layer.string() + ": " + archive_message(a.get()));
  }
};

void write_property(json::Writer& w, const std::string& name, const std::string& value) {
  w.StartObject();
  json::write_string_member(w, "name", name);
  json::write_string_member(w, "value", value);
  w.EndObject();
}

/// purl's percent-encoding of a name or version (RFC 3986 unreserved kept).
std::string purl_escape(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

/// One component object; `properties` as name/value pairs in order.
struct Component {
  std::string type, name, version, purl, ref;
  std::vector<std::string> hashes;
  std::vector<std::pair<std::string, std::string>> properties;

  void write(json::Writer& w) const {
    w.StartObject();
    json::write_string_member(w, "type", type);
    json::write_string_member(w, "bom-ref", ref);
    json::write_string_member(w, "name", name);
    if (!version.empty()) json::write_string_member(w, "version", version);
    if (!hashes.empty()) {
      json::write_key(w, "hashes");
      w.StartArray();
      for (const auto& h : hashes) {
        w.StartObject();
        json::write_string_member(w, "alg", "SHA-256");
        json::write_string_member(w, "content", h);
        w.EndObject();
      }
      w.EndArray();
    }
    if (!purl.empty()) json::write_string_member(w, "purl", purl);
    if (!properties.empty()) {
      json::write_key(w, "properties");
      w.StartArray();
      for (const auto& [k, v] : properties) write_property(w, k, v);
      w.EndArray();
    }
    w.EndObject();
  }
};

std::vector<Component> components_of(const SbomInputs& in) {
  std::vector<Component> out;
  for (const auto& p : in.python) {
    std::string norm = normalize_python_name(p.name);
    Component c{"library", p.name, p.version, "pkg:pypi/" + purl_escape(norm) + "@" + purl_escape(p.version), "",
                {}, {}};
    c.ref = c.purl;
    auto h = in.lock_hashes.find(norm + "@" + p.version);
    if (h != in.lock_hashes.end()) c.hashes = h->second;
    for (const auto& v : p.venvs) c.properties.emplace_back("dockless:venv", v);
    if (p.in_uv_cache) c.properties.emplace_back("dockless:uv-cache", "true");
    if (h == in.lock_hashes.end()) c.properties.emplace_back("dockless:in-uv-lock", "false");
    out.push_back(std::move(c));
  }
  for (const auto& d : in.debs) {
    Component c{"library", d.name, d.version,
                "pkg:deb/debian/" + purl_escape(d.name) + "@" + purl_escape(d.version) + "?arch=" +
                    purl_escape(d.arch),
                "", {}, {}};
    c.ref = c.purl;
    out.push_back(std::move(c));
  }
  if (!in.uv_version.empty())
    out.push_back(Component{"application", "uv", in.uv_version, "pkg:pypi/uv@" + purl_escape(in.uv_version),
                            "dockless:uv", {}, {}});
  if (!in.python_version.empty())
    out.push_back(Component{"application", "python", in.python_version, "", "dockless:python", {}, {}});
  std::sort(out.begin(), out.end(), [](const Component& a, const Component& b) { return a.ref < b.ref; });
  // Two dist-info spellings of one package (or a deb listed twice) share a ref.
  out.erase(std::unique(out.begin(), out.end(), [](const Component& a, const Component& b) { return a.ref == b.ref; }),
            out.end());
  return out;
}

void write_metadata(json::Writer& w, const SbomInputs& in) {
  json::write_key(w, "metadata");
  w.StartObject();
  if (const char* epoch = std::getenv("SOURCE_DATE_EPOCH"); epoch != nullptr && *epoch != '\0') {
    char* end = nullptr;
    long long t = std::strtoll(epoch, &end, 10);
    if (end != nullptr && *end == '\0') json::write_string_member(w, "timestamp", format_rfc3339(t));
  }
  json::write_key(w, "tools");
  w.StartObject();
  json::write_key(w, "components");
  w.StartArray();
  Component{"application", "dockless", DOCKLESS_VERSION, "", "dockless", {}, {}}.write(w);
  w.EndArray();
  w.EndObject();
  json::write_key(w, "component");
  Component image{"container", in.image_name.empty() ? "image" : in.image_name, in.image.str(), "", in.image.str(),
                  {}, {}};
  image.write(w);
  w.EndObject();
}

/// The venvs and uv cache the image ships, and where they are.
LayerScan plan_scan(const BuildState& s) {
  LayerScan scan;
  for (const auto& e : s.plan.environments)
    if (e.shipped && e.enabled) scan.places.push_back({e.name, components(e.image_path)});
  if (s.plan.uv_cache_slot() != nullptr) scan.places.push_back({"", components(s.spec().uv.cache_dir)});
  return scan;
}

/// Every layer after the base's, brought into the store when a registry
/// cache holds it.
void scan_layers(BuildState& s, LayerScan& scan) {
  auto remote = s.cache.remote_blobs();
  for (const auto& l : s.layers) {
    const Descriptor& d = l.blob.descriptor;
    if (!s.store.contains(d.digest)) {
      auto where = remote.find(d.digest.str());
      if (where == remote.end()) throw Error("--sbom: layer " + l.name + " (" + d.digest.str() + ") is not here");
      s.transfer.fetch_missing(where->second.first, where->second.second, {d}, s.store);
    }
    scan.scan(s.store.path_of(d.digest));
  }
}

std::vector<SbomDebPackage> base_debs(BuildState& s) {
  if (s.rootfs.empty()) s.rootfs = base_rootfs(s.base, s.cache_dir, s.transfer, s.store);
  fs::path status = s.rootfs / "var/lib/dpkg/status";
  if (!path_exists(status)) return {};
  return parse_dpkg_status(read_file(status));
}

/// The referrer manifest of `sbom` (stored) for the image `subject`.
Descriptor store_sbom_artifact(const BlobStore& store, const std::string& sbom, const Descriptor& subject) {
  Manifest m;
  m.media_type = std::string(media_type::kOciManifest);
  m.artifact_type = std::string(kCycloneDxJson);
  m.config.media_type = std::string(kEmptyConfig);
  m.config.digest = store.put("{}");
  m.config.size = 2;
  Descriptor layer;
  layer.media_type = std::string(kCycloneDxJson);
  layer.digest = store.put(sbom);
  layer.size = static_cast<std::int64_t>(sbom.size());
  layer.annotations["org.opencontainers.image.title"] = "sbom.cdx.json";
  m.layers.push_back(layer);
  Descriptor subj;
  subj.media_type = subject.media_type;
  subj.digest = subject.digest;
  subj.size = subject.size;
  m.subject = subj;
  std::string bytes = m.to_json();
  Descriptor out;
  out.media_type = std::string(media_type::kOciManifest);
  out.digest = store.put(bytes);
  out.size = static_cast<std::int64_t>(bytes.size());
  out.artifact_type = std::string(kCycloneDxJson);
  return out;
}

}  // namespace

std::map<std::string, std::vector<std::string>> lock_hashes(std::string_view lock_text, const std::string& what) {
  const toml::table doc = parse_toml_document(lock_text, what);
  std::map<std::string, std::vector<std::string>> out;
  const toml::array* packages = doc["package"].as_array();
  if (!packages) return out;
  for (const auto& p : *packages) {
    const toml::table* pkg = p.as_table();
    if (!pkg) continue;
    auto name = (*pkg)["name"].value<std::string>();
    auto version = (*pkg)["version"].value<std::string>();
    if (!name || !version) continue;
    std::vector<std::string>& hashes = out[normalize_python_name(*name) + "@" + *version];
    auto add = [&hashes](const toml::node* file) {
      const toml::table* t = file ? file->as_table() : nullptr;
      auto hash = t ? (*t)["hash"].value<std::string>() : std::nullopt;
      if (hash && hash->rfind("sha256:", 0) == 0) hashes.push_back(lower(hash->substr(7)));
    };
    add(pkg->get("sdist"));
    if (const toml::array* wheels = (*pkg)["wheels"].as_array())
      for (const auto& w : *wheels) add(&w);
    std::sort(hashes.begin(), hashes.end());
    hashes.erase(std::unique(hashes.begin(), hashes.end()), hashes.end());
  }
  return out;
}

std::vector<SbomDebPackage> parse_dpkg_status(std::string_view text) {
  std::vector<SbomDebPackage> out;
  SbomDebPackage cur;
  std::string status;
  auto flush = [&] {
    if (!cur.name.empty() && !cur.version.empty() && status == "install ok installed") out.push_back(cur);
    cur = {};
    status.clear();
  };
  std::size_t i = 0;
  while (i <= text.size()) {
    std::size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    std::string_view line = text.substr(i, j - i);
    i = j + 1;
    if (line.empty()) {
      flush();
      if (j == text.size()) break;
      continue;
    }
    std::size_t colon = line.find(':');
    if (line[0] == ' ' || line[0] == '\t' || colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon), value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\r')) value.remove_suffix(1);
    if (key == "Package") cur.name = value;
    else if (key == "Version") cur.version = value;
    else if (key == "Architecture") cur.arch = value;
    else if (key == "Status") status = value;
  }
  flush();
  std::sort(out.begin(), out.end(), [](const SbomDebPackage& a, const SbomDebPackage& b) {
    return a.name != b.name ? a.name < b.name : a.arch < b.arch;
  });
  return out;
}

std::string sbom_serial_number(const Digest& image) {
  std::string h = image.hex().substr(0, 32);
  h[12] = '5';                                       // version 5 (name-based)
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];  // RFC 4122 variant
  return "urn:uuid:" + h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

std::string cyclonedx_json(const SbomInputs& in) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  json::write_string_member(w, "$schema", "http://cyclonedx.org/schema/bom-1.5.schema.json");
  json::write_string_member(w, "bomFormat", "CycloneDX");
  json::write_string_member(w, "specVersion", "1.5");
  json::write_string_member(w, "serialNumber", sbom_serial_number(in.image));
  json::write_key(w, "version");
  w.Int(1);
  write_metadata(w, in);
  json::write_key(w, "components");
  w.StartArray();
  for (const auto& c : components_of(in)) c.write(w);
  w.EndArray();
  w.EndObject();
  return json::pretty(std::string_view(buf.GetString(), buf.GetSize())) + "\n";
}

void attach_sbom(BuildState& s, const Descriptor& manifest, const std::vector<ImageLocation>& outputs,
                 const std::vector<Reference>& tags) {
  if (!s.opt.sbom && !s.spec().image.sbom) return;
  SbomInputs in;
  in.image = manifest.digest;
  if (!tags.empty()) in.image_name = tags.front().str();
  LayerScan scan = plan_scan(s);
  scan_layers(s, scan);
  for (auto& [key, p] : scan.packages) in.python.push_back(std::move(p));
  in.python_version = scan.python_version;
  fs::path lock = s.source.project_root / "uv.lock";
  if (path_exists(lock)) in.lock_hashes = lock_hashes(read_file(lock), lock.string());
  in.debs = base_debs(s);
  if (!s.spec().uv.uv_path.empty()) in.uv_version = s.image_uv.short_version;
  std::string doc = cyclonedx_json(in);
  Referrer r{manifest.digest, store_sbom_artifact(s.store, doc, manifest)};
  LocalImage built{&s.store, manifest, s.base.image.source_registry, s.base.image.source_repo, {}, {}, {}};
  for (const auto& o : outputs) {
    if (o.is_archive()) {
      s.warn("--sbom: " + o.str() + " cannot hold referrers; the SBOM goes to oci: outputs and pushes only");
      continue;
    }
    s.transfer.store_referrers(built, {r}, o);
  }
  if (s.opt.push)
    for (const auto& t : tags) s.transfer.store_referrers(built, {r}, ImageLocation{t});
  s.note("sbom " + r.manifest.digest.short_hex() + ": " + std::to_string(in.python.size()) + " Python and " +
         std::to_string(in.debs.size()) + " Debian packages");
}

std::string run_sbom(const ImageLocation& image, const TransferOptions& options) {
  if (image.is_archive()) throw UsageError("sbom: a docker-archive holds no referrers (use oci:DIR or a registry)");
  ImageTransfer t(options);
  BlobStore cache(options.cache_dir);  // an oci: layout's own store is used instead
  LocalImage loaded = t.load(image, cache, true);
  for (const auto& r : t.load_referrers(image, loaded)) {
    if (r.manifest.artifact_type != kCycloneDxJson) continue;
    Manifest m = Manifest::parse(loaded.store->read(r.manifest.digest));
    for (const auto& l : m.layers)
      if (l.media_type == kCycloneDxJson) return loaded.store->read(l.digest);
  }
  throw Error("no SBOM attached to " + image.str() + " (build it with dockless build --sbom)");
}

}  // namespace dockless
