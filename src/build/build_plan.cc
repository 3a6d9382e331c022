#include "src/build/build_plan.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "base/error.h"

namespace dockless {

namespace {

using LayerFilter = std::function<bool(const CachedLayer&)>;

PlannedEnvironment environment_of(const VenvSpec& v) {
  PlannedEnvironment e;
  e.name = v.name;
  e.image_path = v.path;
  e.extras = v.extras;
  e.groups = v.groups;
  e.all_groups = v.all_groups;
  e.no_default_groups = v.no_default_groups;
  e.install_project = v.install_project;
  return e;
}

/// A throwaway venv that only fills the cache for a [cache] extra or group.
PlannedEnvironment cache_filler(const std::string& name, const std::string& dir, std::vector<std::string> extras,
                                std::vector<std::string> groups) {
  PlannedEnvironment e;
  e.name = name;
  e.shipped = false;
  e.image_path = "/opt/.dockless-cache-fill/" + dir;
  e.extras = std::move(extras);
  e.groups = std::move(groups);
  e.no_default_groups = true;
  return e;
}

KeyInputs layer_inputs(KeyKind kind, const PlanInputs& in) {
  KeyInputs k;
  k.kind = kind;
  k.format = in.format;
  return k;
}

KeyInputs python_inputs(const BuildSpec& spec, const PlanInputs& in) {
  KeyInputs k = layer_inputs(KeyKind::kPython, in);
  k.python.uv = in.uv_sha;
  k.python.request = spec.uv.python;
  k.python.install_dir = spec.uv.python_install_dir;
  k.python.platform = in.platform;
  k.python.mirror_env = in.uv_env;
  return k;
}

/// A uv cache part an enabled environment uses (or the common part).
bool used_by_enabled(const std::vector<PlannedEnvironment>& envs, const CachedLayer& l) {
  if (l.users.empty()) return true;
  for (const auto& e : envs)
    if (e.enabled && l.users.count(e.name)) return true;
  return false;
}

std::string miss_reason(const PlanInputs& in) { return in.no_cache ? "--no-cache" : "no cache holds its key"; }

/// A slot of `kind` keyed by `key`, looked up in `cache`.
LayerSlot lookup_slot(SlotKind kind, std::string name, std::string image_path, const KeyInputs& key,
                      const PlanInputs& in, CacheState& cache, const LayerFilter& wanted = nullptr) {
  CacheKey k = cache_key(key);
  LayerSlot slot;
  slot.kind = kind;
  slot.name = std::move(name);
  slot.image_path = std::move(image_path);
  slot.key = k.hex();
  slot.key_inputs = k.explain();
  if (auto found = cache.find_layers(slot.key, slot.origin, wanted)) {
    slot.layers = std::move(*found);
    slot.reason = slot.origin == "hit" ? "in the local layer cache" : "in a --cache-from build cache";
  } else {
    slot.origin = "miss";
    slot.reason = miss_reason(in);
  }
  return slot;
}

/// The uv cache slot. Its key covers every environment it is split by:
/// all of them (skipped ones too) when that is cached, so a variant built
/// with --skip reuses the full image's parts; else the enabled ones and
/// the skipped ones already made here.
LayerSlot plan_uv_cache(std::vector<PlannedEnvironment>& envs, const BuildSpec& spec, const PlanInputs& in,
                        CacheState& cache) {
  LayerFilter enabled_part = [&envs](const CachedLayer& l) { return used_by_enabled(envs, l); };
  auto key_for = [&](const std::map<std::string, std::string>& users) {
    KeyInputs k = layer_inputs(KeyKind::kUvCache, in);
    k.cache_dir = spec.uv.cache_dir;
    k.environments = users;
    return k;
  };
  auto names_of = [](const std::map<std::string, std::string>& users) {
    std::vector<std::string> names;
    for (const auto& u : users) names.push_back(u.first);
    return names;
  };
  std::map<std::string, std::string> all, usable;
  for (const auto& e : envs) {
    all[e.name] = e.key;
    if (e.enabled || e.ready) usable[e.name] = e.key;
  }
  if (usable != all) {
    LayerSlot full = lookup_slot(SlotKind::kUvCache, "uv cache", spec.uv.cache_dir, key_for(all), in, cache,
                                 enabled_part);
    if (full.hit()) {
      full.envs = names_of(all);
      full.reason += " (keyed by every environment, skipped ones too)";
      return full;
    }
  }
  LayerSlot slot = lookup_slot(SlotKind::kUvCache, "uv cache", spec.uv.cache_dir, key_for(usable), in, cache,
                               enabled_part);
  slot.envs = names_of(usable);
  if (!slot.hit())
    for (auto& e : envs)
      if (usable.count(e.name)) e.needed = true;
  return slot;
}

const char* network_name(StepNetwork n) { return n == StepNetwork::kNone ? "none" : "host"; }

const char* mount_type_name(StepMount::Type t) {
  switch (t) {
    case StepMount::Type::kBind: return "bind";
    case StepMount::Type::kCache: return "cache";
    case StepMount::Type::kSecret: return "secret";
    case StepMount::Type::kTmpfs: return "tmpfs";
  }
  return "?";
}

/// A mount as it enters a step's key: what the step sees there, never a
/// secret's bytes or a cache's content.
std::string mount_line(const StepMount& m, const PlanInputs& in) {
  std::string line = std::string(mount_type_name(m.type)) + " " + m.target;
  switch (m.type) {
    case StepMount::Type::kBind: {
      auto d = in.bind_digests.find(m.origin);
      line += std::string(m.readonly ? " ro " : " rw ") + (d == in.bind_digests.end() ? "?" : d->second);
      break;
    }
    case StepMount::Type::kCache:
      line += " id=" + m.id + (m.locked ? " locked" : " shared");
      break;
    case StepMount::Type::kSecret:
      line += " id=" + m.id;
      break;
    case StepMount::Type::kTmpfs:
      line += m.size ? " size=" + std::to_string(*m.size) : "";
      break;
  }
  return line;
}

KeyInputs step_inputs(const StepSpec& step, const std::string& parent, const PlanInputs& in) {
  KeyInputs k = layer_inputs(KeyKind::kStep, in);
  StepKeyInputs& s = k.step;
  s.parent = parent;
  s.platform = in.platform;
  s.shell = step.shell;
  s.run = step.run;
  for (const auto& [name, value] : step.env) s.env.push_back(name + "=" + value);
  s.workdir = step.workdir;
  s.user = step.user;
  s.network = network_name(step.network);
  for (const auto& m : step.mounts) s.mounts.push_back(mount_line(m, in));
  for (const auto& [name, value] : step.args) s.args.push_back(name + "=" + value);  // a map: sorted
  return k;
}

/// The slots of the steps at `stage`, each keyed over `chain`, which then
/// becomes the last step's key.
void plan_steps(StepStage stage, std::string& chain, const BuildSpec& spec, const PlanInputs& in,
                CacheState& cache, std::vector<LayerSlot>& slots) {
  for (std::size_t i = 0; i < spec.steps.size(); ++i) {
    const StepSpec& step = spec.steps[i];
    if (step.at != stage || step.skipped) continue;
    slots.push_back(lookup_slot(SlotKind::kStep, "step " + step.name, "/", step_inputs(step, chain, in), in, cache));
    slots.back().step = static_cast<int>(i);
    chain = slots.back().key;
  }
}

/// The chain after the layers that `slots` adds on top of `chain`.
std::string chain_over(std::string chain, const std::vector<LayerSlot>& slots, std::size_t from) {
  for (std::size_t i = from; i < slots.size(); ++i) chain += "+" + slots[i].key;
  return chain;
}

/// The project installed into the venv of `e`. Editable: its files (the
/// dist-info, the .pth pointing at the source, the entry-point scripts)
/// follow from pyproject.toml and the venv, never from the source's bytes,
/// so the source tar stays out of its key and a source edit keeps it.
/// Built (install-project = true): the wheel holds the source, so it is in.
LayerSlot plan_project(PlannedEnvironment& e, const PlanInputs& in, CacheState& cache) {
  bool editable = e.install_project == VenvSpec::InstallProject::kEditable;
  KeyInputs k = layer_inputs(KeyKind::kProject, in);
  k.environment_key = e.key;
  k.project_install = editable ? "editable" : "built";
  k.project_pyproject = in.pyproject;
  if (!editable) k.source_tar = in.source_tar;
  LayerSlot slot = lookup_slot(SlotKind::kProject, "project in venv " + e.name + (editable ? " (editable)" : ""),
                               e.image_path, k, in, cache);
  slot.envs = {e.name};
  if (!slot.hit()) e.needed = true;
  return slot;
}

}  // namespace

std::string base_chain_key(const BuildSpec& spec, const PlanInputs& in) {
  std::string chain = in.base_digest;
  for (const auto& step : spec.steps)
    if (step.at == StepStage::kBase && !step.skipped) chain = cache_key(step_inputs(step, chain, in)).hex();
  return chain;
}

std::vector<PlannedEnvironment> select_environments(const BuildSpec& spec, const std::vector<std::string>& skip) {
  std::set<std::string> matched;
  auto skipped = [&](const std::string& name, const std::vector<std::string>& tags) {
    for (const auto& s : skip) {
      if (s == name || std::find(tags.begin(), tags.end(), s) != tags.end()) {
        matched.insert(s);
        return true;
      }
    }
    return false;
  };
  std::vector<PlannedEnvironment> envs;
  for (const auto& v : spec.venvs) {
    envs.push_back(environment_of(v));
    envs.back().enabled = !skipped(v.name, v.tags);
  }
  for (const auto& extra : spec.cache.extras) {
    envs.push_back(cache_filler("cache:" + extra, extra, {extra}, {}));
    envs.back().enabled = !skipped(extra, {});
  }
  for (const auto& group : spec.cache.groups) {
    envs.push_back(cache_filler("cache-group:" + group, "group-" + group, {}, {group}));
    envs.back().enabled = !skipped(group, {});
  }
  for (const auto& s : skip)
    if (!matched.count(s))
      throw UsageError("--skip " + s + " matches no venv name, venv tag or cache extra of " + spec.file.string());
  return envs;
}

void key_environments(std::vector<PlannedEnvironment>& envs, const BuildSpec& spec, const PlanInputs& in,
                      CacheState& cache) {
  for (auto& e : envs) {
    KeyInputs k;
    k.kind = KeyKind::kEnvironment;
    EnvironmentInputs& x = k.environment;
    x.base = base_chain_key(spec, in);
    x.platform = in.platform;
    x.uv = in.uv_sha;
    x.python = spec.uv.python;
    if (spec.uv.python_source == BuildSpec::Uv::PythonSource::kUvManaged) {
      // Its venvs point into the Python's files: they follow what decides
      // those files (not how the layer is compressed).
      KeyInputs p = python_inputs(spec, in);
      p.format = LayerFormat{};
      x.python = "uv-managed " + spec.uv.python + " " + cache_key(p).hex();
    }
    x.uv_lock = in.uv_lock;
    x.pyproject = in.pyproject;
    x.venv_path = e.image_path;
    x.cache_dir = spec.uv.cache_dir;
    x.link_mode = spec.uv.link_mode;
    x.compile_bytecode = spec.uv.compile_bytecode;
    x.extras = e.extras;
    x.groups = e.groups;
    x.all_groups = e.all_groups;
    x.no_default_groups = e.no_default_groups;
    x.uv_env = in.uv_env;
    x.foreign = in.foreign;
    CacheKey key = cache_key(k);
    e.key = key.hex();
    e.key_inputs = key.explain();
    // Whether its files are still whole is checked when it is used (a walk
    // of the venv: not for builds that take its layer from a cache).
    e.ready = !in.no_cache && cache.environment_made(e.key);
  }
}

std::vector<LayerSlot> plan_layers(std::vector<PlannedEnvironment>& envs, const BuildSpec& spec,
                                   const PlanInputs& in, CacheState& cache) {
  std::vector<LayerSlot> slots;
  std::string chain = in.base_digest;
  plan_steps(StepStage::kBase, chain, spec, in, cache, slots);
  std::size_t above_base = slots.size();
  // uv itself, where the image wants it.
  if (!spec.uv.uv_path.empty()) {
    KeyInputs k = layer_inputs(KeyKind::kUvBinary, in);
    k.uv = in.uv_sha;
    k.uv_path = spec.uv.uv_path;
    slots.push_back(lookup_slot(SlotKind::kUvBinary, "uv " + in.uv_short_version, spec.uv.uv_path, k, in, cache));
  }
  // A uv-managed Python, between uv and the uv cache: uv makes every venv
  // over it, and its layer changes only with uv, the request and the mirror.
  if (spec.uv.python_source == BuildSpec::Uv::PythonSource::kUvManaged)
    slots.push_back(lookup_slot(SlotKind::kPython, "python " + spec.uv.python, spec.uv.python_install_dir,
                                python_inputs(spec, in), in, cache));
  if (spec.uv.ship_cache && !envs.empty()) slots.push_back(plan_uv_cache(envs, spec, in, cache));

  // One layer per venv, workers first and the main venv last (spec order).
  for (auto& e : envs) {
    if (!e.shipped || !e.enabled) continue;
    KeyInputs k = layer_inputs(KeyKind::kVenv, in);
    k.environment_key = e.key;
    slots.push_back(lookup_slot(SlotKind::kVenv, "venv " + e.name, e.image_path, k, in, cache));
    slots.back().envs = {e.name};
    if (!slots.back().hit()) e.needed = true;
  }

  chain = chain_over(chain, slots, above_base);
  plan_steps(StepStage::kVenvs, chain, spec, in, cache, slots);

  // The source tree: keyed by its own tar's digest, so only a real change
  // of content costs compression and upload.
  KeyInputs k = layer_inputs(KeyKind::kSource, in);
  k.source_tar = in.source_tar;
  slots.push_back(lookup_slot(SlotKind::kSource, "source " + spec.source.dest, spec.source.dest, k, in, cache));
  chain += "+" + slots.back().key;
  for (auto& e : envs) {
    if (!e.shipped || !e.enabled || e.install_project == VenvSpec::InstallProject::kNo) continue;
    slots.push_back(plan_project(e, in, cache));
    chain += "+" + slots.back().key;
  }
  plan_steps(StepStage::kSource, chain, spec, in, cache, slots);
  return slots;
}

BuildPlan plan_build(const BuildSpec& spec, const std::vector<std::string>& skip, const PlanInputs& in,
                     CacheState& cache) {
  BuildPlan plan;
  plan.environments = select_environments(spec, skip);
  key_environments(plan.environments, spec, in, cache);
  plan.slots = plan_layers(plan.environments, spec, in, cache);
  return plan;
}

const LayerSlot* BuildPlan::uv_cache_slot() const {
  for (const auto& s : slots)
    if (s.kind == SlotKind::kUvCache) return &s;
  return nullptr;
}

bool BuildPlan::ships(const CachedLayer& layer) const { return used_by_enabled(environments, layer); }

const PlannedEnvironment* BuildPlan::main_environment() const {
  const PlannedEnvironment* main_env = nullptr;
  for (const auto& e : environments)
    if (e.shipped && e.enabled && e.name == "main") main_env = &e;
  return main_env;
}

std::size_t BuildPlan::environment_base_count() const {
  std::size_t n = 0;
  while (n < slots.size() && slots[n].kind == SlotKind::kStep) ++n;
  for (std::size_t i = n; i < slots.size(); ++i)
    if (slots[i].kind == SlotKind::kPython) return i + 1;
  return n;
}

std::vector<std::string> BuildPlan::skipped() const {
  std::vector<std::string> names;
  for (const auto& e : environments)
    if (!e.enabled) names.push_back(e.name);
  return names;
}

}  // namespace dockless
