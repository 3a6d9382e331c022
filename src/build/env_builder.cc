#include "src/build/env_builder.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <optional>

#include "base/error.h"
#include "base/file_lock.h"
#include "base/file_util.h"
#include "base/parallel.h"
#include "layers/unpacker.h"
#include "src/build/uv_cache_partition.h"
#include "src/build/foreign_platform_build.h"
#include "src/build/step_runner.h"
#include "src/build/uv_runner.h"
#include "src/build/wheelhouse_source.h"
#include "src/cache/last_used.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

/// A persisted venv still matches the host cache (symlink mode: its
/// packages' archives are there; someone may have cleared the cache).
bool env_dir_intact(const BuildState& s, const PlannedEnvironment& e) {
  fs::path dir = s.env_dir(e);
  const std::string& image_cache = s.spec().uv.cache_dir;
  if (s.spec().uv.link_mode != "symlink") return path_exists(dir);
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename() != "METADATA" || !it->is_symlink(ec)) continue;
    std::string target = fs::read_symlink(it->path(), ec).string();
    if (target.rfind(image_cache + "/", 0) != 0) continue;
    fs::path host = s.host_uv_cache / target.substr(image_cache.size() + 1);
    if (!path_exists(host)) return false;
  }
  return !ec;
}

/// Fills an absent host uv cache from a --cache-from's uv cache layers, so
/// uv downloads only what changed since that build.
void seed_uv_cache(BuildState& s) {
  if (path_exists(s.host_uv_cache)) return;
  for (const BuildCache::RemoteEntry& r : s.cache.remote_slot("uv cache", s.cache_meta())) {
    auto t = Clock::now();
    fs::path staging = temp_path_beside(s.host_uv_cache);
    try {
      s.cache.download(*r.cache, r.entry->layers);
      fs::create_directories(staging);
      for (const auto& l : r.entry->layers) unpack_layer(s.store.path_of(l.blob.descriptor.digest), staging);
      fs::path unpacked = staging / fs::path(s.spec().uv.cache_dir).relative_path();
      fs::create_directories(s.host_uv_cache.parent_path());
      if (::rename(unpacked.c_str(), s.host_uv_cache.c_str()) != 0)
        throw_errno("cannot rename to " + s.host_uv_cache.string());
      remove_tree(staging);
      s.note("uv cache seeded from " + r.cache->ref.str() + " in " + format_seconds(seconds_since(t)));
      return;
    } catch (const Error& err) {
      remove_tree(staging);
      s.warn(std::string("uv cache not seeded from ") + r.cache->ref.str() + ": " + err.what());
    }
  }
}

/// The passthrough variables, with UV_OFFLINE=1 under --offline. Not in
/// s.passthrough, which the cache keys read: offline is a route, not an input.
/// With a --wheels-from server uv must reach loopback: every URL of its
/// uv.lock then goes there (wheelhouse_source.cc), and UV_OFFLINE stays unset.
std::vector<std::string> offline_env(const BuildState& s) {
  bool offline = s.opt.offline && !s.wheelhouse_server;
  std::vector<std::string> env;
  for (const auto& v : s.passthrough)
    if (!s.opt.offline || v.rfind("UV_OFFLINE=", 0) != 0) env.push_back(v);
  if (offline) env.push_back("UV_OFFLINE=1");
  return env;
}

}  // namespace

UvRunnerConfig uv_runner_config(BuildState& s, const fs::path& rootfs) {
  UvRunnerConfig c;
  c.isolation = s.opt.isolation;
  c.force_host = s.opt.force_host;
  c.rootfs = rootfs;
  c.scratch = s.work_dir / "sandbox";
  c.uv_binary = s.uv.binary;
  c.host_cache = s.host_uv_cache;
  c.image_cache_dir = s.spec().uv.cache_dir;
  c.project_tree = s.source.project_root;
  c.image_project_dir = s.spec().source.dest;
  c.python = s.spec().uv.python;
  if (s.spec().uv.python_source == BuildSpec::Uv::PythonSource::kUvManaged)
    c.python_install_dir = s.spec().uv.python_install_dir;
  c.link_mode = s.spec().uv.link_mode;
  c.compile_bytecode = s.spec().uv.compile_bytecode;
  c.source_date_epoch = s.clamp;
  c.passthrough_env = offline_env(s);
  c.extra_binds = s.extra_binds;
  c.mirrored_lock = s.mirrored_lock;
  c.on_output = [&s](std::string_view line) { s.note(std::string(line)); };
  apply_foreign(s, c);
  return c;
}

namespace {

/// A name safe as one path component ("app.workers.VllmWorker" stays).
std::string scratch_name(const std::string& name) {
  std::string out;
  for (char ch : name) out += (std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-') ? ch : '_';
  return out;
}

/// One environment being made: uv writes into `tmp`, renamed into place
/// when every environment of the build is made.
struct EnvironmentJob {
  PlannedEnvironment* env = nullptr;
  fs::path tmp;
  UvRunnerConfig config;  ///< with a scratch dir of its own
};

/// The uv runs of independent environments at the same time, at most
/// `jobs` at once: uv's cache takes its own locks, and each run has its own
/// sandbox, scratch dir and venv dir. Their output lines carry the
/// environment's name.
void run_environments(BuildState& s, std::vector<EnvironmentJob>& jobs, int parallel) {
  std::mutex mu;
  std::vector<std::size_t> order(jobs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  parallel_for_each(order, parallel, [&](std::size_t i) {
    EnvironmentJob& j = jobs[i];
    double start = seconds_since(s.started);
    auto t = Clock::now();
    run_uv_environment(j.config, UvEnvironment{j.env->name, j.env->image_path, j.tmp, j.env->extras, j.env->groups,
                                               j.env->all_groups, j.env->no_default_groups});
    std::lock_guard<std::mutex> lock(mu);
    ++s.uv_runs;
    s.environment_runs.push_back({j.env->name, start, seconds_since(s.started)});
    s.note("environment " + j.env->name + " made in " + format_seconds(seconds_since(t)));
  });
}

/// How many uv runs at once: --jobs, at most one per environment. One in
/// chroot mode, whose "bind" of the shared uv cache is a move into the run's
/// root (a second run would find it gone).
int environment_jobs(const BuildState& s, std::size_t environments) {
  if (s.opt.isolation != Isolation::kUserns || s.opt.force_host) return 1;
  int jobs = std::max(s.opt.transfer.jobs, 1);
  return static_cast<int>(std::min<std::size_t>(environments, static_cast<std::size_t>(jobs)));
}

}  // namespace

void make_environments(BuildState& s) {
  std::vector<PlannedEnvironment*> todo;
  for (auto& e : s.plan.environments) {
    if (e.needed && e.ready && !env_dir_intact(s, e)) e.ready = false;
    if (e.needed && !e.ready) todo.push_back(&e);
  }
  if (todo.empty()) return;
  auto t = Clock::now();
  fs::path rootfs = uv_rootfs(s);
  s.note("root filesystem of the base ready in " + format_seconds(seconds_since(t)));
  fs::create_directories(s.cache_dir / "envs");
  // One build at a time changes this uv cache (uv runs, archive renames).
  fs::create_directories(s.host_uv_cache.parent_path());
  fs::path lock_path = s.host_uv_cache.string() + ".lock";
  FileLock lock(lock_path, LockMode::kExclusive);
  // A concurrent build may have made some while we waited: never redo (and
  // remove) a venv that build is reading.
  // (--no-cache remakes every venv whatever is on disk.)
  if (!s.opt.no_cache)
    std::erase_if(todo, [&](PlannedEnvironment* e) {
      return e->ready = path_exists(s.cache_dir / "envs" / (e->key + ".complete")) && env_dir_intact(s, *e);
    });
  if (todo.empty()) return;
  seed_uv_cache(s);
  fs::create_directories(s.host_uv_cache);
  use_wheelhouses(s);  // --wheels-from: uv.lock's files from a registry

  UvRunnerConfig c = uv_runner_config(s, rootfs);
  // Only the layers below the environments are made yet: uv runs over them.
  c.lower_layers = lower_dirs(s);
  std::vector<EnvironmentJob> jobs;
  for (PlannedEnvironment* e : todo) {
    EnvironmentJob j{e, temp_path_beside(s.env_dir(*e)), c};
    j.config.scratch = c.scratch / scratch_name(e->name);
    fs::create_directories(j.tmp);
    jobs.push_back(std::move(j));
  }
  try {
    run_environments(s, jobs, environment_jobs(s, jobs.size()));
    // Content-derived archive names (clean builds give identical layers),
    // once every uv run is over: a rename under a running uv would break it.
    // The venvs keep their links (through aliases); their layers map them.
    canonicalize_archive_ids(s.host_uv_cache);
    for (auto& j : jobs) {
      fs::path dir = s.env_dir(*j.env);
      // The marker goes first: a kill during remove_tree leaves no half venv marked complete.
      ::unlink((s.cache_dir / "envs" / (j.env->key + ".complete")).c_str());
      remove_tree(dir);
      if (::rename(j.tmp.c_str(), dir.c_str()) != 0) throw_errno("cannot rename to " + dir.string());
      write_file_atomic(s.cache_dir / "envs" / (j.env->key + ".complete"), "complete\n");
      j.env->ready = true;
    }
  } catch (...) {
    for (const auto& j : jobs) remove_tree(j.tmp);
    throw;
  }
}

double check_uv_lock(BuildState& s) {
  auto t = Clock::now();
  // A foreign target's lock is checked where its venvs are made (the twin).
  if (s.rootfs.empty() && !s.foreign.active) s.rootfs = base_rootfs(s.base, s.cache_dir, s.transfer, s.store);
  fs::path root = s.foreign.active ? uv_rootfs(s) : s.rootfs;
  UvRunnerConfig c = uv_runner_config(s, root);
  // A uv-managed Python is made by then, with the base steps: over them.
  c.lower_layers = lower_dirs(s);
  // The persistent uv cache when there is one (uv may read metadata from
  // it); else an empty one for this check, so that a --cache-from can still
  // seed the persistent cache later in this build.
  std::optional<FileLock> lock;
  if (path_exists(s.host_uv_cache)) {
    lock.emplace(s.host_uv_cache.string() + ".lock", LockMode::kExclusive);
  } else {
    c.host_cache = s.work_dir / "lock-check-cache";
    fs::create_directories(c.host_cache);
  }
  check_lock(c);
  return seconds_since(t);
}

std::vector<CachedLayer> write_python_layer(BuildState& s, const std::string& name) {
  auto t = Clock::now();
  if (s.rootfs.empty()) s.rootfs = base_rootfs(s.base, s.cache_dir, s.transfer, s.store);
  UvRunnerConfig c = uv_runner_config(s, s.rootfs);
  c.lower_layers = lower_dirs(s);  // the steps at "base" (uv needs no uv layer: it is bound)
  // uv python install needs no package cache: a scratch one keeps the
  // shared uv cache (and its lock) out of it.
  fs::path work = s.work_dir / "python";
  remove_tree(work);
  c.host_cache = work / "uv-cache";
  fs::path dir = work / "install";
  fs::create_directories(c.host_cache);
  fs::create_directories(dir);
  run_uv_python_install(c, dir);
  ++s.uv_runs;
  s.note("python " + s.spec().uv.python + " installed by uv in " + format_seconds(seconds_since(t)));
  TarOptions tar = s.layer_tar();
  tar.dest = s.spec().uv.python_install_dir;
  LayerBlob blob = s.write_one([&](ByteSink& sink) { write_directory_tar(dir, tar, sink); });
  remove_tree(work);
  return {{name, blob, {}}};
}

std::vector<CachedLayer> write_venv_layer(BuildState& s, const PlannedEnvironment& env, const std::string& name) {
  TarOptions t = s.layer_tar();
  t.dest = env.image_path;
  t.map_symlink = archive_link_mapper(s.host_uv_cache, s.spec().uv.cache_dir);
  fs::path dir = s.env_dir(env);
  return {{name, s.write_one([&](ByteSink& sink) { write_directory_tar(dir, t, sink); }), {}}};
}

}  // namespace dockless
