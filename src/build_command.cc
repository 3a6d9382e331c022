#include "src/build_command.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include "layers/hashing_sink.h"
#include "layers/ignore_rules.h"
#include "layers/layer_writer.h"
#include "layers/tar_writer.h"
#include "layers/uv_cache_partition.h"
#include "oci/error.h"
#include "oci/file_util.h"
#include "oci/image_config.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "src/build_spec.h"
#include "src/cache_key.h"
#include "src/git_source.h"
#include "src/image_builder.h"
#include "src/image_settings.h"
#include "src/layer_cache.h"
#include "src/rootfs_snapshot.h"
#include "src/uv_runner.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// One environment uv makes: a venv of the image, or a throwaway venv that
/// only fills the cache for a [cache] extra.
struct EnvPlan {
  std::string name;
  bool shipped = true;  ///< a venv of the image (false: cache filler)
  bool enabled = true;  ///< not removed by --skip
  std::string image_path;
  std::vector<std::string> extras, groups;
  bool all_groups = false, no_default_groups = false;
  std::string key;
  fs::path dir;  ///< persisted host directory of the venv, by key
  bool ready = false;
};

struct LayerRecord {
  std::string name;
  LayerBlob blob;
  bool cache_hit = false;
  double seconds = 0;
};

bool path_exists(const fs::path& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

class Builder {
 public:
  explicit Builder(const BuildOptions& options)
      : opt_(options),
        transfer_(options.transfer),
        cache_dir_(options.transfer.cache_dir),
        store_(cache_dir_),
        layer_cache_(cache_dir_ / "layers", store_) {}

  Digest run() {
    auto start = Clock::now();
    if (opt_.outputs.empty() && !(opt_.push && !opt_.tags.empty()))
      throw UsageError("nothing to write: give --output oci:DIR[:TAG] or docker-archive:FILE, or --tag REF --push");
    if (opt_.push && opt_.tags.empty()) throw UsageError("--push needs at least one --tag REF");
    std::vector<ImageLocation> outputs;
    for (const auto& o : opt_.outputs) {
      ImageLocation loc = ImageLocation::parse(o);
      if (loc.is_registry())
        throw UsageError("--output " + o + ": use --tag REF --push for a registry");
      outputs.push_back(loc);
    }
    std::vector<Reference> tags;
    for (const auto& t : opt_.tags) {
      try {
        tags.push_back(Reference::parse(t.rfind("docker://", 0) == 0 ? t.substr(9) : t));
      } catch (const Error& e) {
        throw UsageError(std::string("--tag: ") + e.what());
      }
    }

    load_source_and_spec();
    clamp_ = mtime_clamp_from_environment();
    platform_ = !opt_.platform.empty()          ? Platform::parse(opt_.platform)
                : !spec_.image.platform.empty() ? Platform::parse(spec_.image.platform)
                                                : Platform::host();
    transfer_.set_platform(platform_);
    plan_environments();
    fetch_base();
    // uv runs the environments and/or ships in the image.
    if (!envs_.empty() || !spec_.uv.uv_path.empty()) uv_binary_ = find_uv(opt_.uv_binary);
    if (!uv_binary_.empty()) {
      uv_version_ = uv_version(uv_binary_);
      uv_short_version_ = uv_version_.substr(3, uv_version_.find(' ', 3) - 3);  // "uv 0.13.9 (...)"
      uv_sha_ = sha256_of(read_file(uv_binary_)).str();
    }
    key_environments();
    make_environments();
    write_layers();
    Descriptor manifest = assemble();
    Digest digest = write_outputs(manifest, outputs, tags);
    write_report(digest, seconds_since(start));
    note("built " + digest.str() + " in " + format_seconds(seconds_since(start)) + " (" +
         std::to_string(uv_runs_) + " uv run" + (uv_runs_ == 1 ? "" : "s") + ")");
    return digest;
  }

 private:
  static std::string format_seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f s", s);
    return buf;
  }

  void note(const std::string& line) { transfer_.progress().note(line); }

  // ---- spec and source ----------------------------------------------------

  void load_source_and_spec() {
    work_dir_ = cache_dir_ / "work" / ("build-" + std::to_string(::getpid()));
    remove_tree(work_dir_);
    fs::create_directories(work_dir_);
    if (!opt_.git_url.empty()) {
      // The spec comes from the repository at that ref: no local checkout needed.
      GitCheckout co = fetch_git_source(GitSource{opt_.git_url, opt_.git_ref}, cache_dir_,
                                        work_dir_ / "source", /*keep_git_dir=*/true);
      spec_ = load_build_spec(co.tree, opt_.spec_file, opt_.overrides);
      git_url_ = opt_.git_url;
      git_commit_ = co.commit;
      if (!spec_.source.keep_git_dir) remove_tree(co.tree / ".git");
      source_tree_ = co.tree;
      project_root_ = co.tree;
    } else {
      spec_ = load_build_spec(opt_.project_dir, opt_.spec_file, opt_.overrides);
      if (!spec_.source.git.empty()) {
        GitCheckout co = fetch_git_source(GitSource{spec_.source.git, spec_.source.ref}, cache_dir_,
                                          work_dir_ / "source", spec_.source.keep_git_dir);
        git_url_ = spec_.source.git;
        git_commit_ = co.commit;
        source_tree_ = co.tree;
      } else {
        source_tree_ = fs::canonical(spec_.file.parent_path() / spec_.source.path);
      }
      project_root_ = source_tree_;
    }
    ignore_ = IgnoreRules::load(source_tree_ / spec_.source.ignore_file);
    note("spec " + spec_.file.string() + (git_commit_.empty() ? "" : " at " + git_commit_.substr(0, 12)));
  }

  void plan_environments() {
    std::set<std::string> matched;
    auto skipped = [&](const std::string& name, const std::vector<std::string>& tags) {
      for (const auto& s : opt_.skip) {
        if (s == name || std::find(tags.begin(), tags.end(), s) != tags.end()) {
          matched.insert(s);
          return true;
        }
      }
      return false;
    };
    for (const auto& v : spec_.venvs) {
      EnvPlan e;
      e.name = v.name;
      e.image_path = v.path;
      e.extras = v.extras;
      e.groups = v.groups;
      e.all_groups = v.all_groups;
      e.no_default_groups = v.no_default_groups;
      e.enabled = !skipped(v.name, v.tags);
      envs_.push_back(e);
    }
    // A [cache] extra or group gets a throwaway venv that only fills the cache.
    auto add_cache_filler = [&](const std::string& name, const std::string& dir,
                                std::vector<std::string> extras, std::vector<std::string> groups,
                                const std::string& skip_name) {
      EnvPlan e;
      e.name = name;
      e.shipped = false;
      e.image_path = "/opt/.dockless-cache-fill/" + dir;
      e.extras = std::move(extras);
      e.groups = std::move(groups);
      e.no_default_groups = true;
      e.enabled = !skipped(skip_name, {});
      envs_.push_back(e);
    };
    for (const auto& extra : spec_.cache.extras)
      add_cache_filler("cache:" + extra, extra, {extra}, {}, extra);
    for (const auto& group : spec_.cache.groups)
      add_cache_filler("cache-group:" + group, "group-" + group, {}, {group}, group);
    for (const auto& s : opt_.skip)
      if (!matched.count(s))
        throw UsageError("--skip " + s + " matches no venv name, venv tag or cache extra of " +
                         spec_.file.string());
    if (!envs_.empty() && !path_exists(project_root_ / "uv.lock"))
      throw Error("no uv.lock in " + project_root_.string() +
                  ": dockless installs with --frozen; run `uv lock` first");
  }

  // ---- base image ---------------------------------------------------------

  void fetch_base() {
    auto t = Clock::now();
    ImageLocation where = ImageLocation::parse(spec_.image.base);
    if (where.is_registry()) {
      base_name_ = where.reference().str();
    } else {
      base_name_ = where.str();
    }
    base_ = transfer_.load(where, store_);
    if (media_type::is_index(base_.top.media_type))
      throw Error("base image " + spec_.image.base + " is an index; no manifest for " + platform_.str());
    // Base blobs into our store, so every output can be written from one place.
    for (const auto& b : manifest_blobs(*base_.store, base_.top)) store_.import_from(*base_.store, b.digest);
    store_.import_from(*base_.store, base_.top.digest);
    base_.store = &store_;
    base_manifest_ = Manifest::parse(store_.read(base_.top.digest));
    base_config_ = ImageConfig::parse(store_.read(base_manifest_.config.digest));
    if (base_config_.diff_ids.size() != base_manifest_.layers.size())
      throw Error("base image " + spec_.image.base + ": its config lists " +
                  std::to_string(base_config_.diff_ids.size()) + " diff_ids for " +
                  std::to_string(base_manifest_.layers.size()) + " layers");
    for (std::size_t i = 0; i < base_manifest_.layers.size(); ++i)
      base_layers_.push_back(LayerBlob{base_manifest_.layers[i], base_config_.diff_ids[i], 0});
    note("base " + spec_.image.base + " " + base_.top.digest.short_hex() + " (" +
         std::to_string(base_layers_.size()) + " layers) in " + format_seconds(seconds_since(t)));
  }

  // ---- environments -------------------------------------------------------

  void key_environments() {
    // One persistent uv cache per platform and uv version (bucket layouts
    // change between uv releases).
    std::string platform_dir = platform_.str();
    std::replace(platform_dir.begin(), platform_dir.end(), '/', '-');
    host_uv_cache_ = cache_dir_ / "uv" /
                     (platform_dir + "-uv" + (uv_short_version_.empty() ? "none" : uv_short_version_));
    std::vector<std::string> pass_env;
    collect_passthrough_env(pass_env, extra_binds_);
    std::string pass_hash = sha256_of([&] {
      std::string all;
      for (const auto& v : pass_env) all += v + "\n";
      return all;
    }()).str();
    passthrough_ = pass_env;
    for (auto& e : envs_) {
      CacheKey k("environment");
      k.add("base", base_.top.digest.str())
          .add("platform", platform_.str())
          .add("uv", uv_sha_)
          .add("python", spec_.uv.python)
          .add_file("uv.lock", project_root_ / "uv.lock")
          .add_file("pyproject.toml", project_root_ / "pyproject.toml")
          .add("path", e.image_path)
          .add("cache-dir", spec_.uv.cache_dir)
          .add("link-mode", spec_.uv.link_mode)
          .add("compile-bytecode", spec_.uv.compile_bytecode)
          .add("extras", e.extras)
          .add("groups", e.groups)
          .add("all-groups", e.all_groups)
          .add("no-default-groups", e.no_default_groups)
          .add("uv-environment", pass_hash);
      e.key = k.hex();
      e.dir = cache_dir_ / "envs" / e.key;
      e.ready = path_exists(cache_dir_ / "envs" / (e.key + ".complete")) && env_dir_intact(e);
      if (opt_.explain_cache) explain("environment " + e.name, k);
    }
  }

  /// A persisted venv still matches the host cache (symlink mode: its
  /// packages' archives are there; someone may have cleared the cache).
  bool env_dir_intact(const EnvPlan& e) const {
    if (spec_.uv.link_mode != "symlink") return path_exists(e.dir);
    std::error_code ec;
    for (fs::recursive_directory_iterator it(e.dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().filename() != "METADATA" || !it->is_symlink(ec)) continue;
      std::string target = fs::read_symlink(it->path(), ec).string();
      if (target.rfind(spec_.uv.cache_dir + "/", 0) != 0) continue;
      fs::path host = host_uv_cache_ / target.substr(spec_.uv.cache_dir.size() + 1);
      if (!path_exists(host)) return false;
    }
    return !ec;
  }

  void explain(const std::string& what, const CacheKey& k) {
    note("cache key of " + what + ": " + k.hex().substr(0, 16));
    for (const auto& line : k.explain()) note("    " + line);
  }

  void make_environments() {
    std::vector<EnvPlan*> todo;
    for (auto& e : envs_)
      if (e.enabled && !e.ready) todo.push_back(&e);
    if (todo.empty()) return;
    auto t = Clock::now();
    fs::path rootfs = ensure_rootfs_snapshot(store_, base_layers_, cache_dir_ / "snapshots");
    note("root filesystem of the base ready in " + format_seconds(seconds_since(t)));
    fs::create_directories(host_uv_cache_);
    fs::create_directories(cache_dir_ / "envs");
    // One build at a time changes this uv cache (uv runs, archive renames).
    fs::path lock_path = host_uv_cache_.string() + ".lock";
    UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!lock) throw_errno("cannot open " + lock_path.string());
    if (::flock(lock.get(), LOCK_EX) != 0) throw_errno("cannot lock " + lock_path.string());

    UvRunnerConfig c;
    c.isolation = opt_.isolation;
    c.force_host = opt_.force_host;
    c.rootfs = rootfs;
    c.scratch = work_dir_ / "sandbox";
    c.uv_binary = uv_binary_;
    c.host_cache = host_uv_cache_;
    c.image_cache_dir = spec_.uv.cache_dir;
    c.project_tree = project_root_;
    c.image_project_dir = spec_.source.dest;
    c.python = spec_.uv.python;
    c.link_mode = spec_.uv.link_mode;
    c.compile_bytecode = spec_.uv.compile_bytecode;
    c.source_date_epoch = clamp_;
    c.passthrough_env = passthrough_;
    c.extra_binds = extra_binds_;
    c.on_output = [this](std::string_view line) { note(std::string(line)); };
    for (EnvPlan* e : todo) {
      auto te = Clock::now();
      fs::path tmp = temp_path_beside(e->dir);
      fs::create_directories(tmp);
      try {
        run_uv_environment(c, UvEnvironment{e->name, e->image_path, tmp, e->extras, e->groups,
                                            e->all_groups, e->no_default_groups});
        ++uv_runs_;
        // Content-derived archive names: clean builds give identical layers.
        canonicalize_archive_ids(host_uv_cache_, spec_.uv.cache_dir, {tmp});
        remove_tree(e->dir);
        if (::rename(tmp.c_str(), e->dir.c_str()) != 0) throw_errno("cannot rename to " + e->dir.string());
        write_file_atomic(cache_dir_ / "envs" / (e->key + ".complete"), "complete\n");
      } catch (...) {
        remove_tree(tmp);
        throw;
      }
      e->ready = true;
      note("environment " + e->name + " made in " + format_seconds(seconds_since(te)));
    }
  }

  // ---- layers -------------------------------------------------------------

  /// Returns the layer for `key`, making it with `produce` on a miss.
  LayerRecord cached_layer(const std::string& name, const CacheKey& key,
                           const std::function<void(ByteSink&)>& produce) {
    if (opt_.explain_cache) explain("layer " + name, key);
    auto t = Clock::now();
    std::string k = key.hex();
    if (auto hit = layer_cache_.find(k)) return LayerRecord{name, *hit, true, seconds_since(t)};
    LayerBlob blob = write_layer(produce, opt_.compression, store_);
    layer_cache_.put(k, blob);
    return LayerRecord{name, blob, false, seconds_since(t)};
  }

  CacheKey layer_key(const std::string& kind) const {
    CacheKey k(kind);
    k.add("mtime-clamp", std::to_string(clamp_))
        .add("compression", std::string(compression_name(opt_.compression.kind)))
        .add("compression-level", std::to_string(opt_.compression.level));
    return k;
  }

  /// A readable name for a cache part: its venvs when few, else how many
  /// (the key uses the full list).
  static std::string part_label(const CachePart& part) {
    if (part.users.size() <= 2) return cache_part_name(part);
    std::string first = *part.users.begin();
    return "shared by " + std::to_string(part.users.size()) + " environments: " + first + ", ... " +
           sha256_of(cache_part_name(part)).short_hex(8);
  }

  void write_layers() {
    TarOptions base_tar;
    base_tar.mtime_clamp = clamp_;

    // uv itself, where the image wants it.
    if (!spec_.uv.uv_path.empty()) {
      CacheKey k = layer_key("uv-binary");
      k.add("uv", uv_sha_).add("path", spec_.uv.uv_path);
      fs::path staging = work_dir_ / "tools";
      layers_.push_back(cached_layer("uv " + uv_short_version_, k,
                                     [&](ByteSink& sink) {
        fs::path target = staging / fs::path(spec_.uv.uv_path).relative_path();
        fs::create_directories(target.parent_path());
        fs::copy_file(uv_binary_, target, fs::copy_options::overwrite_existing);
        fs::permissions(target, fs::perms(0755));
        write_directory_tar(staging, base_tar, sink);
      }));
    }

    // The uv cache, in parts by which environments use each entry.
    if (spec_.uv.ship_cache && !envs_.empty()) {
      std::map<std::string, fs::path> env_dirs;
      for (const auto& e : envs_)
        if (e.ready) env_dirs[e.name] = e.dir;
      std::set<std::string> enabled;
      for (const auto& e : envs_)
        if (e.enabled) enabled.insert(e.name);
      for (const CachePart& part : partition_uv_cache(host_uv_cache_, env_dirs)) {
        bool needed = part.users.empty();
        for (const auto& u : part.users) needed = needed || enabled.count(u);
        if (!needed) continue;
        // Unpacked wheels (big, reproducible) apart from uv's pointer files
        // (small; they carry HTTP cache times, so they differ between clean
        // builds): the big layer keeps its digest across clean builds.
        CachePart archives, index;
        archives.users = index.users = part.users;
        for (const auto& p : part.paths)
          (p.rfind("archive-v0/", 0) == 0 ? archives : index).paths.insert(p);
        for (const CachePart* piece : {&archives, &index}) {
          if (piece->paths.empty()) continue;
          bool is_index = piece == &index;
          std::string name = std::string(is_index ? "uv cache index (" : "uv cache (") +
                             part_label(part) + ")";
          CacheKey k = layer_key(is_index ? "uv-cache-index" : "uv-cache-archives");
          k.add("cache-dir", spec_.uv.cache_dir).add("part", cache_part_name(part));
          std::string listing;
          for (const auto& p : piece->paths) {
            listing += p + "\n";
            // Pointer files may be rewritten by uv; archive dirs never are
            // (their names are derived from their content).
            if (is_index) {
              try {
                listing += sha256_of(read_file(host_uv_cache_ / p)).hex() + "\n";
              } catch (const Error&) {
              }
            }
          }
          k.add("paths", sha256_of(listing).str());
          layers_.push_back(cached_layer(name, k, [&](ByteSink& sink) {
            TarOptions t = base_tar;
            t.dest = spec_.uv.cache_dir;
            t.include = [piece](const std::string& rel, bool is_dir) {
              return piece->includes(rel, is_dir);
            };
            write_directory_tar(host_uv_cache_, t, sink);
          }));
        }
      }
    }

    // One layer per venv, workers first and the main venv last.
    for (const auto& e : envs_) {
      if (!e.shipped || !e.enabled) continue;
      CacheKey k = layer_key("venv");
      k.add("environment", e.key);
      layers_.push_back(cached_layer("venv " + e.name, k, [&](ByteSink& sink) {
        TarOptions t = base_tar;
        t.dest = e.image_path;
        write_directory_tar(e.dir, t, sink);
      }));
    }

    // The source tree: keyed by its own tar's digest (one uncompressed pass),
    // so only a real change of content costs compression and upload.
    {
      auto t0 = Clock::now();
      TarOptions t = base_tar;
      t.dest = spec_.source.dest;
      bool keep_git = spec_.source.keep_git_dir;
      const IgnoreRules& rules = ignore_;
      t.include = [&rules, keep_git](const std::string& rel, bool is_dir) {
        if (!keep_git && (rel == ".git" || rel.rfind(".git/", 0) == 0)) return false;
        return !rules.excluded(rel, is_dir);
      };
      t.descend_excluded = [&rules, keep_git](const std::string& rel) {
        if (!keep_git && (rel == ".git" || rel.rfind(".git/", 0) == 0)) return false;
        return rules.may_reinclude_below(rel);
      };
      HashingSink probe(nullptr);
      write_directory_tar(source_tree_, t, probe);
      CacheKey k = layer_key("source");
      k.add("tar", probe.digest().str());
      LayerRecord r = cached_layer("source " + spec_.source.dest, k, [&](ByteSink& sink) {
        write_directory_tar(source_tree_, t, sink);
      });
      r.seconds = seconds_since(t0);
      layers_.push_back(r);
    }
    for (const auto& l : layers_)
      note("layer " + l.name + ": " + l.blob.descriptor.digest.short_hex() + " " +
           human_bytes(static_cast<std::uint64_t>(l.blob.descriptor.size)) +
           (l.cache_hit ? " (cached)" : " (built in " + format_seconds(l.seconds) + ")"));
  }

  // ---- image ----------------------------------------------------------------

  Descriptor assemble() {
    ImageConfig config = base_config_;
    config.created = format_rfc3339(clamp_);
    config.os = platform_.os;
    std::vector<Descriptor> base_descs = base_manifest_.layers;
    ImageBuilder image(config, base_descs);
    for (const auto& l : layers_) image.add_layer(l.blob, "dockless: " + l.name);

    ContainerConfig& cc = image.config().config;
    std::string path = cc.get_env("PATH").value_or(kDefaultPath);
    const EnvPlan* main_env = nullptr;
    for (const auto& e : envs_)
      if (e.shipped && e.enabled && e.name == "main") main_env = &e;
    if (main_env != nullptr) {
      cc.set_env("PATH", main_env->image_path + "/bin:" + path);
      cc.set_env("UV_PROJECT_ENVIRONMENT", main_env->image_path);
    } else {
      cc.set_env("PATH", path);
    }
    if (!envs_.empty() || !spec_.uv.uv_path.empty()) {
      cc.set_env("UV_CACHE_DIR", spec_.uv.cache_dir);
      cc.set_env("UV_LINK_MODE", spec_.uv.link_mode);
      cc.set_env("UV_PYTHON", spec_.uv.python);
    }
    ImageSettings settings;
    settings.env = spec_.image.env;
    settings.labels = spec_.image.labels;
    settings.workdir = spec_.image.workdir.empty() ? spec_.source.dest : spec_.image.workdir;
    if (!spec_.image.user.empty()) settings.user = spec_.image.user;
    settings.entrypoint = spec_.image.entrypoint;
    settings.cmd = spec_.image.cmd;
    settings.apply(cc);
    if (!git_commit_.empty()) {
      cc.labels["org.opencontainers.image.source"] = redact_url(git_url_);
      cc.labels["org.opencontainers.image.revision"] = git_commit_;
    }
    auto& ann = image.annotations();
    ann["org.opencontainers.image.base.name"] = base_name_;
    ann["org.opencontainers.image.base.digest"] = base_.top.digest.str();
    if (!git_commit_.empty()) {
      ann["org.opencontainers.image.source"] = redact_url(git_url_);
      ann["org.opencontainers.image.revision"] = git_commit_;
    }
    return image.store(store_);
  }

  Digest write_outputs(const Descriptor& manifest, const std::vector<ImageLocation>& outputs,
                       const std::vector<Reference>& tags) {
    LocalImage built{&store_, manifest, base_.source_registry, base_.source_repo};
    std::string default_tag = tags.empty() ? "" : tags.front().str();
    for (const auto& o : outputs) {
      transfer_.store(built, o, default_tag);
      output_names_.push_back(o.str());
      note("wrote " + o.str());
    }
    if (opt_.push) {
      for (const auto& t : tags) {
        transfer_.store(built, ImageLocation{t}, "");
        output_names_.push_back("docker://" + t.str());
        note("pushed " + t.str());
      }
    }
    return manifest.digest;
  }

  void write_report(const Digest& digest, double seconds) {
    if (opt_.report_file.empty()) return;
    rapidjson::StringBuffer buf;
    json::Writer w(buf);
    w.StartObject();
    json::write_string_member(w, "digest", digest.str());
    json::write_key(w, "seconds");
    w.Double(seconds);
    json::write_key(w, "uv_runs");
    w.Int(uv_runs_);
    json::write_string_member(w, "base", base_name_);
    json::write_string_member(w, "base_digest", base_.top.digest.str());
    if (!git_commit_.empty()) json::write_string_member(w, "git_commit", git_commit_);
    json::write_key(w, "skipped");
    w.StartArray();
    for (const auto& e : envs_)
      if (!e.enabled) json::write_string(w, e.name);
    w.EndArray();
    json::write_key(w, "layers");
    w.StartArray();
    for (const auto& l : layers_) {
      w.StartObject();
      json::write_string_member(w, "name", l.name);
      json::write_string_member(w, "digest", l.blob.descriptor.digest.str());
      json::write_string_member(w, "diff_id", l.blob.diff_id.str());
      json::write_key(w, "size");
      w.Int64(l.blob.descriptor.size);
      json::write_string_member(w, "cache", l.cache_hit ? "hit" : "miss");
      json::write_key(w, "seconds");
      w.Double(l.seconds);
      w.EndObject();
    }
    w.EndArray();
    json::write_key(w, "outputs");
    w.StartArray();
    for (const auto& o : output_names_) json::write_string(w, o);
    w.EndArray();
    w.EndObject();
    write_file_atomic(opt_.report_file, json::pretty(std::string_view(buf.GetString(), buf.GetSize())) + "\n");
  }

 public:
  ~Builder() { remove_tree(work_dir_); }

 private:
  BuildOptions opt_;
  ImageTransfer transfer_;
  fs::path cache_dir_;
  BlobStore store_;
  LayerCache layer_cache_;
  BuildSpec spec_;
  fs::path work_dir_, source_tree_, project_root_;
  IgnoreRules ignore_;
  std::string git_url_, git_commit_;
  std::int64_t clamp_ = kDefaultMtimeClamp;
  Platform platform_;
  std::vector<EnvPlan> envs_;
  LocalImage base_;
  std::string base_name_;
  Manifest base_manifest_;
  ImageConfig base_config_;
  std::vector<LayerBlob> base_layers_;
  fs::path uv_binary_;
  std::string uv_version_, uv_short_version_, uv_sha_;
  fs::path host_uv_cache_;
  std::vector<std::string> passthrough_;
  std::vector<BindMount> extra_binds_;
  std::vector<LayerRecord> layers_;
  std::vector<std::string> output_names_;
  int uv_runs_ = 0;
};

}  // namespace

Digest run_build(const BuildOptions& options) {
  Builder b(options);
  return b.run();
}

}  // namespace dockless
