#include "src/build/build_outputs.h"

#include "base/file_util.h"
#include "oci/json_util.h"
#include "src/build/git_source.h"
#include "src/build/image_builder.h"
#include "src/build/image_settings.h"
#include "src/build/push_pipeline.h"
#include "src/build/sbom.h"
#include "src/cache/last_used.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

/// PATH and uv's settings for the image, then the spec's [image] settings.
void set_container_config(const BuildState& s, ContainerConfig& cc) {
  const BuildSpec& spec = s.spec();
  std::string path = cc.get_env("PATH").value_or(kDefaultPath);
  const PlannedEnvironment* main_env = s.plan.main_environment();
  if (main_env != nullptr) {
    cc.set_env("PATH", main_env->image_path + "/bin:" + path);
    cc.set_env("UV_PROJECT_ENVIRONMENT", main_env->image_path);
  } else {
    cc.set_env("PATH", path);
  }
  if (!s.plan.environments.empty() || !spec.uv.uv_path.empty()) {
    cc.set_env("UV_CACHE_DIR", spec.uv.cache_dir);
    cc.set_env("UV_LINK_MODE", spec.uv.link_mode);
    cc.set_env("UV_PYTHON", spec.uv.python);
    // uv in the container finds the managed Python only where it was installed.
    if (spec.uv.python_source == BuildSpec::Uv::PythonSource::kUvManaged)
      cc.set_env("UV_PYTHON_INSTALL_DIR", spec.uv.python_install_dir);
  }
  ImageSettings settings;
  settings.env = spec.image.env;
  settings.labels = spec.image.labels;
  settings.workdir = spec.image.workdir.empty() ? spec.source.dest : spec.image.workdir;
  if (!spec.image.user.empty()) settings.user = spec.image.user;
  settings.entrypoint = spec.image.entrypoint;
  settings.cmd = spec.image.cmd;
  settings.apply(cc);
  if (!s.source.git_commit.empty()) {
    cc.labels["org.opencontainers.image.source"] = redact_url(s.source.git_url);
    cc.labels["org.opencontainers.image.revision"] = s.source.git_commit;
  }
}

}  // namespace

Descriptor assemble_image(BuildState& s) {
  ImageConfig config = s.base.config;
  config.created = format_rfc3339(s.clamp);
  config.os = s.platform.os;
  std::vector<Descriptor> base_descs = s.base.manifest.layers;
  ImageBuilder image(config, base_descs);
  for (const auto& l : s.layers) image.add_layer(l.blob, "dockless: " + l.name);
  set_container_config(s, image.config().config);
  auto& ann = image.annotations();
  ann["org.opencontainers.image.base.name"] = s.base.name;
  ann["org.opencontainers.image.base.digest"] = s.base.image.top.digest.str();
  if (!s.source.git_commit.empty()) {
    ann["org.opencontainers.image.source"] = redact_url(s.source.git_url);
    ann["org.opencontainers.image.revision"] = s.source.git_commit;
  }
  auto elsewhere = s.cache.remote_blobs();
  if (s.base.layers_remote)
    for (const auto& l : s.base.layers)
      elsewhere[l.descriptor.digest.str()] = {s.base.image.source_registry, s.base.image.source_repo};
  // The config goes to the registries from memory while it is stored here.
  return image.store(
      s.store, [&elsewhere](const Digest& d) { return elsewhere.count(d.str()) > 0; },
      [&s](const Descriptor& config, std::shared_ptr<const std::string> bytes) {
        push_config_ahead(s, config, std::move(bytes));
      });
}

void mark_image_used(BuildState& s, const Descriptor& manifest) {
  mark_used(s.store.path_of(manifest.digest));
  for (const auto& b : manifest_blobs(s.store, manifest)) mark_used(s.store.path_of(b.digest));
  mark_used(s.store.path_of(s.base.image.top.digest));
  if (!s.uv.short_version.empty() && path_exists(s.host_uv_cache)) {
    fs::path lock = s.host_uv_cache.string() + ".lock";
    if (!path_exists(lock)) write_file_atomic(lock, "");
    mark_used(lock);
  }
}

void write_outputs(BuildState& s, const Descriptor& manifest, const std::vector<ImageLocation>& outputs,
                   const std::vector<Reference>& tags) {
  LocalImage built{&s.store, manifest, s.base.image.source_registry, s.base.image.source_repo, {}, {}, {}};
  built.remote_blobs = s.cache.remote_blobs();
  built.pushed = s.pushed_blobs;
  built.tags_read = s.tags_read;
  std::string default_tag = tags.empty() ? "" : tags.front().str();
  for (const auto& o : outputs) {
    s.transfer.store(built, o, default_tag);
    s.output_names.push_back(o.str());
    s.note("wrote " + o.str());
  }
  if (s.opt.push) {
    for (const auto& t : tags) {
      s.transfer.store(built, ImageLocation{t}, "");
      s.output_names.push_back("docker://" + t.str());
      s.note("pushed " + t.str());
    }
  }
}

std::string run_counts(const BuildState& s) {
  std::string out = std::to_string(s.uv_runs) + " uv run" + (s.uv_runs == 1 ? "" : "s");
  if (!s.spec().steps.empty())
    out += ", " + std::to_string(s.step_runs) + " step run" + (s.step_runs == 1 ? "" : "s");
  return out;
}

void write_cache_to(BuildState& s) {
  if (s.opt.cache_to.empty()) return;
  auto t = Clock::now();
  Reference ref = parse_ref_option("--cache-to", s.opt.cache_to);
  BuildCacheIndex index = s.cache_meta();
  for (const auto& slot : s.plan.slots) index.entries.push_back(BuildCacheEntry{slot.key, slot.name, slot.layers});
  Digest d = s.cache.write(ref, index);
  s.note("build cache written to " + ref.str() + " (" + d.short_hex() + ") in " + format_seconds(seconds_since(t)));
}

void write_report(const BuildState& s, const Digest& digest, double seconds) {
  if (s.opt.report_file.empty()) return;
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  write_report_object(s, digest, seconds, w);
  write_file_atomic(s.opt.report_file, json::pretty(std::string_view(buf.GetString(), buf.GetSize())) + "\n");
}

void write_report_object(const BuildState& s, const Digest& digest, double seconds, json::Writer& w) {
  w.StartObject();
  json::write_string_member(w, "digest", digest.str());
  json::write_key(w, "seconds");
  w.Double(seconds);
  json::write_key(w, "uv_runs");
  w.Int(s.uv_runs);
  json::write_string_member(w, "base", s.base.name);
  json::write_string_member(w, "base_digest", s.base.image.top.digest.str());
  json::write_string_member(w, "platform", s.platform.str());
  if (s.foreign.active) {  // how a foreign target's environments were made
    json::write_string_member(w, "environments_made_on", s.foreign.emulated ? s.platform.str() + " (emulated)"
                                                                               : s.foreign.host.str());
    if (!s.foreign.python_platform.empty()) json::write_string_member(w, "python_platform", s.foreign.python_platform);
  }
  if (!s.source.git_commit.empty()) json::write_string_member(w, "git_commit", s.source.git_commit);
  json::write_key(w, "environments");  // the uv runs of this build, in the order they ended
  w.StartArray();
  for (const auto& r : s.environment_runs) {
    w.StartObject();
    json::write_string_member(w, "name", r.name);
    json::write_key(w, "start");
    w.Double(r.start);
    json::write_key(w, "end");
    w.Double(r.end);
    w.EndObject();
  }
  w.EndArray();
  json::write_key(w, "skipped");
  w.StartArray();
  for (const auto& name : s.plan.skipped()) json::write_string(w, name);
  w.EndArray();
  json::write_key(w, "layers");
  w.StartArray();
  for (const auto& l : s.layers) {
    w.StartObject();
    json::write_string_member(w, "name", l.name);
    json::write_string_member(w, "digest", l.blob.descriptor.digest.str());
    json::write_string_member(w, "diff_id", l.blob.diff_id.str());
    json::write_key(w, "size");
    w.Int64(l.blob.descriptor.size);
    json::write_string_member(w, "cache", l.origin);
    json::write_key(w, "seconds");
    w.Double(l.seconds);
    json::write_key(w, "made");  // when it was final, since the build's start
    w.Double(l.made);
    w.EndObject();
  }
  w.EndArray();
  json::write_key(w, "uploads");  // --push: each blob's push while the build went on
  w.StartArray();
  for (const auto& u : s.uploads) {
    w.StartObject();
    json::write_string_member(w, "name", u.label);
    json::write_string_member(w, "digest", u.digest.str());
    json::write_string_member(w, "repository", u.repository);
    json::write_string_member(w, "action", u.action);
    json::write_key(w, "streamed");  // its bytes went as the layer was made
    w.Bool(u.streamed);
    json::write_key(w, "start");
    w.Double(u.start);
    json::write_key(w, "end");
    w.Double(u.end);
    w.EndObject();
  }
  w.EndArray();
  json::write_key(w, "outputs");
  w.StartArray();
  for (const auto& o : s.output_names) json::write_string(w, o);
  w.EndArray();
  w.EndObject();
}

}  // namespace dockless
