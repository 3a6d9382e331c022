// `dockless unbundle` (declared in bundle.h): a bundle's entries pushed to
// the gap's registry, under a prefix, with their tags, digests and referrers.
#include <archive.h>
#include <archive_entry.h>

#include <set>

#include "base/error.h"
#include "base/file_util.h"
#include "layers/archive_handle.h"
#include "oci/content_graph.h"
#include "oci/reference.h"
#include "oci/referrers.h"
#include "oci/registry_transport.h"
#include "src/transfer/bundle.h"
#include "src/transfer/progress.h"

namespace dockless {

namespace {

namespace ba = bundle_annotation;

struct Target {
  std::string registry, prefix;
};

/// REGISTRY[/PREFIX]: the first component must be a host (docker's rule:
/// a '.', a ':' or "localhost"), the prefix a repository path.
Target parse_to(const std::string& text) {
  const std::string usage = "--to \"" + text + "\": expected REGISTRY[/PREFIX], e.g. registry.local:5000/mirror";
  std::string t = text;
  while (!t.empty() && t.back() == '/') t.pop_back();
  Target out;
  out.registry = t.substr(0, t.find('/'));
  if (t.find('/') != std::string::npos) out.prefix = t.substr(t.find('/') + 1);
  const std::string& h = out.registry;
  if (h.empty() || t.find("://") != std::string::npos ||
      (h.find('.') == std::string::npos && h.find(':') == std::string::npos && h != "localhost"))
    throw UsageError(usage);
  try {
    Reference::parse(h + "/" + (out.prefix.empty() ? "" : out.prefix + "/") + "x:latest");
  } catch (const Error& e) {
    throw UsageError(usage + " (" + e.what() + ")");
  }
  return out;
}

/// Extracts the layout in `tar` into dir, each blob verified against its
/// name as it is written (BlobWriter): blobs already there (a rerun) are
/// skipped. Only oci-layout, index.json and blobs/sha256/<hex> are taken.
void extract_bundle_tar(const std::filesystem::path& tar, const std::filesystem::path& dir) {
  const std::string what = tar.string();
  ArchiveReadHandle a = new_archive_reader();
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  archive_read_support_filter_none(a.get());
  if (archive_read_open_filename(a.get(), tar.c_str(), 1 << 20) != ARCHIVE_OK)
    throw Error("bundle " + what + " is not an OCI layout or a tar of one: " + archive_message(a.get()));
  BlobStore store(dir);
  bool saw_layout = false;
  std::vector<char> buf(1 << 20);
  for (;;) {
    archive_entry* e = nullptr;
    int rc = archive_read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
      throw Error("bundle " + what + " is not an OCI layout or a tar of one: " + archive_message(a.get()));
    std::string name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    while (name.rfind("./", 0) == 0) name.erase(0, 2);
    if (archive_entry_filetype(e) != AE_IFREG) continue;
    auto read_all = [&](const std::function<void(const char*, std::size_t)>& to) {
      for (;;) {
        la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
        if (n < 0) throw Error("bundle " + what + ": " + name + ": " + archive_message(a.get()));
        if (n == 0) return;
        to(buf.data(), static_cast<std::size_t>(n));
      }
    };
    if (name == "oci-layout" || name == "index.json") {
      std::string text;
      read_all([&](const char* p, std::size_t n) { text.append(p, n); });
      write_file_atomic(dir / name, text);
      saw_layout = saw_layout || name == "oci-layout";
      continue;
    }
    const std::string prefix = "blobs/sha256/";
    if (name.rfind(prefix, 0) != 0) continue;
    Digest d;
    try {
      d = Digest::parse("sha256:" + name.substr(prefix.size()));
    } catch (const Error&) {
      continue;  // not a blob name
    }
    if (store.contains(d)) continue;
    BlobWriter w(store);
    read_all([&](const char* p, std::size_t n) { w.write(p, n); });
    try {
      w.commit(d);
    } catch (const Error& err) {
      throw Error("bundle " + what + ": blob " + d.str() + " does not match its digest: " + err.what());
    }
  }
  if (!saw_layout) throw Error("bundle " + what + " is not an OCI layout (the tar has no oci-layout file)");
}

/// The layout directory of the bundle: the bundle itself, or where its tar
/// is extracted (one directory per tar path under the cache, reused by a
/// rerun; `scratch` is set so the caller removes it after success).
std::filesystem::path open_bundle(const std::filesystem::path& bundle, const std::filesystem::path& cache_dir,
                                  std::filesystem::path* scratch) {
  std::error_code ec;
  auto st = std::filesystem::status(bundle, ec);
  if (ec || !std::filesystem::exists(st)) throw Error("bundle " + bundle.string() + " does not exist");
  if (std::filesystem::is_directory(st)) {
    if (!std::filesystem::exists(bundle / "oci-layout"))
      throw Error("bundle " + bundle.string() + " is not an OCI layout (no oci-layout file)");
    return bundle;
  }
  std::filesystem::path dir =
      cache_dir / "unbundle" / sha256_of(std::filesystem::absolute(bundle).string()).short_hex(24);
  std::filesystem::create_directories(dir);
  extract_bundle_tar(bundle, dir);
  *scratch = dir;
  return dir;
}

/// TO/PREFIX/<ref name>, from the entry's ref name (REPO:TAG or REPO@DIGEST).
Reference destination(const Target& to, const Descriptor& e, const std::string& what) {
  const std::string name = e.ref_name();
  if (name.find_first_of(":@") == std::string::npos)
    throw Error(what + ": entry \"" + name + "\" names no repository (not written by dockless bundle)");
  try {
    return Reference::parse(to.registry + "/" + (to.prefix.empty() ? "" : to.prefix + "/") + name);
  } catch (const Error& err) {
    throw Error(what + ": entry \"" + name + "\": " + err.what());
  }
}

/// Every manifest and blob of `top` is in the layout and matches its digest.
ContentGraph checked_graph(const OciLayout& layout, const Descriptor& top, const std::string& what,
                           std::set<std::string>& verified) {
  ContentGraph g = content_graph(layout.blobs(), top, what);
  for (const auto& b : g.blobs) {
    if (!verified.insert(b.digest.str()).second) continue;
    if (!layout.blobs().contains(b.digest))
      throw Error(what + ": blob " + b.digest.str() + " is missing");
    verify_blob(layout.blobs(), b, what);  // names the blob and both digests
  }
  return g;
}

/// GET /v2/ must answer as a registry does (200, or 401 when credentials
/// are refused), before anything is uploaded: a web server that answers 404
/// there would otherwise fail only at the first upload, less clearly.
void check_is_registry(const std::string& registry, const TransferOptions& options) {
  Keychain keychain(options.keychain);
  RegistryTransport transport(registry, options.registry, keychain);
  HttpResponse r = transport.send("check registry", {}, [](const std::string& base) {
    HttpRequest req;
    req.url = base + "/v2/";
    return req;
  });
  if (r.status != 200 && r.status != 401)
    throw Error("--to " + registry + " is not a registry (GET /v2/ answered HTTP " + std::to_string(r.status) + ")");
}

}  // namespace

std::string UnbundleSummary::str() const {
  std::string what = std::to_string(entries) + " entries, " + std::to_string(manifests) + " manifests, " +
                     std::to_string(blobs) + " blobs, " + human_bytes(bytes);
  if (dry_run) return what;
  return what + "; uploaded " + std::to_string(uploaded) +
         " blobs (" + human_bytes(uploaded_bytes) + "), " + std::to_string(present) +
         " already in the registry (counted per repository)";
}

UnbundleSummary run_unbundle(const UnbundleOptions& options) {
  const Target to = parse_to(options.to);
  std::filesystem::path scratch;
  const std::filesystem::path dir = open_bundle(options.bundle, options.transfer.cache_dir, &scratch);
  const std::string what = "bundle " + options.bundle.string();
  const OciLayout layout = OciLayout::open(dir);
  std::vector<Descriptor> tagged;
  std::vector<Referrer> referrers;
  UnbundleSummary s;
  s.dry_run = options.dry_run;
  std::set<std::string> verified, manifests;
  std::map<std::string, ContentGraph> graphs;
  for (const auto& e : layout.read_index().manifests) {
    ++s.entries;
    ContentGraph g = checked_graph(layout, e, what, verified);
    for (const auto& m : g.manifests) manifests.insert(m.digest.str());
    if (!e.ref_name().empty()) {
      tagged.push_back(e);
      graphs[e.digest.str() + e.ref_name()] = std::move(g);
      continue;
    }
    std::string bytes = read_manifest(layout.blobs(), e, what);
    std::optional<Digest> subject = subject_of(bytes);
    if (!subject) throw Error(what + ": entry " + e.digest.str() + " has neither a name nor a subject");
    referrers.push_back({*subject, referrer_descriptor(bytes, e.media_type)});
  }
  s.manifests = manifests.size();
  s.blobs = verified.size();
  for (const auto& d : verified) s.bytes += layout.blobs().size_of(Digest::parse(d));
  TransferOptions topt = options.transfer;
  TransferTally tally(topt.progress);
  topt.progress = &tally;
  ImageTransfer t(topt);
  if (!tagged.empty() && !options.dry_run) check_is_registry(to.registry, topt);
  for (const auto& e : tagged) {
    Reference dst = destination(to, e, what);
    if (dst.digest && dst.tag.empty() && *dst.digest != e.digest)
      throw Error(what + ": entry \"" + e.ref_name() + "\" holds " + e.digest.str());
    dst.digest.reset();
    s.plan.push_back(e.annotations.count(ba::kSource) ? e.annotations.at(ba::kSource) + " -> " + dst.str()
                                                       : e.ref_name() + " -> " + dst.str());
    if (options.dry_run) continue;
    Descriptor top = e;
    top.annotations.clear();
    LocalImage image{&layout.blobs(), top, "", "", {}, {}, {}};
    t.store(image, ImageLocation{dst}, "");
    // Its referrers (and theirs), after it: those whose subject it holds.
    std::set<std::string> subjects;
    for (const auto& m : graphs[e.digest.str() + e.ref_name()].manifests) subjects.insert(m.digest.str());
    std::vector<Referrer> mine;
    for (bool grew = true; grew;) {
      grew = false;
      for (const auto& r : referrers)
        if (subjects.count(r.subject.str()) && subjects.insert(r.manifest.digest.str()).second) {
          mine.push_back(r);
          grew = true;
        }
    }
    if (!mine.empty()) t.store_referrers(image, mine, ImageLocation{dst});
  }
  s.uploaded = tally.moved();
  s.uploaded_bytes = tally.moved_bytes();
  s.present = tally.present();
  if (!scratch.empty() && !options.dry_run) remove_tree(scratch);
  return s;
}

}  // namespace dockless
