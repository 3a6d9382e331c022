#include "src/cache/layer_keys.h"

#include <algorithm>

namespace dockless {

namespace {

const char* kind_name(KeyKind k) {
  switch (k) {
    case KeyKind::kEnvironment: return "environment";
    case KeyKind::kUvBinary: return "uv-binary";
    case KeyKind::kUvCache: return "uv-cache";
    case KeyKind::kUvCachePiece: return "uv-cache-piece";
    case KeyKind::kVenv: return "venv";
    case KeyKind::kSource: return "source";
    case KeyKind::kStep: return "step";
    case KeyKind::kProject: return "project";
    case KeyKind::kPython: return "python";
  }
  return "?";
}

/// "https://user:secret@host/simple" -> "https://host/simple" (also inside
/// space-separated lists, as UV_EXTRA_INDEX_URL allows).
std::string without_userinfo(const std::string& value) {
  std::string out;
  std::size_t pos = 0;
  while (pos < value.size()) {
    std::size_t end = value.find(' ', pos);
    if (end == std::string::npos) end = value.size();
    std::string item = value.substr(pos, end - pos);
    std::size_t scheme = item.find("://");
    if (scheme != std::string::npos) {
      std::size_t host = scheme + 3;
      std::size_t slash = item.find('/', host);
      std::size_t at = item.rfind('@', slash == std::string::npos ? item.size() : slash);
      if (at != std::string::npos && at >= host) item.erase(host, at + 1 - host);
    }
    out += (out.empty() ? "" : " ") + item;
    pos = end + 1;
  }
  return out;
}

/// Variables that choose where packages come from. The others of the
/// passthrough list (proxies, TLS, timeouts, retries, concurrency, keyring,
/// credentials) change how uv fetches, never what it installs. UV_OFFLINE
/// is one of those: `uv sync --frozen` installs uv.lock's hashed files or
/// fails, online or not (so `--offline` inside an air gap hits the caches
/// made outside).
bool decides_what_is_installed(const std::string& name) {
  static const char* const kNames[] = {"UV_DEFAULT_INDEX",   "UV_INDEX",      "UV_INDEX_URL",
                                       "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_INDEX_STRATEGY",
                                       "UV_PYTHON_INSTALL_MIRROR"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

}  // namespace

namespace {

/// The NAME=VALUE entries of `env` whose name `counts`, as they enter a
/// key: sorted, credentials removed from URLs.
template <class Pred>
std::vector<std::string> env_for_key(const std::vector<std::string>& env, Pred counts) {
  std::vector<std::string> out;
  for (const auto& kv : env) {
    std::size_t eq = kv.find('=');
    if (eq == std::string::npos || !counts(kv.substr(0, eq))) continue;
    out.push_back(kv.substr(0, eq) + "=" + without_userinfo(kv.substr(eq + 1)));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::vector<std::string> uv_env_for_key(const std::vector<std::string>& env) {
  return env_for_key(env, decides_what_is_installed);
}

std::vector<std::string> python_mirror_env_for_key(const std::vector<std::string>& env) {
  return env_for_key(env, [](const std::string& name) {
    return name == "UV_PYTHON_INSTALL_MIRROR" || name == "UV_PYPY_INSTALL_MIRROR" ||
           name == "UV_PYTHON_DOWNLOADS_JSON_URL";
  });
}

namespace {
/// What, beside its content, decides a layer's bytes.
void add_format(CacheKey& k, const LayerFormat& f) {
  k.add("mtime-clamp", std::to_string(f.mtime_clamp))
      .add("compression", std::string(compression_name(f.compression)))
      .add("compression-level", std::to_string(f.level));
  // gzip blocks of random-looking bytes are stored, not deflated
  // (layers/stored_deflate.h): layers made before that are other bytes.
  if (f.compression == Compression::kGzip) k.add("gzip-random", "stored");
}
}  // namespace

CacheKey cache_key(const KeyInputs& in) {
  CacheKey k(kind_name(in.kind));
  if (in.kind != KeyKind::kEnvironment) add_format(k, in.format);
  switch (in.kind) {
    case KeyKind::kEnvironment: {
      const EnvironmentInputs& e = in.environment;
      k.add("base", e.base)
          .add("platform", e.platform)
          .add("uv", e.uv)
          .add("python", e.python)
          .add("uv.lock", e.uv_lock)
          .add("pyproject.toml", e.pyproject)
          .add("path", e.venv_path)
          .add("cache-dir", e.cache_dir)
          .add("link-mode", e.link_mode)
          .add("compile-bytecode", e.compile_bytecode)
          .add("extras", e.extras)
          .add("groups", e.groups)
          .add("all-groups", e.all_groups)
          .add("no-default-groups", e.no_default_groups)
          .add("uv-environment", uv_env_for_key(e.uv_env));
      // Only for a foreign target, so that native keys stay as they were.
      if (!e.foreign.empty()) k.add("foreign", e.foreign);
      break;
    }
    case KeyKind::kUvBinary:
      k.add("uv", in.uv).add("path", in.uv_path);
      break;
    case KeyKind::kUvCache: {
      k.add("cache-dir", in.cache_dir);
      std::vector<std::string> envs;
      for (const auto& [name, key] : in.environments) envs.push_back(name + "=" + key);
      k.add("environments", envs);
      break;
    }
    case KeyKind::kUvCachePiece:
      k.add("cache-dir", in.cache_dir).add("part", in.part).add("piece", in.piece).add("files", in.listing);
      break;
    case KeyKind::kVenv:
      k.add("environment", in.environment_key);
      break;
    case KeyKind::kSource:  // its gzip blocks are content-defined (source_layer.h)
      k.add("tar", in.source_tar).add("gzip-blocks", "content-defined");
      break;
    case KeyKind::kProject:
      k.add("environment", in.environment_key)
          .add("install", in.project_install)
          .add("pyproject.toml", in.project_pyproject)
          .add("tar", in.source_tar);
      break;
    case KeyKind::kStep: {
      const StepKeyInputs& s = in.step;
      k.add("parent", s.parent)
          .add("platform", s.platform)
          .add("shell", s.shell)
          .add("run", s.run)
          .add("env", s.env)
          .add("workdir", s.workdir)
          .add("user", s.user)
          .add("network", s.network)
          .add("mounts", s.mounts)
          .add("args", s.args);
      break;
    }
    case KeyKind::kPython: {
      const PythonKeyInputs& p = in.python;
      k.add("uv", p.uv)
          .add("request", p.request)
          .add("install-dir", p.install_dir)
          .add("platform", p.platform)
          .add("mirrors", python_mirror_env_for_key(p.mirror_env));
      break;
    }
  }
  return k;
}

}  // namespace dockless
