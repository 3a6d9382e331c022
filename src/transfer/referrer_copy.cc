// ImageTransfer's referrers (declared in transfer.h): finding them at a
// source, loading their graphs, and registering them at a destination.
#include <deque>
#include <map>
#include <set>

#include "base/error.h"
#include "oci/content_graph.h"
#include "oci/media_types.h"
#include "oci/referrers.h"
#include "src/transfer/transfer.h"

namespace dockless {

namespace {

/// More than this many referrers (all levels) is not a supply chain but a
/// hostile or broken registry.
constexpr std::size_t kMaxReferrers = 1000;

std::vector<Descriptor> registry_referrers(RegistryClient& c, const std::string& repo,
                                           const Digest& subject) {
  if (auto api = c.referrers_api(repo, subject)) return *api;
  // No referrers API (distribution 2.8): the tag schema's index, if any.
  auto tagged = c.find_manifest(repo, referrers_tag(subject));
  if (!tagged) return {};
  return parse_referrers(tagged->bytes, "registry " + c.registry() + ": " + repo + ":" +
                                            referrers_tag(subject));
}

/// An OCI layout's referrers: the index.json entries that name a subject.
std::multimap<std::string, Descriptor> layout_referrers(const OciLayout& layout,
                                                        const std::string& what) {
  std::multimap<std::string, Descriptor> out;
  for (const auto& e : layout.read_index().manifests) {
    if (!is_manifest_like(e.media_type)) continue;
    if (auto s = subject_of(read_manifest(layout.blobs(), e, what))) out.emplace(s->str(), e);
  }
  return out;
}

}  // namespace

std::vector<Referrer> ImageTransfer::load_referrers(const ImageLocation& src, const LocalImage& image) {
  if (src.is_archive()) return {};
  const BlobStore& store = *image.store;
  const std::string what = src.str();
  std::multimap<std::string, Descriptor> in_layout;
  std::unique_ptr<OciLayout> layout;
  if (src.is_layout()) {
    layout = std::make_unique<OciLayout>(OciLayout::open(src.layout().dir));
    in_layout = layout_referrers(*layout, what);
  }
  std::vector<Referrer> out;
  std::set<std::string> seen;
  std::deque<Digest> subjects;
  for (const auto& m : content_graph(store, image.top, what).manifests)
    if (seen.insert(m.digest.str()).second) subjects.push_back(m.digest);
  while (!subjects.empty()) {
    const Digest subject = subjects.front();
    subjects.pop_front();
    std::vector<Descriptor> listed;
    if (layout) {
      auto [from, to] = in_layout.equal_range(subject.str());
      for (auto it = from; it != to; ++it) listed.push_back(it->second);
    } else {
      listed = registry_referrers(client(src.reference().registry), src.reference().repository, subject);
    }
    for (const auto& r : listed) {
      if (!seen.insert(r.digest.str()).second) continue;
      if (out.size() >= kMaxReferrers)
        throw Error(what + ": more than " + std::to_string(kMaxReferrers) + " referrers");
      if (!is_manifest_like(r.media_type))
        throw Error(what + ": referrer " + r.digest.str() + " of " + subject.str() +
                    " has media type \"" + r.media_type + "\", not a manifest's");
      if (layout)
        check_layout_graph(store, r, what);
      else
        pull_graph(client(src.reference().registry), src.reference().repository, r, store, false, what);
      std::string bytes = read_manifest(store, r, what);
      check_subject(bytes, r.digest, subject, what);
      out.push_back({subject, referrer_descriptor(bytes, r.media_type)});
      // Referrers have referrers too (a signature of an SBOM).
      for (const auto& m : content_graph(store, r, what).manifests)
        if (m.digest == r.digest || seen.insert(m.digest.str()).second) subjects.push_back(m.digest);
    }
  }
  if (!out.empty()) progress_.note(std::to_string(out.size()) + " referrer(s) of " + what);
  return out;
}

void ImageTransfer::store_referrers(const LocalImage& image, const std::vector<Referrer>& referrers,
                                    const ImageLocation& dst) {
  if (dst.is_archive())
    throw UsageError("--referrers: a docker-archive cannot hold referrers (use oci:DIR or a registry)");
  std::unique_ptr<OciLayout> layout;
  if (dst.is_layout()) layout = std::make_unique<OciLayout>(OciLayout::open_or_create(dst.layout().dir));
  for (const auto& r : referrers) {
    LocalImage one{image.store, r.manifest, image.source_registry, image.source_repo, image.remote_blobs, image.pushed, {}};
    if (layout) {
      copy_into_layout(one, *layout);
      layout->set_tag(r.manifest, "");  // untagged: found by its subject
      continue;
    }
    Reference ref = dst.reference();
    ref.tag.clear();
    ref.digest.reset();
    std::string indexed;
    push_graph(one, ref, &indexed);
    if (!indexed.empty()) continue;  // the registry's referrers API lists it
    RegistryClient& c = client(ref.registry);
    const std::string tag = referrers_tag(r.subject);
    std::optional<ManifestData> existing = c.find_manifest(ref.repository, tag);
    std::optional<std::string> updated =
        add_referrer(existing ? std::optional<std::string>(existing->bytes) : std::nullopt, r.manifest);
    if (updated) c.put_manifest(ref.repository, tag, *updated, std::string(media_type::kOciIndex));
  }
}

}  // namespace dockless
