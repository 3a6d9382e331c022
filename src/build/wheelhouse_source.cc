#include "src/build/wheelhouse_source.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/blob_store.h"
#include "oci/manifest.h"
#include "oci/oci_layout.h"
#include "src/build/build_state.h"
#include "src/build/wheelhouse_server.h"
#include "src/cache/last_used.h"
#include "src/transfer/image_location.h"
#include "src/transfer/toml_document.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

constexpr const char* kTitle = "org.opencontainers.image.title";

void add_locked(const toml::node* node, std::vector<LockedUrl>& out) {
  const toml::table* t = node ? node->as_table() : nullptr;
  if (!t) return;
  auto url = (*t)["url"].value<std::string>();
  auto hash = (*t)["hash"].value<std::string>();
  if (url && hash && hash->rfind("sha256:", 0) == 0) out.push_back({*url, *hash});
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// The last path segment of a URL, as written (no query or fragment).
std::string raw_segment(const std::string& url) {
  std::string u = url.substr(0, url.find_first_of("?#"));
  auto slash = u.rfind('/');
  return slash == std::string::npos ? "" : u.substr(slash + 1);
}

/// A wheelhouse's manifest, read from a registry or an OCI layout.
std::string read_wheelhouse_manifest(BuildState& s, const ImageLocation& loc) {
  if (loc.is_layout()) {
    OciLayout layout = OciLayout::open(loc.layout().dir);
    return layout.blobs().read(layout.resolve(loc.layout().tag).digest);
  }
  const Reference& ref = loc.reference();
  return s.transfer.client(ref.registry).get_manifest(ref.repository, ref.manifest_ref()).bytes;
}

/// Copies a blob from a layout into `to`, hashing it on the way (a layout's
/// bytes are only trusted once checked).
void import_checked(const BlobStore& from, const Descriptor& d, const BlobStore& to) {
  if (to.contains(d.digest)) return;
  std::ifstream in(from.path_of(d.digest), std::ios::binary);
  if (!in) throw Error("blob " + d.digest.str() + " is missing from " + from.root().string());
  BlobWriter w(to);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) w.write(buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  w.commit(d.digest);
}

/// Brings `blobs` of the wheelhouse at `loc` into s.store; returns how many were not there yet.
std::size_t fetch_blobs(BuildState& s, const ImageLocation& loc, const std::vector<Descriptor>& blobs) {
  std::size_t missing = 0;
  for (const auto& b : blobs) missing += s.store.contains(b.digest) ? 0 : 1;
  if (missing == 0) return 0;
  if (loc.is_layout()) {
    OciLayout layout = OciLayout::open(loc.layout().dir);
    for (const auto& b : blobs) import_checked(layout.blobs(), b, s.store);
  } else {
    s.transfer.fetch_missing(loc.reference().registry, loc.reference().repository, blobs, s.store);
  }
  return missing;
}

/// The blob as DIR/<hex>/<name> (a hard link, else a copy).
void present(const BlobStore& store, const Digest& d, const fs::path& dir, const std::string& name) {
  fs::path file = dir / d.hex() / name;
  fs::create_directories(file.parent_path());
  fs::path blob = store.path_of(d);
  mark_used(blob);
  if (::link(blob.c_str(), file.c_str()) == 0) return;
  std::error_code ec;
  fs::copy_file(blob, file, fs::copy_options::overwrite_existing, ec);
  if (ec) throw Error("cannot copy " + blob.string() + " to " + file.string() + ": " + ec.message());
}

}  // namespace

std::vector<LockedUrl> locked_urls(std::string_view lock_text, const std::string& file) {
  const toml::table doc = parse_toml_document(lock_text, file);
  std::vector<LockedUrl> out;
  const toml::array* packages = doc["package"].as_array();
  if (!packages) return out;
  for (const auto& p : *packages) {
    const toml::table* pkg = p.as_table();
    if (!pkg) continue;
    add_locked(pkg->get("sdist"), out);
    if (const toml::array* wheels = (*pkg)["wheels"].as_array())
      for (const auto& w : *wheels) add_locked(&w, out);
  }
  return out;
}

std::vector<Descriptor> wheelhouse_layers(std::string_view manifest, const std::string& what) {
  Manifest m;
  try {
    m = Manifest::parse(manifest);
  } catch (const Error& e) {
    throw Error(what + ": not a wheelhouse (" + e.what() + ")");
  }
  if (m.artifact_type != kWheelhouseArtifactType)
    throw Error(what + ": not a wheelhouse (artifactType \"" + m.artifact_type + "\", expected " +
                kWheelhouseArtifactType + "; `dockless bundle --wheels` makes one)");
  for (const auto& l : m.layers)
    if (l.annotations.count(kTitle) == 0)
      throw Error(what + ": wheelhouse layer " + l.digest.str() + " has no file name (" + kTitle + ")");
  return m.layers;
}

std::string url_file_name(const std::string& url) {
  std::string raw = raw_segment(url), out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '%' && i + 2 < raw.size() && hex_value(raw[i + 1]) >= 0 && hex_value(raw[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(raw[i + 1]) * 16 + hex_value(raw[i + 2]));
      i += 2;
    } else {
      out += raw[i];
    }
  }
  if (out.empty() || out == "." || out == ".." || out.find('/') != std::string::npos ||
      out.find('\0') != std::string::npos)
    return "";
  return out;
}

WheelhouseRoute route_wheelhouses(BuildState& s, const std::vector<std::string>& refs,
                                  const fs::path& dir, const std::string& url_prefix) {
  WheelhouseRoute r;
  fs::path lock = s.source.project_root / "uv.lock";
  if (refs.empty() || !path_exists(lock)) return r;
  auto t = Clock::now();
  std::vector<LockedUrl> wanted = locked_urls(read_file(lock));
  r.dir = dir;
  remove_tree(r.dir);
  fs::create_directories(r.dir);
  for (const auto& text : refs) {
    ImageLocation loc = ImageLocation::parse(text);
    if (loc.is_archive()) throw UsageError("--wheels-from " + text + ": a registry reference or oci:DIR[:TAG]");
    std::map<std::string, Descriptor> by_digest;
    for (const auto& l : wheelhouse_layers(read_wheelhouse_manifest(s, loc), "--wheels-from " + text))
      by_digest.emplace(l.digest.str(), l);
    std::vector<std::pair<const LockedUrl*, Descriptor>> take;
    std::vector<Descriptor> blobs;
    for (const auto& f : wanted) {
      auto hit = by_digest.find(f.hash);
      if (r.routes.count(f.url) || hit == by_digest.end() || url_file_name(f.url).empty()) continue;
      take.emplace_back(&f, hit->second);
      blobs.push_back(hit->second);
    }
    r.fetched += fetch_blobs(s, loc, blobs);
    for (const auto& [f, d] : take) {
      present(s.store, d.digest, r.dir, url_file_name(f->url));
      r.routes[f->url] = url_prefix + "/" + d.digest.hex() + "/" + raw_segment(f->url);
    }
  }
  for (const auto& f : wanted)
    if (r.routes.count(f.url) == 0) r.missing.push_back(f);
  if (r.routes.empty()) s.warn("--wheels-from: no file of uv.lock is in the wheelhouse");
  s.note("wheelhouse: " + std::to_string(r.routes.size()) + " of " + std::to_string(wanted.size()) +
         " file(s) of uv.lock from --wheels-from (" + std::to_string(r.fetched) + " fetched) in " +
         format_seconds(seconds_since(t)));
  return r;
}

void use_wheelhouses(BuildState& s) {
  if (s.opt.wheels_from.empty()) return;
  fs::path dir = s.work_dir / "wheelhouse";
  fs::create_directories(dir);
  auto server = std::make_shared<WheelhouseServer>(dir);
  WheelhouseRoute r = route_wheelhouses(s, s.opt.wheels_from, dir, server->base_url());
  // --offline: what the wheelhouse lacks fails at once (a 404 that says so), never after a timeout.
  if (s.opt.offline)
    for (const auto& f : r.missing) r.routes[f.url] = server->base_url() + "/missing/" + raw_segment(f.url);
  if (r.routes.empty()) return;
  // The mirrors' notes and warnings were given when the build began.
  auto quiet = [](const std::string&) {};
  s.mirrored_lock =
      prepare_mirrored_lock(s.source.project_root / "uv.lock",
                            merge_index_mirrors(s.spec().uv.index_mirrors, s.opt.index_mirrors), s.work_dir,
                            quiet, quiet, r.routes);
  s.wheelhouse_server = std::move(server);
}

}  // namespace dockless
