// The plan of a build, made without I/O: which environments uv makes, and
// the layers dockless adds on top of the base, in image order, each with
// its cache key and whether a cache has it. Everything that needs the disk
// or the network (digests of uv.lock and uv, the base, the source tree's
// tar; what the caches hold) comes in as values or through CacheState, so
// the plan of any spec and cache state can be checked in a unit test.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "src/build/build_spec.h"
#include "src/cache/layer_cache.h"
#include "src/cache/layer_keys.h"

namespace dockless {

/// One environment uv makes: a venv of the image, or a throwaway venv that
/// only fills the cache for a [cache] extra or group.
struct PlannedEnvironment {
  std::string name;
  bool shipped = true;  ///< a venv of the image (false: cache filler)
  bool enabled = true;  ///< not removed by --skip
  std::string image_path;
  std::vector<std::string> extras, groups;
  bool all_groups = false, no_default_groups = false;
  VenvSpec::InstallProject install_project = VenvSpec::InstallProject::kNo;
  std::string key;                      ///< its kEnvironment cache key (hex)
  std::vector<std::string> key_inputs;  ///< what went into the key (--explain-cache)
  bool ready = false;   ///< a venv made under `key` is on this machine
  bool needed = false;  ///< a layer no cache has is made from its venv
};

enum class SlotKind {
  kUvBinary,  ///< uv itself, at uv.uv-path
  kUvCache,   ///< the uv cache, in parts by which environments use them
  kVenv,      ///< one shipped venv
  kSource,    ///< the source tree
  kProject,   ///< the project installed into one venv (install-project), after the source
  kStep,      ///< a build step ([[step]]): what its command changed
  kPython,    ///< a uv-managed Python (uv.python = "3.13"), at uv.python-install-dir
};

/// A place in the image and what fills it: one layer, or the uv cache's parts.
struct LayerSlot {
  SlotKind kind = SlotKind::kSource;
  std::string name;        ///< "uv 0.9.1", "uv cache", "venv main", "source /opt/app"
  std::string image_path;  ///< where its files are in the image
  /// The environments it serves: a venv's own name; the uv cache's users
  /// (the key covers them), sorted by name. Empty for uv and the source.
  std::vector<std::string> envs;
  std::string key;                      ///< cache_key() of its inputs (hex)
  std::vector<std::string> key_inputs;  ///< what went into the key (--explain-cache)
  std::string origin = "miss";          ///< "hit" (local cache), "remote" (--cache-from), "miss"
  std::string reason;                   ///< why it is a hit or must be built, for people
  std::vector<CachedLayer> layers;      ///< what a cache holds (a hit); the executor adds what it builds
  int step = -1;                        ///< kStep: its index in spec.steps
  bool hit() const { return origin != "miss"; }
};

/// The values the plan needs that are read from the disk or a registry.
struct PlanInputs {
  std::string platform;            ///< os/arch[/variant]
  std::string base_digest;         ///< manifest digest of the base image
  std::string uv_sha;              ///< SHA-256 of the uv binary ("" when no uv)
  std::string uv_short_version;    ///< "0.9.1" ("" when no uv)
  std::string uv_lock, pyproject;  ///< SHA-256 of their content, or "missing"
  std::vector<std::string> uv_env; ///< NAME=VALUE passed through to uv
  LayerFormat format;              ///< how every layer is encoded
  std::string source_tar;          ///< digest of the source tree's uncompressed tar
  bool no_cache = false;           ///< --no-cache: no environment or layer counts as made
  /// The content digest of each bind mount of the steps, by StepMount::origin.
  std::map<std::string, std::string> bind_digests;
  /// How a foreign target's venvs are made (foreign_platform_build.h); "" natively.
  std::string foreign;
};

/// What the caches hold. The executor implements it over the local layer
/// cache and the --cache-from registries; tests over a map.
class CacheState {
 public:
  virtual ~CacheState() = default;
  /// Whether the venv of the environment keyed `env_key` is made on this machine.
  virtual bool environment_made(const std::string& env_key) = 0;
  /// The layers cached under `key`, and `origin` "hit" (local) or "remote".
  /// Only the layers `wanted` keeps need to be brought here.
  virtual std::optional<std::vector<CachedLayer>> find_layers(
      const std::string& key, std::string& origin, const std::function<bool(const CachedLayer&)>& wanted) = 0;
};

struct BuildPlan {
  std::vector<PlannedEnvironment> environments;  ///< spec order, then cache fillers
  std::vector<LayerSlot> slots;                  ///< image order, after the base's layers

  /// The uv cache slot, or null when the image ships no uv cache.
  const LayerSlot* uv_cache_slot() const;
  /// Whether a layer of a slot goes into the image: a uv cache part some
  /// enabled environment uses (or the common part); every other layer.
  bool ships(const CachedLayer& layer) const;
  /// The shipped, enabled venv named "main", or null.
  const PlannedEnvironment* main_environment() const;
  /// How many slots uv runs over, one layer each, made before any venv: the
  /// steps at "base" and, with a uv-managed Python, uv and that Python.
  std::size_t environment_base_count() const;
  /// The names of the environments --skip removed, in plan order.
  std::vector<std::string> skipped() const;
};

/// The environments of `spec` (venvs in spec order, then a cache filler per
/// [cache] extra and group), with --skip applied. Throws UsageError for a
/// --skip that matches no venv name, venv tag or cache extra.
std::vector<PlannedEnvironment> select_environments(const BuildSpec& spec, const std::vector<std::string>& skip);

/// Sets each environment's key and whether it is made already.
void key_environments(std::vector<PlannedEnvironment>& envs, const BuildSpec& spec, const PlanInputs& in,
                      CacheState& cache);

/// The layer slots in image order: the steps at "base", uv, a uv-managed
/// Python, the uv cache,
/// each shipped enabled venv (spec order, so "main" is last), the steps at
/// "venvs", the source, the project in each venv that installs it (spec
/// order), the steps at "source". A step's key chains the key
/// of everything below it, so an edit of step 2 keeps step 1 and remakes
/// the steps after it; a venv or source edit never remakes a base step. Looks each key up in
/// `cache` and marks the environments a missing layer is made from.
std::vector<LayerSlot> plan_layers(std::vector<PlannedEnvironment>& envs, const BuildSpec& spec,
                                   const PlanInputs& in, CacheState& cache);

/// What the environments are made over: the base's digest, or, when the
/// spec has steps at "base", the key of the last of them (the chain).
std::string base_chain_key(const BuildSpec& spec, const PlanInputs& in);

/// All three steps.
BuildPlan plan_build(const BuildSpec& spec, const std::vector<std::string>& skip, const PlanInputs& in,
                     CacheState& cache);

}  // namespace dockless
