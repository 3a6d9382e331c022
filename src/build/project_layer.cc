#include "src/build/project_layer.h"

#include "base/error.h"
#include "base/file_lock.h"
#include "base/file_util.h"
#include "base/process.h"
#include "layers/tree_diff.h"
#include "src/build/env_builder.h"
#include "src/build/foreign_platform_build.h"
#include "src/build/step_runner.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

/// Where the project's build cache is mounted in the sandbox (never shipped).
constexpr const char* kImageBuildCache = "/.dockless/uv-build-cache";

void copy_tree(const std::vector<std::string>& how, const fs::path& from, const fs::path& to) {
  fs::create_directories(to.parent_path());
  Command cp;
  cp.argv = {"cp", "-a"};
  cp.argv.insert(cp.argv.end(), how.begin(), how.end());
  cp.argv.insert(cp.argv.end(), {"-T", "--", from.string(), to.string()});
  cp.err = ProcessOutput::capture(4096);
  if (ProcessResult r = run_process(cp); r.status != 0)
    throw Error("cannot copy the venv " + from.string() + " to install the project: " + r.err);
}

/// The overlay lower dirs of the steps at "base" (what the environments
/// were made over): the layers made before the first non-step slot.
std::vector<fs::path> base_step_lowers(BuildState& s) {
  std::size_t n = s.plan.environment_base_count();
  std::vector<LayerRecord> all;
  all.swap(s.layers);
  s.layers.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(std::min(n, all.size())));
  std::vector<fs::path> lowers;
  try {
    lowers = lower_dirs(s);
  } catch (...) {
    s.layers.swap(all);
    throw;
  }
  s.layers.swap(all);
  return lowers;
}

/// uv records the times of pyproject.toml and the source's directories in
/// `<dist>.dist-info/uv_cache.json` (its own staleness check). Those change
/// with every checkout, not with the key's inputs: left out, the layer is
/// the same bytes on every machine. A uv inside the image that finds no such
/// file only reinstalls the project.
void drop_new_uv_cache_files(const fs::path& before, const fs::path& after) {
  std::vector<fs::path> drop;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(after, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_symlink(ec)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->path().filename() != "uv_cache.json") continue;
    fs::path rel = it->path().lexically_relative(after);
    if (!fs::exists(fs::symlink_status(before / rel))) drop.push_back(it->path());
  }
  if (ec) throw Error("cannot read " + after.string() + ": " + ec.message());
  for (const auto& p : drop) fs::remove(p);
}

}  // namespace

std::vector<CachedLayer> write_project_layer(BuildState& s, const PlannedEnvironment& env, const std::string& name) {
  bool editable = env.install_project == VenvSpec::InstallProject::kEditable;
  fs::path venv = s.env_dir(env);
  if (!path_exists(venv)) throw Error("no venv " + env.name + " to install the project into");
  // Both trees hold the venv at its image path, so the diff's paths are the
  // image's. `before` is hard links (only read), `after` a real copy that uv
  // changes: the made venv itself stays as its own layer has it.
  fs::path work = s.work_dir / "project";
  remove_tree(work);
  fs::path rel = fs::path(env.image_path).relative_path();
  copy_tree({"-l"}, venv, work / "before" / rel);
  copy_tree({"--reflink=auto"}, venv, work / "after" / rel);

  auto t = Clock::now();
  fs::path rootfs = uv_rootfs(s);
  UvRunnerConfig c = uv_runner_config(s, rootfs);
  c.lower_layers = base_step_lowers(s);
  // The project's build and its build backend go to a uv cache of their own:
  // the shipped uv cache keeps only what uv.lock pins, whatever was built.
  fs::path build_cache = s.host_uv_cache.string() + "-build";
  fs::create_directories(build_cache);
  FileLock lock(build_cache.string() + ".lock", LockMode::kExclusive);
  c.extra_binds.push_back({build_cache, kImageBuildCache, false});
  run_uv_project_install(c,
                         UvEnvironment{env.name, env.image_path, work / "after" / rel, env.extras, env.groups,
                                       env.all_groups, env.no_default_groups},
                         editable, kImageBuildCache);
  ++s.uv_runs;
  s.note("project installed into venv " + env.name + (editable ? " (editable)" : "") + " in " +
         format_seconds(seconds_since(t)));
  drop_new_uv_cache_files(work / "before" / rel, work / "after" / rel);

  TreeDiffOptions d;
  d.layer.mtime_clamp = s.clamp;
  // As every layer dockless writes from a host tree: owned by root.
  d.layer.owner_map.uid = [](std::uint32_t) { return std::optional<std::uint32_t>(0); };
  d.layer.owner_map.gid = [](std::uint32_t) { return std::optional<std::uint32_t>(0); };
  // uv may compile every .pyc again (compile-bytecode): same bytes, no entry.
  d.compare_content = true;
  LayerBlob blob =
      s.write_one([&](ByteSink& sink) { write_tree_diff_layer(work / "before", work / "after", d, sink); });
  remove_tree(work);
  return {{name, blob, {}}};
}

}  // namespace dockless
