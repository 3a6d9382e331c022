#include "src/build/build_executor.h"

#include <unistd.h>

#include <algorithm>
#include <future>
#include <mutex>
#include <map>
#include <set>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/digest.h"
#include "src/build/build_outputs.h"
#include "src/build/build_state.h"
#include "src/build/env_builder.h"
#include "src/build/foreign_platform_build.h"
#include "src/build/multi_platform.h"
#include "src/build/sbom.h"
#include "src/build/lock_mirror.h"
#include "src/build/project_layer.h"
#include "src/build/push_pipeline.h"
#include "src/build/step_inputs.h"
#include "src/build/step_runner.h"
#include "src/build/uv_layers.h"
#include "src/build/uv_runner.h"
#include "src/cache/last_used.h"

namespace dockless {

namespace fs = std::filesystem;

/// The plan's view of the caches: environment markers under
/// <cache>/envs, layers in the local layer cache and the --cache-from
/// registries. Remembers how long each layer lookup took, for the report.
class BuildCacheState : public CacheState {
 public:
  explicit BuildCacheState(BuildState& s) : s_(s) {}
  bool environment_made(const std::string& env_key) override {
    fs::path marker = s_.cache_dir / "envs" / (env_key + ".complete");
    if (!path_exists(marker)) return false;
    mark_used(marker);
    return true;
  }
  std::optional<std::vector<CachedLayer>> find_layers(
      const std::string& key, std::string& origin, const std::function<bool(const CachedLayer&)>& wanted) override {
    auto t = Clock::now();
    auto found = s_.cache.find(key, origin, wanted);
    seconds[key] += seconds_since(t);
    return found;
  }
  std::map<std::string, double> seconds;

 private:
  BuildState& s_;
};

class PlatformBuild::Impl {
 public:
  explicit Impl(const BuildOptions& options) : s_(options), cache_state_(s_) {}

  std::vector<Platform> prepare() {
    dest_ = check_destinations();
    load_source_and_spec();
    std::vector<Platform> platforms = requested_platforms(opt().platform, s_.spec().image.platform,
                                                          s_.spec().image.platforms);
    if (platforms.size() > 1)
      for (const auto& o : dest_.outputs)
        if (o.is_archive())
          throw UsageError("--output " + o.str() + ": a docker-archive holds one platform; build " +
                           "several platforms into oci:DIR or a registry (--tag REF --push)");
    return platforms;
  }

  Descriptor build(const Platform& platform) {
    choose_platform(platform);
    // An edited tree's layer and the uv cache's large layers stream to the
    // first --push repository as they are made (its client made here:
    // ImageTransfer's are made on this thread).
    if (opt().push && !dest_.tags.empty()) {
      s_.stream_client = &s_.transfer.client(dest_.tags.front().registry);
      s_.stream_repo = dest_.tags.front().repository;
    }
    start_hashing_source();  // reads the tree while the base and the tag come over the network
    select_environments();
    fetch_base();
    // The base's layers go first, while the build goes on. The config is
    // always uploaded, into a session opened now; an edited source tree's
    // layer streams into its own (and with several repositories, the others
    // get one opened now too).
    start_push_pipeline(s_, dest_.tags, 1 + (source_edited_ && dest_.tags.size() > 1 ? 1 : 0));
    find_uv();
    collect_passthrough_env(s_.passthrough, s_.extra_binds);
    prepare_foreign(s_);
    hash_bind_mounts();
    key_environments();
    if (!managed_python()) check_lock();  // before planning: a stale lock fails fast
    open_caches();
    hash_source();
    plan_layers();
    // uv runs over the steps at "base": those are made first.
    std::size_t env_base = s_.plan.environment_base_count();
    write_layers(0, env_base);
    if (managed_python()) check_lock();  // needs the Python it checks with
    // uv itself and the source tree need no venv: made (and pushed) while
    // uv runs; the venvs' layers beside the uv cache's.
    make_layers_ahead(env_base, {SlotKind::kUvBinary, SlotKind::kSource});
    make_environments(s_);
    make_layers_ahead(env_base, {SlotKind::kVenv});
    write_layers(env_base, s_.plan.slots.size());
    list_layers();
    Descriptor manifest = assemble_image(s_);  // its config is pushed from there
    mark_image_used(s_, manifest);
    finish_push_pipeline(s_);  // every layer is in before a manifest goes out
    return manifest;
  }

  Digest finish(const Descriptor& manifest) {
    write_outputs(s_, manifest, dest_.outputs, dest_.tags);
    attach_sbom(s_, manifest, dest_.outputs, dest_.tags);
    write_cache_to(s_);
    write_report(s_, manifest.digest, seconds_since(s_.started));
    s_.note("built " + manifest.digest.str() + " in " + format_seconds(seconds_since(s_.started)) + " (" +
            run_counts(s_) + ")");
    return manifest.digest;
  }

  const Destinations& destinations() const { return dest_; }
  Clock::time_point started() const { return s_.started; }
  BuildState& state() { return s_; }

 private:
  const BuildOptions& opt() const { return s_.opt; }

  /// Usage errors first: every output, tag and cache reference parses.
  Destinations check_destinations() const {
    if (opt().outputs.empty() && !(opt().push && !opt().tags.empty()))
      throw UsageError("nothing to write: give --output oci:DIR[:TAG] or docker-archive:FILE, or --tag REF --push");
    if (opt().push && opt().tags.empty()) throw UsageError("--push needs at least one --tag REF");
    Destinations d;
    for (const auto& o : opt().outputs) {
      ImageLocation loc = ImageLocation::parse(o);
      if (loc.is_registry()) throw UsageError("--output " + o + ": use --tag REF --push for a registry");
      d.outputs.push_back(loc);
    }
    for (const auto& t : opt().tags) d.tags.push_back(parse_ref_option("--tag", t));
    for (const auto& from : opt().cache_from) parse_ref_option("--cache-from", from);
    if (!opt().cache_to.empty()) parse_ref_option("--cache-to", opt().cache_to);
    check_offline_sources();
    return d;
  }

  /// --wheels-from names a registry or a layout; --offline takes --git from
  /// this machine only (a file:// URL or a path), never over the network.
  void check_offline_sources() const {
    for (const auto& w : opt().wheels_from)
      if (ImageLocation::parse(w).is_archive())
        throw UsageError("--wheels-from " + w + ": expected REGISTRY/REPO[:TAG|@DIGEST] or oci:DIR[:TAG]");
    const std::string& git = opt().git_url;
    bool local = git.rfind("file://", 0) == 0 || git.rfind('/', 0) == 0 || git.rfind('.', 0) == 0;
    if (opt().offline && !git.empty() && !local)
      throw UsageError("--offline: --git " + git + " is fetched over the network; clone it where there is "
                       "network and build the tree, or give a file:// URL");
  }

  void load_source_and_spec() {
    // One work dir per platform build of this process (multi_platform.h).
    static int builds = 0;
    s_.work_dir = s_.cache_dir / "work" / ("build-" + std::to_string(::getpid()) +
                                           (builds++ == 0 ? "" : "-" + std::to_string(builds)));
    remove_tree(s_.work_dir);
    fs::create_directories(s_.work_dir);
    s_.source = load_project_source(opt(), s_.cache_dir, s_.work_dir);
    const std::string& commit = s_.source.git_commit;
    s_.note("spec " + s_.spec().file.string() + (commit.empty() ? "" : " at " + commit.substr(0, 12)));
    refuse_unsupported();
    for (const auto& name : s_.spec().unused_args)
      s_.warn("--arg " + name + " is used by no step, image.env or image.labels of " + s_.spec().file.string());
  }

  bool managed_python() const {
    return s_.spec().uv.python_source == BuildSpec::Uv::PythonSource::kUvManaged;
  }

  /// What this isolation cannot do: one clear line, rather than an image
  /// that silently lacks what was asked for.
  void refuse_unsupported() const {
    if (managed_python() && (opt().isolation == Isolation::kHost || opt().force_host))
      throw Error(s_.spec().file.string() + ": uv.python = \"" + s_.spec().uv.python +
                  "\" (a uv-managed Python) needs --isolation userns or chroot: with --isolation host, "
                  "install it in the image and give its path");
  }

  void choose_platform(const Platform& platform) {
    s_.clamp = mtime_clamp_from_environment();
    s_.platform = platform;
    s_.transfer.set_platform(s_.platform);
  }

  void select_environments() {
    s_.plan.environments = dockless::select_environments(s_.spec(), opt().skip);
    const fs::path& root = s_.source.project_root;
    if (!s_.plan.environments.empty() && !path_exists(root / "uv.lock"))
      throw Error("no uv.lock in " + root.string() + ": dockless installs with --frozen; run `uv lock` first");
  }

  void fetch_base() {
    auto t = Clock::now();
    bool push_only = opt().outputs.empty();
    s_.base = fetch_base_image(s_.spec().image.base, s_.platform, push_only, s_.transfer, s_.store);
    s_.note("base " + s_.spec().image.base + " " + s_.base.image.top.digest.short_hex() + " (" +
            std::to_string(s_.base.layers.size()) + " layers) in " + format_seconds(seconds_since(t)));
  }

  /// uv runs the environments and/or ships in the image.
  void find_uv() {
    if (s_.plan.environments.empty() && s_.spec().uv.uv_path.empty() && !s_.spec().uv.check_lock) return;
    s_.uv = identify_uv(dockless::find_uv(opt().uv_binary), s_.cache_dir);
  }

  /// uv.check-lock, before any layer is planned or made: a stale lock fails
  /// fast and leaves nothing half made. It runs on fully cached builds too:
  /// a cache hit only says an image was once built from these files, not
  /// that uv.lock still satisfies pyproject.toml (or the index settings).
  void check_lock() {
    if (!s_.spec().uv.check_lock) return;
    double seconds = check_uv_lock(s_);
    s_.note("uv.lock checked in " + format_seconds(seconds));
  }

  void key_environments() {
    // One persistent uv cache per platform and uv version (bucket layouts
    // change between uv releases).
    std::string platform_dir = s_.platform.str();
    std::replace(platform_dir.begin(), platform_dir.end(), '/', '-');
    s_.host_uv_cache = s_.cache_dir / "uv" /
                       (platform_dir + "-uv" + (s_.uv.short_version.empty() ? "none" : s_.uv.short_version));
    // A route, not an input: the keys below read the project's own uv.lock.
    s_.mirrored_lock = prepare_mirrored_lock(
        s_.source.project_root / "uv.lock", merge_index_mirrors(s_.spec().uv.index_mirrors, opt().index_mirrors),
        s_.work_dir, [&](const std::string& l) { s_.note(l); }, [&](const std::string& w) { s_.warn(w); });
    inputs_.platform = s_.platform.str();
    inputs_.base_digest = s_.base.image.top.digest.str();
    inputs_.uv_sha = s_.image_uv.sha;
    inputs_.foreign = foreign_key_input(s_);
    inputs_.uv_short_version = s_.uv.short_version;
    inputs_.uv_lock = file_digest(s_.source.project_root / "uv.lock");
    inputs_.pyproject = file_digest(s_.source.project_root / "pyproject.toml");
    inputs_.uv_env = s_.passthrough;
    inputs_.format.mtime_clamp = s_.clamp;
    inputs_.format.compression = opt().compression.kind;
    inputs_.format.level = opt().compression.level;
    inputs_.no_cache = opt().no_cache;
    dockless::key_environments(s_.plan.environments, s_.spec(), inputs_, cache_state_);
    if (opt().explain_cache)
      for (const auto& e : s_.plan.environments) explain("environment " + e.name, e.key, e.key_inputs);
  }

  void open_caches() {
    std::vector<Reference> from;
    for (const auto& f : opt().cache_from) from.push_back(parse_ref_option("--cache-from", f));
    s_.cache.open(from);
  }

  /// The source tree's tar digest (it keys the source layer) is learnt on a
  /// thread of its own from here: it needs only the tree and the clamp, not
  /// the base or the registry. A changed tree's layer is made there too.
  void start_hashing_source() {
    source_hashing_ = std::async(std::launch::async, [this] {
      auto t = Clock::now();
      // A git source is a fresh checkout at a new path each build: no memo
      // would ever match it, and each would stay behind.
      bool memo = !opt().no_cache && s_.source.git_url.empty();
      fs::path memo_dir = memo ? s_.cache_dir / "source-stat" : fs::path();
      auto layer = std::make_unique<SourceLayer>(
          s_.source, s_.clamp, memo_dir, s_.store, opt().compression, [this]() -> std::shared_ptr<StreamedUpload> {
            source_edited_ = true;
            if (s_.stream_client == nullptr) return nullptr;
            return std::make_shared<StreamedUpload>(*s_.stream_client, s_.stream_repo);
          });
      source_seconds_ = seconds_since(t);
      return layer;
    });
  }

  void hash_source() {
    s_.source_layer = source_hashing_.get();  // rethrows the hashing's Error
    inputs_.source_tar = s_.source_layer->tar_digest();
    if (s_.source_layer->made()) {
      const std::uint64_t resumed = s_.source_layer->resumed_at();
      s_.note("source tree edited: its layer made at once, " + std::to_string(s_.source_layer->reused_blocks()) +
              " gzip blocks taken from its last build" +
              (resumed > 0 ? " (the tree's first " + std::to_string(resumed) + " tar bytes not read again)" : ""));
    }
  }

  /// What the steps' bind mounts hold, for their keys; the contexts and
  /// secrets they name are checked first, before anything runs.
  void hash_bind_mounts() {
    if (s_.spec().steps.empty()) return;
    check_step_inputs(s_.spec(), s_.source.project_root, opt().step_inputs);
    inputs_.bind_digests = bind_mount_digests(s_);
  }

  /// Keys every layer and looks each up; marks the environments that a
  /// missing layer needs.
  void plan_layers() {
    s_.plan.slots = dockless::plan_layers(s_.plan.environments, s_.spec(), inputs_, cache_state_);
    for (const auto& slot : s_.plan.slots) {
      if (opt().explain_cache) explain("layer " + slot.name, slot.key, slot.key_inputs);
      double seconds = cache_state_.seconds[slot.key];
      if (slot.kind == SlotKind::kSource) {
        seconds += source_seconds_;
        if (slot.hit()) s_.source_layer->drop_copy();
      }
      s_.slot_seconds.push_back(seconds);
    }
  }

  void explain(const std::string& what, const std::string& key, const std::vector<std::string>& inputs) {
    s_.note("cache key of " + what + ": " + key.substr(0, 16));
    for (const auto& line : inputs) s_.note("    " + line);
  }

  /// The environment a venv or project slot is made from.
  const PlannedEnvironment& environment_of(const LayerSlot& slot) const {
    for (const auto& e : s_.plan.environments)
      if (e.name == slot.envs.front()) return e;
    throw Error("no environment " + slot.envs.front() + " for " + slot.name);
  }

  /// The layers of a slot no cache had.
  std::vector<CachedLayer> build_slot(const LayerSlot& slot) {
    switch (slot.kind) {
      case SlotKind::kUvBinary:
        return write_uv_binary_layer(s_, slot.name);
      case SlotKind::kUvCache:
        return write_uv_cache_layers(s_, std::set<std::string>(slot.envs.begin(), slot.envs.end()));
      case SlotKind::kVenv:
        return write_venv_layer(s_, environment_of(slot), slot.name);
      case SlotKind::kSource:
        return {{slot.name, s_.source_layer->write(opt().compression, s_.store), {}}};
      case SlotKind::kProject:
        return write_project_layer(s_, environment_of(slot), slot.name);
      case SlotKind::kStep:
        return run_step(s_, slot);
      case SlotKind::kPython:
        return write_python_layer(s_, slot.name);
    }
    throw Error("unknown layer slot " + slot.name);
  }

  struct MadeAhead {
    std::vector<CachedLayer> layers;
    double seconds = 0;  ///< to make them
    double at = 0;       ///< when they were made, since the build started
  };

  /// Starts making, on a thread of its own, the layers of the slots from
  /// `from` on of `kinds` that no cache had, each handed to the push as soon
  /// as it is made; write_layers takes them from there. A batch's thread
  /// starts on its layers once the previous batch is over (their slots
  /// share no state); the build itself waits only for the batch of the slot
  /// it needs: the venvs' layers are made beside the uv cache's, not before.
  void make_layers_ahead(std::size_t from, std::initializer_list<SlotKind> kinds) {
    std::set<std::size_t> todo;
    for (std::size_t i = from; i < s_.plan.slots.size(); ++i) {
      const LayerSlot& slot = s_.plan.slots[i];
      if (!slot.hit() && !ahead_slots_.count(i) && std::find(kinds.begin(), kinds.end(), slot.kind) != kinds.end())
        todo.insert(i);
    }
    if (todo.empty()) return;
    ahead_slots_.insert(todo.begin(), todo.end());
    std::shared_future<void> before = batches_.empty() ? std::shared_future<void>() : batches_.back().done;
    auto done = std::async(std::launch::async, [this, todo, before] {
      if (before.valid()) before.wait();  // its Error is the build's when it waits for that batch
      for (std::size_t i : todo) {
        const LayerSlot& slot = s_.plan.slots[i];
        // An edited tree's layer goes from memory while write() stores it.
        if (slot.kind == SlotKind::kSource)
          if (auto m = s_.source_layer->made_in_memory(opt().compression))
            push_layer_ahead(s_, CachedLayer{slot.name, m->first, {}}, /*made_now=*/true, m->second,
                             s_.source_layer->streamed());
        auto t = Clock::now();
        MadeAhead made{build_slot(s_.plan.slots[i]), 0, 0};
        made.seconds = seconds_since(t);
        made.at = seconds_since(s_.started);
        for (const auto& l : made.layers) push_layer_ahead(s_, l, /*made_now=*/true);
        std::lock_guard<std::mutex> lock(made_ahead_mu_);
        made_ahead_[i] = std::move(made);
      }
    });
    batches_.push_back(AheadBatch{std::move(todo), done.share()});
  }

  /// Waits for the batch making slot `i`; rethrows its Error. Its layers.
  MadeAhead made_ahead(std::size_t i) {
    for (const auto& b : batches_)
      if (b.slots.count(i)) b.done.get();
    std::lock_guard<std::mutex> lock(made_ahead_mu_);
    return made_ahead_.at(i);
  }

  /// Makes every layer of slots [from, to) no cache had, in image order.
  void write_layers(std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i) {
      LayerSlot& slot = s_.plan.slots[i];
      if (!slot.hit() && ahead_slots_.count(i)) {
        const MadeAhead made = made_ahead(i);
        slot.layers = made.layers;
        s_.cache.put(slot.key, slot.layers);
        s_.slot_seconds[i] += made.seconds;
        for (const auto& l : slot.layers) s_.made_at[l.blob.descriptor.digest.str()] = made.at;
      } else if (!slot.hit()) {
        auto t = Clock::now();
        slot.layers = build_slot(slot);
        s_.cache.put(slot.key, slot.layers);
        s_.slot_seconds[i] += seconds_since(t);
      }
      bool first = true;
      for (const auto& l : slot.layers) {
        if (slot.kind == SlotKind::kUvCache && !s_.plan.ships(l)) continue;
        auto at = s_.made_at.find(l.blob.descriptor.digest.str());
        s_.layers.push_back(LayerRecord{l.name, l.blob, slot.origin, first ? s_.slot_seconds[i] : 0,
                                        at != s_.made_at.end() ? at->second : seconds_since(s_.started)});
        first = false;
        push_layer_ahead(s_, l, /*made_now=*/slot.origin == "miss");
      }
    }
  }

  void list_layers() {
    for (const auto& l : s_.layers)
      s_.note("layer " + l.name + ": " + l.blob.descriptor.digest.short_hex() + " " +
              human_bytes(static_cast<std::uint64_t>(l.blob.descriptor.size)) +
              (l.origin == "hit"      ? " (cached)"
               : l.origin == "remote" ? " (from the build cache in the registry)"
                                      : " (built in " + format_seconds(l.seconds) + ")"));
  }

  BuildState s_;
  Destinations dest_;
  BuildCacheState cache_state_;
  PlanInputs inputs_;
  struct AheadBatch {
    std::set<std::size_t> slots;
    std::shared_future<void> done;  ///< waited for before s_ goes (std::async's)
  };
  std::set<std::size_t> ahead_slots_;            ///< slots make_layers_ahead makes
  std::mutex made_ahead_mu_;                     ///< guards made_ahead_
  std::map<std::size_t, MadeAhead> made_ahead_;  ///< by slot index, once made
  std::vector<AheadBatch> batches_;
  std::future<std::unique_ptr<SourceLayer>> source_hashing_;
  double source_seconds_ = 0;  ///< written by the hashing thread, read after get()
  std::atomic<bool> source_edited_{false};  ///< the hashing thread saw an edit (SourceLayer's on_edit)
};

PlatformBuild::PlatformBuild(const BuildOptions& options) : impl_(std::make_unique<Impl>(options)) {}
PlatformBuild::~PlatformBuild() = default;
std::vector<Platform> PlatformBuild::prepare() { return impl_->prepare(); }
const Destinations& PlatformBuild::destinations() const { return impl_->destinations(); }
Descriptor PlatformBuild::build(const Platform& platform) { return impl_->build(platform); }
Digest PlatformBuild::finish(const Descriptor& manifest) { return impl_->finish(manifest); }
BuildState& PlatformBuild::state() { return impl_->state(); }
double PlatformBuild::seconds() const { return seconds_since(impl_->started()); }

}  // namespace dockless
