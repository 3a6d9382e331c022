// What a build-cache key covers: the one function that turns the inputs of
// an environment or a layer into its key. Everything that decides a layer's
// bytes goes in; nothing else does, so a key means the same on every
// machine and a registry-shared cache (--cache-from) can match it.
//
// Not in any key, on purpose: host paths (cache dir, project dir), time of
// day, credentials, proxies, TLS settings, timeouts and concurrency (uv
// installs exactly what uv.lock pins, with its hashes, whatever the route).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "layers/compression.h"
#include "src/cache/cache_key.h"

namespace dockless {

/// How every layer dockless writes is encoded.
struct LayerFormat {
  std::int64_t mtime_clamp = 0;  ///< SOURCE_DATE_EPOCH (or the default)
  Compression compression = Compression::kGzip;
  int level = 0;
};

/// Everything that decides a venv's files (what `uv venv` + `uv sync` make).
struct EnvironmentInputs {
  std::string base;      ///< manifest digest of the base image
  std::string platform;  ///< os/arch[/variant]
  std::string uv;        ///< SHA-256 of the uv binary
  std::string python;    ///< interpreter in the image
  std::string uv_lock;    ///< SHA-256 of uv.lock's content ("missing")
  std::string pyproject;  ///< SHA-256 of pyproject.toml's content ("missing")
  std::string venv_path, cache_dir, link_mode;  ///< where, in the image
  bool compile_bytecode = false;
  std::vector<std::string> extras, groups;
  bool all_groups = false, no_default_groups = false;
  /// NAME=VALUE given to uv (the passthrough list). Only index choices count,
  /// with any user:password@ removed; see layer_keys.cc.
  std::vector<std::string> uv_env;
  /// A foreign target: how its venvs are made (the host-platform twin's
  /// digest, --python-platform, the uv that runs; or emulated); "" natively.
  std::string foreign;
};

/// Everything that decides a build step's layer ([[step]]): what it runs
/// over (the parent chain) and what it runs. Cache mounts and secrets' bytes
/// are left out on purpose, as BuildKit does: a cache mount is a speed-up
/// whose content never reaches the layer, and a secret must not be
/// recoverable from a key.
struct StepKeyInputs {
  std::string parent;  ///< the key of what the step runs over: the base and the steps before it
  std::string platform;
  std::vector<std::string> shell;
  std::string run;
  std::vector<std::string> env;  ///< NAME=VALUE, in the spec's order
  std::string workdir, user, network;
  /// One line per mount: its type, target and options, and for a bind the
  /// digest of its content.
  std::vector<std::string> mounts;
  std::vector<std::string> args;  ///< NAME=VALUE of the build args the step uses, sorted
};

enum class KeyKind {
  kEnvironment,  ///< a venv directory on the host (not a layer: no format)
  kUvBinary,     ///< the layer with uv at uv_path
  kUvCache,      ///< the uv cache layers, split by which environments use what
  kUvCachePiece, ///< one of those layers, by its files (reused across kUvCache keys)
  kVenv,         ///< one venv's layer
  kSource,       ///< the source tree's layer
  kStep,         ///< a build step's layer
  kProject,      ///< the project installed into one venv (install-project)
  kPython,       ///< a uv-managed Python (`uv python install`) in its install dir
};

/// Everything that decides a uv-managed Python's layer: which uv asks for
/// which version where, and where uv downloads it from. The base is left
/// out on purpose: python-build-standalone builds carry their own libraries,
/// so the same layer serves every base of the platform.
struct PythonKeyInputs {
  std::string uv;           ///< SHA-256 of the uv binary (its built-in list of downloads)
  std::string request;      ///< "3.13", "3.13.2", "cpython-3.13"
  std::string install_dir;  ///< UV_PYTHON_INSTALL_DIR in the image
  std::string platform;
  /// UV_PYTHON_INSTALL_MIRROR, UV_PYTHON_DOWNLOADS_JSON_URL... as NAME=VALUE
  /// (from the passthrough list; credentials removed).
  std::vector<std::string> mirror_env;
};

struct KeyInputs {
  KeyKind kind = KeyKind::kSource;
  LayerFormat format;              ///< every kind but kEnvironment
  EnvironmentInputs environment;   ///< kEnvironment
  std::string uv, uv_path;         ///< kUvBinary: SHA-256 of uv, its path in the image
  std::string cache_dir;           ///< kUvCache, kUvCachePiece: uv cache dir in the image
  /// kUvCache: name -> environment key of every environment the cache is
  /// split by (skipped ones included when known: variants share the parts).
  std::map<std::string, std::string> environments;
  /// kUvCachePiece: the part's name (its users), which piece ("archives" or
  /// "index"), and the digest of its file list (and pointer files' contents).
  std::string part, piece, listing;
  std::string environment_key;     ///< kVenv, kProject: the environment key
  std::string source_tar;          ///< kSource, kProject: digest of the uncompressed tar
  /// kProject: "editable" or "built", and the digest of pyproject.toml (the
  /// project's name, version, entry points and build system). An editable
  /// install's files never hold the source's bytes, so its source_tar is ""
  /// (the plan leaves it out): a source edit keeps its layer.
  std::string project_install, project_pyproject;
  StepKeyInputs step;              ///< kStep
  PythonKeyInputs python;          ///< kPython
};

/// The key (and its readable inputs, for --explain-cache) of `in`.
CacheKey cache_key(const KeyInputs& in);

/// The uv environment as it enters a key: sorted, only variables that can
/// change what uv installs, credentials removed from URLs.
std::vector<std::string> uv_env_for_key(const std::vector<std::string>& env);

/// The variables of `env` that choose where `uv python install` downloads
/// from, as they enter a key (sorted, credentials removed).
std::vector<std::string> python_mirror_env_for_key(const std::vector<std::string>& env);

}  // namespace dockless
