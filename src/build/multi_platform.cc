#include "src/build/multi_platform.h"

#include <memory>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/json_util.h"
#include "oci/media_types.h"
#include "oci/reference.h"
#include "src/build/build_executor.h"
#include "src/build/build_outputs.h"
#include "src/build/build_state.h"
#include "src/build/sbom.h"

namespace dockless {

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(s.begin());
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

/// One built platform: its build (kept until the outputs are written) and manifest.
struct Built {
  Platform platform;
  std::unique_ptr<PlatformBuild> build;
  Descriptor manifest;
};

/// The index's blobs that live in registries only: layers from a registry
/// cache, and a push-only build's base layers.
LocalImage index_image(std::vector<Built>& built, const Descriptor& index) {
  BuildState& first = built.front().build->state();
  LocalImage image{&first.store, index, first.base.image.source_registry, first.base.image.source_repo, {}, {}, {}};
  for (auto& b : built) {
    BuildState& s = b.build->state();
    for (const auto& [digest, where] : s.cache.remote_blobs()) image.remote_blobs[digest] = where;
    image.pushed.insert(s.pushed_blobs.begin(), s.pushed_blobs.end());
    if (s.base.layers_remote)
      for (const auto& l : s.base.layers)
        image.remote_blobs[l.descriptor.digest.str()] = {s.base.image.source_registry, s.base.image.source_repo};
  }
  return image;
}

/// The --report of a multi-platform build: the index, then each platform's report.
void write_multi_report(std::vector<Built>& built, const Digest& index, double seconds) {
  BuildState& first = built.front().build->state();
  if (first.opt.report_file.empty()) return;
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  json::write_string_member(w, "digest", index.str());
  json::write_key(w, "seconds");
  w.Double(seconds);
  int uv_runs = 0;
  for (auto& b : built) uv_runs += b.build->state().uv_runs;
  json::write_key(w, "uv_runs");
  w.Int(uv_runs);
  json::write_key(w, "platforms");
  w.StartArray();
  for (auto& b : built) {
    w.StartObject();
    json::write_string_member(w, "platform", b.platform.str());
    json::write_key(w, "image");
    write_report_object(b.build->state(), b.manifest.digest, b.build->seconds(), w);
    w.EndObject();
  }
  w.EndArray();
  json::write_key(w, "outputs");
  w.StartArray();
  for (const auto& o : first.output_names) json::write_string(w, o);
  w.EndArray();
  w.EndObject();
  write_file_atomic(first.opt.report_file, json::pretty(std::string_view(buf.GetString(), buf.GetSize())) + "\n");
}

Digest write_index_outputs(std::vector<Built>& built) {
  std::vector<std::pair<Platform, Descriptor>> images;
  for (const auto& b : built) images.emplace_back(b.platform, b.manifest);
  std::string bytes = platform_index(images).to_json();
  BuildState& first = built.front().build->state();
  Descriptor index;
  index.media_type = std::string(media_type::kOciIndex);
  index.digest = first.store.put(bytes);
  index.size = static_cast<std::int64_t>(bytes.size());
  LocalImage image = index_image(built, index);
  const Destinations& dest = built.front().build->destinations();
  std::string default_tag = dest.tags.empty() ? "" : dest.tags.front().str();
  for (const auto& o : dest.outputs) {
    first.transfer.store(image, o, default_tag);
    first.output_names.push_back(o.str());
    first.note("wrote " + o.str() + " (an index of " + std::to_string(built.size()) + " platforms)");
  }
  if (first.opt.push)
    for (const auto& t : dest.tags) {
      first.transfer.store(image, ImageLocation{t}, "");
      first.output_names.push_back("docker://" + t.str());
      first.note("pushed " + t.str() + " (an index of " + std::to_string(built.size()) + " platforms)");
    }
  for (auto& b : built) attach_sbom(b.build->state(), b.manifest, dest.outputs, dest.tags);
  return index.digest;
}

}  // namespace

std::vector<Platform> requested_platforms(const std::string& option, const std::string& spec_platform,
                                          const std::vector<std::string>& spec_platforms) {
  std::vector<Platform> out;
  auto add = [&out](const Platform& p, const std::string& where) {
    for (const auto& q : out)
      if (q == p) throw UsageError(where + ": " + p.str() + " is listed twice");
    out.push_back(p);
  };
  if (!option.empty()) {
    std::size_t start = 0;
    while (true) {
      std::size_t comma = option.find(',', start);
      std::string item = trimmed(option.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (item.empty()) throw UsageError("--platform " + option + ": an empty entry (expected os/arch[,os/arch...])");
      try {
        add(Platform::parse(item), "--platform");
      } catch (const UsageError&) {
        throw;
      } catch (const Error& e) {
        throw UsageError(std::string("--platform: ") + e.what());
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return out;
  }
  for (const auto& p : spec_platforms) add(Platform::parse(p), "image.platforms");
  if (out.empty()) out.push_back(spec_platform.empty() ? Platform::host() : Platform::parse(spec_platform));
  return out;
}

ImageIndex platform_index(const std::vector<std::pair<Platform, Descriptor>>& images) {
  ImageIndex index;
  index.media_type = std::string(media_type::kOciIndex);
  for (const auto& [platform, manifest] : images) {
    Descriptor d;
    d.media_type = manifest.media_type;
    d.digest = manifest.digest;
    d.size = manifest.size;
    d.platform = platform;
    index.manifests.push_back(std::move(d));
  }
  return index;
}

std::string platform_cache_ref(const std::string& ref, const Platform& platform) {
  Reference r = parse_ref_option("--cache-to", ref);
  if (r.digest) return ref;  // a digest names one artifact: as given
  std::string suffix = platform.str();
  for (char& c : suffix)
    if (c == '/') c = '-';
  r.tag = (r.tag.empty() ? "latest" : r.tag) + "-" + suffix;
  return r.str();
}

Digest run_platform_builds(const BuildOptions& options) {
  auto first = std::make_unique<PlatformBuild>(options);
  std::vector<Platform> platforms = first->prepare();
  if (platforms.size() == 1) return first->finish(first->build(platforms.front()));
  std::vector<Built> built;
  for (std::size_t i = 0; i < platforms.size(); ++i) {
    std::unique_ptr<PlatformBuild> b = i == 0 ? std::move(first) : std::make_unique<PlatformBuild>(options);
    if (i > 0) b->prepare();
    BuildOptions& opt = b->state().opt;
    for (auto& from : opt.cache_from) from = platform_cache_ref(from, platforms[i]);
    if (!opt.cache_to.empty()) opt.cache_to = platform_cache_ref(opt.cache_to, platforms[i]);
    b->state().note("platform " + platforms[i].str() + " (" + std::to_string(i + 1) + " of " +
                    std::to_string(platforms.size()) + ")");
    Descriptor manifest = b->build(platforms[i]);
    built.push_back(Built{platforms[i], std::move(b), manifest});
  }
  Digest index = write_index_outputs(built);
  for (auto& b : built) write_cache_to(b.build->state());
  double seconds = built.front().build->seconds();
  write_multi_report(built, index, seconds);
  BuildState& s = built.front().build->state();
  std::string summary = "built " + index.str() + " (an index of";
  for (auto& b : built)
    summary += " " + b.platform.str() + " " + b.manifest.digest.short_hex() + " [" + run_counts(b.build->state()) + "]";
  s.note(summary + ") in " + format_seconds(seconds));
  return index;
}

}  // namespace dockless
