#include "src/build/build_command.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <set>

#include "layers/hashing_sink.h"
#include "layers/ignore_rules.h"
#include "layers/layer_writer.h"
#include "layers/tar_writer.h"
#include "layers/unpacker.h"
#include "src/build/uv_cache_partition.h"
#include "base/error.h"
#include "base/file_lock.h"
#include "base/file_util.h"
#include "src/cache/last_used.h"
#include "oci/image_config.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "src/cache/build_cache.h"
#include "src/build/build_spec.h"
#include "src/build/git_source.h"
#include "src/build/image_builder.h"
#include "src/build/image_settings.h"
#include "src/cache/layer_cache.h"
#include "src/cache/layer_keys.h"
#include "src/cache/registry_cache.h"
#include "src/sandbox/rootfs_snapshot.h"
#include "src/build/uv_runner.h"

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
  bool ready = false;   ///< dir is complete on this machine
  bool needed = false;  ///< a layer no cache has is made from dir
};

struct LayerRecord {
  std::string name;
  LayerBlob blob;
  std::string origin;  ///< "hit" (local cache), "remote" (--cache-from), "miss" (built)
  double seconds = 0;
};

/// Keeps a copy of what passes, up to a limit: the source tree's tar, hashed
/// for its key, is compressed from memory on a miss instead of walked again.
class BoundedCopy : public ByteSink {
 public:
  explicit BoundedCopy(std::size_t limit) : limit_(limit) {}
  void write(const void* data, std::size_t size) override {
    if (!complete_) return;
    if (bytes_.size() + size > limit_) {
      complete_ = false;
      std::string().swap(bytes_);
      return;
    }
    bytes_.append(static_cast<const char*>(data), size);
  }
  void finish() override {}
  /// Whether every byte was kept.
  bool complete() const { return complete_; }
  const std::string& bytes() const { return bytes_; }

 private:
  std::size_t limit_;
  std::string bytes_;
  bool complete_ = true;
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
        layer_cache_(cache_dir_ / "layers", store_),
        cache_(layer_cache_, store_, transfer_, options.no_cache, !options.outputs.empty()) {}

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
    for (const auto& t : opt_.tags) tags.push_back(parse_ref_option("--tag", t));

    for (const auto& from : opt_.cache_from) parse_ref_option("--cache-from", from);
    if (!opt_.cache_to.empty()) parse_ref_option("--cache-to", opt_.cache_to);
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
    if (!uv_binary_.empty()) identify_uv();
    key_environments();
    {
      std::vector<Reference> from;
      for (const auto& f : opt_.cache_from) from.push_back(parse_ref_option("--cache-from", f));
      cache_.open(from);
    }
    plan_layers();
    make_environments();
    write_layers();
    Descriptor manifest = assemble();
    mark_image_used(manifest);
    Digest digest = write_outputs(manifest, outputs, tags);
    write_cache_to();
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
  void warn(const std::string& line) { transfer_.progress().warn(line); }

  /// uv's version and SHA-256, remembered per file identity (device, inode,
  /// size, mtime, ctime): hashing a 40 MB binary on every build costs more
  /// than the rest of a no-change build.
  void identify_uv() {
    struct stat st;
    if (::stat(uv_binary_.c_str(), &st) != 0) throw_errno("cannot stat " + uv_binary_.string());
    std::string identity = uv_binary_.string() + "\n" + std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) +
                           " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
                           std::to_string(st.st_mtim.tv_nsec) + " " + std::to_string(st.st_ctim.tv_sec) + "." +
                           std::to_string(st.st_ctim.tv_nsec);
    fs::path memo = cache_dir_ / "tools" / ("uv-" + sha256_of(identity).hex());
    try {
      std::string text = read_file(memo);
      std::size_t nl = text.find('\n');
      if (nl != std::string::npos && text.size() > nl + 1) {
        mark_used(memo);
        uv_sha_ = text.substr(0, nl);
        uv_version_ = text.substr(nl + 1, text.find('\n', nl + 1) - nl - 1);
      }
    } catch (const Error&) {
    }
    if (uv_sha_.empty() || uv_version_.rfind("uv ", 0) != 0) {
      uv_version_ = uv_version(uv_binary_);
      uv_sha_ = sha256_of(read_file(uv_binary_)).str();
      fs::create_directories(memo.parent_path());
      write_file_atomic(memo, uv_sha_ + "\n" + uv_version_ + "\n");
    }
    uv_short_version_ = uv_version_.substr(3, uv_version_.find(' ', 3) - 3);  // "uv 0.13.9 (...)"
  }

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
    // A build that only pushes leaves the base's layers in the registry
    // until uv needs the root filesystem (the push mounts them).
    base_layers_remote_ = where.is_registry() && opt_.outputs.empty();
    base_ = transfer_.load(where, store_, base_layers_remote_);
    if (media_type::is_index(base_.top.media_type))
      throw Error("base image " + spec_.image.base + " is an index; no manifest for " + platform_.str());
    // Base blobs into our store, so every output can be written from one place.
    for (const auto& b : manifest_blobs(*base_.store, base_.top))
      if (!base_layers_remote_ || !media_type::is_layer(b.media_type)) store_.import_from(*base_.store, b.digest);
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

  /// The base's layers that a push-only build left in the registry, now
  /// that uv needs the root filesystem, unless its snapshot is made already.
  void fetch_base_layers() {
    if (!base_layers_remote_) return;
    std::vector<Digest> ids;
    for (const auto& l : base_layers_) ids.push_back(l.diff_id);
    if (path_exists(cache_dir_ / "snapshots" / (chain_id(ids).hex() + ".complete"))) return;
    transfer_.fetch_missing(base_.source_registry, base_.source_repo, base_manifest_.layers, store_);
  }

  void key_environments() {
    // One persistent uv cache per platform and uv version (bucket layouts
    // change between uv releases).
    std::string platform_dir = platform_.str();
    std::replace(platform_dir.begin(), platform_dir.end(), '/', '-');
    host_uv_cache_ = cache_dir_ / "uv" /
                     (platform_dir + "-uv" + (uv_short_version_.empty() ? "none" : uv_short_version_));
    collect_passthrough_env(passthrough_, extra_binds_);
    std::string uv_lock = file_digest(project_root_ / "uv.lock");
    std::string pyproject = file_digest(project_root_ / "pyproject.toml");
    for (auto& e : envs_) {
      KeyInputs in;
      in.kind = KeyKind::kEnvironment;
      EnvironmentInputs& x = in.environment;
      x.base = base_.top.digest.str();
      x.platform = platform_.str();
      x.uv = uv_sha_;
      x.python = spec_.uv.python;
      x.uv_lock = uv_lock;
      x.pyproject = pyproject;
      x.venv_path = e.image_path;
      x.cache_dir = spec_.uv.cache_dir;
      x.link_mode = spec_.uv.link_mode;
      x.compile_bytecode = spec_.uv.compile_bytecode;
      x.extras = e.extras;
      x.groups = e.groups;
      x.all_groups = e.all_groups;
      x.no_default_groups = e.no_default_groups;
      x.uv_env = passthrough_;
      CacheKey k = cache_key(in);
      e.key = k.hex();
      e.dir = cache_dir_ / "envs" / e.key;
      fs::path marker = cache_dir_ / "envs" / (e.key + ".complete");
      // Whether its files are still whole is checked when it is used (a walk
      // of the venv: not for builds that take its layer from a cache).
      e.ready = !opt_.no_cache && path_exists(marker);
      if (e.ready) mark_used(marker);
      if (opt_.explain_cache) explain("environment " + e.name, k);
    }
  }

  static std::string file_digest(const fs::path& file) {
    try {
      return sha256_of(read_file(file)).str();
    } catch (const Error&) {
      return "missing";
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

  // ---- caches: local, then --cache-from -----------------------------------

  /// A registry reference given to `option` ([docker://]REF); a bad one is a usage error.
  static Reference parse_ref_option(const std::string& option, const std::string& text) {
    try {
      return Reference::parse(text.rfind("docker://", 0) == 0 ? text.substr(9) : text);
    } catch (const Error& e) {
      throw UsageError(option + ": " + e.what());
    }
  }

  /// What a registry cache's uv cache layers must match to seed ours.
  BuildCacheIndex cache_meta() const {
    BuildCacheIndex meta;
    meta.platform = platform_.str();
    meta.uv_version = uv_short_version_;
    meta.uv_cache_dir = spec_.uv.cache_dir;
    return meta;
  }

  // ---- layer plan ---------------------------------------------------------

  /// A place in the image and what fills it: one layer, or the uv cache's
  /// parts. `build` makes the layers when no cache has them.
  struct Slot {
    std::string name;
    std::string key;
    std::vector<CachedLayer> layers;
    std::string origin = "miss";
    std::function<std::vector<CachedLayer>()> build;
    double seconds = 0;
  };

  KeyInputs layer_inputs(KeyKind kind) const {
    KeyInputs in;
    in.kind = kind;
    in.format.mtime_clamp = clamp_;
    in.format.compression = opt_.compression.kind;
    in.format.level = opt_.compression.level;
    return in;
  }

  Slot& add_slot(const std::string& name, const KeyInputs& in,
                 std::function<std::vector<CachedLayer>()> build,
                 const std::function<bool(const CachedLayer&)>& wanted = nullptr) {
    auto t = Clock::now();
    CacheKey k = cache_key(in);
    if (opt_.explain_cache) explain("layer " + name, k);
    Slot slot;
    slot.name = name;
    slot.key = k.hex();
    if (auto found = cache_.find(slot.key, slot.origin, wanted)) slot.layers = std::move(*found);
    else slot.build = std::move(build);
    slot.seconds = seconds_since(t);
    slots_.push_back(std::move(slot));
    return slots_.back();
  }

  LayerBlob write_one(const std::function<void(ByteSink&)>& produce) {
    return write_layer(produce, opt_.compression, store_);
  }

  /// Keys every layer and looks each up; marks the environments that a
  /// missing layer needs.
  void plan_layers() {
    TarOptions base_tar;
    base_tar.mtime_clamp = clamp_;

    // uv itself, where the image wants it.
    if (!spec_.uv.uv_path.empty()) {
      KeyInputs in = layer_inputs(KeyKind::kUvBinary);
      in.uv = uv_sha_;
      in.uv_path = spec_.uv.uv_path;
      std::string name = "uv " + uv_short_version_;
      add_slot(name, in, [this, base_tar, name] {
        fs::path staging = work_dir_ / "tools";
        fs::path target = staging / fs::path(spec_.uv.uv_path).relative_path();
        fs::create_directories(target.parent_path());
        fs::copy_file(uv_binary_, target, fs::copy_options::overwrite_existing);
        fs::permissions(target, fs::perms(0755));
        return std::vector<CachedLayer>{
            {name, write_one([&](ByteSink& sink) { write_directory_tar(staging, base_tar, sink); }), {}}};
      });
    }

    if (spec_.uv.ship_cache && !envs_.empty()) plan_uv_cache(base_tar);

    // One layer per venv, workers first and the main venv last.
    for (auto& e : envs_) {
      if (!e.shipped || !e.enabled) continue;
      KeyInputs in = layer_inputs(KeyKind::kVenv);
      in.environment_key = e.key;
      std::string name = "venv " + e.name;
      EnvPlan* env = &e;
      Slot& slot = add_slot(name, in, [this, base_tar, env, name] {
        TarOptions t = base_tar;
        t.dest = env->image_path;
        return std::vector<CachedLayer>{
            {name, write_one([&](ByteSink& sink) { write_directory_tar(env->dir, t, sink); }), {}}};
      });
      if (slot.build) e.needed = true;
    }

    // The source tree: keyed by its own tar's digest (one uncompressed pass),
    // so only a real change of content costs compression and upload.
    {
      auto t0 = Clock::now();
      source_tar_ = base_tar;
      source_tar_.dest = spec_.source.dest;
      bool keep_git = spec_.source.keep_git_dir;
      const IgnoreRules& rules = ignore_;
      source_tar_.include = [&rules, keep_git](const std::string& rel, bool is_dir) {
        if (!keep_git && (rel == ".git" || rel.rfind(".git/", 0) == 0)) return false;
        return !rules.excluded(rel, is_dir);
      };
      source_tar_.descend_excluded = [&rules, keep_git](const std::string& rel) {
        if (!keep_git && (rel == ".git" || rel.rfind(".git/", 0) == 0)) return false;
        return rules.may_reinclude_below(rel);
      };
      auto copy = std::make_shared<BoundedCopy>(std::size_t{256} << 20);
      HashingSink probe(copy.get());
      write_directory_tar(source_tree_, source_tar_, probe);
      KeyInputs in = layer_inputs(KeyKind::kSource);
      in.source_tar = probe.digest().str();
      std::string name = "source " + spec_.source.dest;
      Slot& slot = add_slot(name, in, [this, name, copy] {
        return std::vector<CachedLayer>{{name, write_one([&](ByteSink& sink) {
                                           if (!copy->complete()) {
                                             write_directory_tar(source_tree_, source_tar_, sink);
                                             return;
                                           }
                                           sink.write(copy->bytes().data(), copy->bytes().size());
                                           sink.finish();
                                         }),
                                         {}}};
      });
      if (!slot.build) copy.reset();
      slot.seconds += seconds_since(t0);
    }
  }

  /// The uv cache slot. Its key covers every environment it is split by:
  /// all of them (skipped ones too) when that is cached, so a variant built
  /// with --skip reuses the full image's parts; else the enabled ones and
  /// the skipped ones already made here.
  void plan_uv_cache(const TarOptions& base_tar) {
    auto enabled_part = [this](const CachedLayer& l) { return enabled_users(l); };
    auto key_for = [this](const std::map<std::string, std::string>& envs) {
      KeyInputs in = layer_inputs(KeyKind::kUvCache);
      in.cache_dir = spec_.uv.cache_dir;
      in.environments = envs;
      return in;
    };
    std::map<std::string, std::string> all, usable;
    for (const auto& e : envs_) {
      all[e.name] = e.key;
      if (e.enabled || e.ready) usable[e.name] = e.key;
    }
    if (usable != all) {
      std::string origin;
      CacheKey k = cache_key(key_for(all));
      if (auto found = cache_.find(k.hex(), origin, enabled_part)) {
        if (opt_.explain_cache) explain("layer uv cache", k);
        Slot slot;
        slot.name = "uv cache";
        slot.key = k.hex();
        slot.layers = std::move(*found);
        slot.origin = origin;
        slots_.push_back(std::move(slot));
        uv_cache_slot_ = slots_.size() - 1;
        return;
      }
    }
    Slot& slot = add_slot("uv cache", key_for(usable), [this, base_tar, usable] {
      return write_uv_cache(base_tar, usable);
    }, enabled_part);
    uv_cache_slot_ = slots_.size() - 1;
    if (slot.build)
      for (auto& e : envs_)
        if (usable.count(e.name)) e.needed = true;
  }

  /// The uv cache in parts by which environments use each entry; each part
  /// is two layers, unpacked wheels apart from uv's pointer files.
  std::vector<CachedLayer> write_uv_cache(const TarOptions& base_tar,
                                          const std::map<std::string, std::string>& users) {
    std::map<std::string, fs::path> env_dirs;
    for (const auto& e : envs_)
      if (users.count(e.name)) env_dirs[e.name] = e.dir;
    std::vector<CachedLayer> out;
    for (const CachePart& part : partition_uv_cache(host_uv_cache_, env_dirs)) {
      // Unpacked wheels (big, reproducible) apart from uv's pointer files
      // (small; they carry HTTP cache times, so they differ between clean
      // builds): the big layer keeps its digest across clean builds.
      CachePart archives, index;
      archives.users = index.users = part.users;
      for (const auto& p : part.paths) (p.rfind("archive-v0/", 0) == 0 ? archives : index).paths.insert(p);
      for (const CachePart* piece : {&archives, &index}) {
        if (piece->paths.empty()) continue;
        bool is_index = piece == &index;
        std::string name =
            std::string(is_index ? "uv cache index (" : "uv cache (") + part_label(part) + ")";
        // A piece whose files are unchanged is reused from an earlier build
        // of another uv cache slot (e.g. after a uv.lock edit elsewhere).
        KeyInputs in = layer_inputs(KeyKind::kUvCachePiece);
        in.cache_dir = spec_.uv.cache_dir;
        in.part = cache_part_name(part);
        in.piece = is_index ? "index" : "archives";
        std::string listing;
        for (const auto& p : piece->paths) {
          listing += p + "\n";
          // Pointer files may be rewritten by uv; archive dirs never are
          // (their names are derived from their content).
          if (is_index) listing += file_digest(host_uv_cache_ / p) + "\n";
        }
        in.listing = sha256_of(listing).str();
        CacheKey k = cache_key(in);
        std::optional<std::vector<CachedLayer>> reused = opt_.no_cache ? std::nullopt : layer_cache_.find(k.hex());
        LayerBlob blob;
        if (reused) {
          blob = reused->front().blob;
        } else {
          blob = write_one([&](ByteSink& sink) {
            TarOptions t = base_tar;
            t.dest = spec_.uv.cache_dir;
            t.include = [piece](const std::string& rel, bool is_dir) { return piece->includes(rel, is_dir); };
            write_directory_tar(host_uv_cache_, t, sink);
          });
          layer_cache_.put(k.hex(), {{name, blob, part.users}});
        }
        out.push_back(CachedLayer{name, blob, part.users});
      }
    }
    return out;
  }

  /// A readable name for a cache part: its venvs when few, else how many
  /// (the key uses the full list).
  static std::string part_label(const CachePart& part) {
    if (part.users.size() <= 2) return cache_part_name(part);
    std::string first = *part.users.begin();
    return "shared by " + std::to_string(part.users.size()) + " environments: " + first + ", ... " +
           sha256_of(cache_part_name(part)).short_hex(8);
  }

  // ---- environments -------------------------------------------------------

  /// Fills an absent host uv cache from a --cache-from's uv cache layers, so
  /// uv downloads only what changed since that build.
  void seed_uv_cache() {
    if (path_exists(host_uv_cache_)) return;
    for (const BuildCache::RemoteEntry& r : cache_.remote_slot("uv cache", cache_meta())) {
      auto t = Clock::now();
      fs::path staging = temp_path_beside(host_uv_cache_);
      try {
        cache_.download(*r.cache, r.entry->layers);
        fs::create_directories(staging);
        for (const auto& l : r.entry->layers) unpack_layer(store_.path_of(l.blob.descriptor.digest), staging);
        fs::path unpacked = staging / fs::path(spec_.uv.cache_dir).relative_path();
        fs::create_directories(host_uv_cache_.parent_path());
        if (::rename(unpacked.c_str(), host_uv_cache_.c_str()) != 0)
          throw_errno("cannot rename to " + host_uv_cache_.string());
        remove_tree(staging);
        note("uv cache seeded from " + r.cache->ref.str() + " in " + format_seconds(seconds_since(t)));
        return;
      } catch (const Error& err) {
        remove_tree(staging);
        warn(std::string("uv cache not seeded from ") + r.cache->ref.str() + ": " + err.what());
      }
    }
  }

  void make_environments() {
    std::vector<EnvPlan*> todo;
    for (auto& e : envs_) {
      if (e.needed && e.ready && !env_dir_intact(e)) e.ready = false;
      if (e.needed && !e.ready) todo.push_back(&e);
    }
    if (todo.empty()) return;
    auto t = Clock::now();
    fetch_base_layers();
    fs::path rootfs = ensure_rootfs_snapshot(store_, base_layers_, cache_dir_ / "snapshots");
    mark_used(rootfs);
    note("root filesystem of the base ready in " + format_seconds(seconds_since(t)));
    fs::create_directories(cache_dir_ / "envs");
    // One build at a time changes this uv cache (uv runs, archive renames).
    fs::create_directories(host_uv_cache_.parent_path());
    fs::path lock_path = host_uv_cache_.string() + ".lock";
    FileLock lock(lock_path, LockMode::kExclusive);
    seed_uv_cache();
    fs::create_directories(host_uv_cache_);

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

  /// Makes every layer no cache had, in image order, and lists them all.
  void write_layers() {
    for (auto& slot : slots_) {
      if (slot.build) {
        auto t = Clock::now();
        slot.layers = slot.build();
        cache_.put(slot.key, slot.layers);
        slot.seconds += seconds_since(t);
      }
      bool first = true;
      for (const auto& l : slot.layers) {
        if (&slot == uv_cache_slot() && !enabled_users(l)) continue;
        layers_.push_back(LayerRecord{l.name, l.blob, slot.origin, first ? slot.seconds : 0});
        first = false;
      }
    }
    for (const auto& l : layers_)
      note("layer " + l.name + ": " + l.blob.descriptor.digest.short_hex() + " " +
           human_bytes(static_cast<std::uint64_t>(l.blob.descriptor.size)) +
           (l.origin == "hit"      ? " (cached)"
            : l.origin == "remote" ? " (from the build cache in the registry)"
                                   : " (built in " + format_seconds(l.seconds) + ")"));
  }

  const Slot* uv_cache_slot() const {
    return uv_cache_slot_ < slots_.size() ? &slots_[uv_cache_slot_] : nullptr;
  }

  /// A uv cache part an enabled environment uses (or the common part).
  bool enabled_users(const CachedLayer& l) const {
    if (l.users.empty()) return true;
    for (const auto& e : envs_)
      if (e.enabled && l.users.count(e.name)) return true;
    return false;
  }

  /// --cache-to: this build's slots, and the other slots of the cache that
  /// was there (a --skip variant keeps the full build's venvs cached).
  void write_cache_to() {
    if (opt_.cache_to.empty()) return;
    auto t = Clock::now();
    Reference ref = parse_ref_option("--cache-to", opt_.cache_to);
    BuildCacheIndex index = cache_meta();
    for (const auto& slot : slots_) index.entries.push_back(BuildCacheEntry{slot.key, slot.name, slot.layers});
    Digest d = cache_.write(ref, index);
    note("build cache written to " + ref.str() + " (" + d.short_hex() + ") in " + format_seconds(seconds_since(t)));
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
    auto elsewhere = cache_.remote_blobs();
    if (base_layers_remote_)
      for (const auto& l : base_layers_) elsewhere[l.descriptor.digest.str()] = {base_.source_registry, base_.source_repo};
    return image.store(store_, [&elsewhere](const Digest& d) { return elsewhere.count(d.str()) > 0; });
  }

  /// Last-used times for `cache prune --keep-days`: every blob of the image.
  void mark_image_used(const Descriptor& manifest) {
    mark_used(store_.path_of(manifest.digest));
    for (const auto& b : manifest_blobs(store_, manifest)) mark_used(store_.path_of(b.digest));
    mark_used(store_.path_of(base_.top.digest));
    if (!uv_short_version_.empty() && path_exists(host_uv_cache_)) {
      fs::path lock = host_uv_cache_.string() + ".lock";
      if (!path_exists(lock)) write_file_atomic(lock, "");
      mark_used(lock);
    }
  }

  Digest write_outputs(const Descriptor& manifest, const std::vector<ImageLocation>& outputs,
                       const std::vector<Reference>& tags) {
    LocalImage built{&store_, manifest, base_.source_registry, base_.source_repo, {}};
    built.remote_blobs = cache_.remote_blobs();
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
      json::write_string_member(w, "cache", l.origin);
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
  BuildCache cache_;
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
  bool base_layers_remote_ = false;  ///< base layers stay in the registry (push-only build)
  fs::path uv_binary_;
  std::string uv_version_, uv_short_version_, uv_sha_;
  fs::path host_uv_cache_;
  std::vector<std::string> passthrough_;
  std::vector<BindMount> extra_binds_;
  std::vector<Slot> slots_;
  std::size_t uv_cache_slot_ = static_cast<std::size_t>(-1);
  TarOptions source_tar_;
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
