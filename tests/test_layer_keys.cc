// Tests for src/layer_keys: changing each input a key covers changes the key,
// and nothing else does (host paths, credentials, proxies, TLS, timeouts,
// concurrency, the order of the uv environment, the fields of other kinds).
#include "src/cache/layer_keys.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace {

using dockless::cache_key;
using dockless::Compression;
using dockless::KeyInputs;
using dockless::KeyKind;
using dockless::uv_env_for_key;

const std::vector<KeyKind> kAllKinds = {KeyKind::kEnvironment, KeyKind::kUvBinary, KeyKind::kUvCache,
                                        KeyKind::kUvCachePiece, KeyKind::kVenv, KeyKind::kSource,
                                        KeyKind::kStep, KeyKind::kProject, KeyKind::kPython};
const std::set<KeyKind> kLayerKinds = {KeyKind::kUvBinary, KeyKind::kUvCache, KeyKind::kUvCachePiece,
                                       KeyKind::kVenv, KeyKind::kSource, KeyKind::kStep,
                                       KeyKind::kProject, KeyKind::kPython};

const char* kind_label(KeyKind k) {
  switch (k) {
    case KeyKind::kEnvironment: return "kEnvironment";
    case KeyKind::kUvBinary: return "kUvBinary";
    case KeyKind::kUvCache: return "kUvCache";
    case KeyKind::kUvCachePiece: return "kUvCachePiece";
    case KeyKind::kVenv: return "kVenv";
    case KeyKind::kSource: return "kSource";
    case KeyKind::kStep: return "kStep";
    case KeyKind::kProject: return "kProject";
    case KeyKind::kPython: return "kPython";
  }
  return "?";
}

// Realistic SHA-256 values (hex of sha256("base"), "uv", "uv.lock", ...).
const std::string kBaseDigest = "sha256:4ec60b0e47a7e1c9bdf3bcd5e28a0b13dd2ba9ec1d33b02b3de6eb3bbc4b5a4f";
const std::string kUvSha = "5d1a6c0e0bb9f7a39c5e5a1d74d7e1b3cc8e1b76f53c1f1e3f2fdf6f0f2a8e11";
const std::string kUvLockSha = "sha256:0f7c3dfb1b1f5d5c2b07b7a8c5b2e5ec1f1b0a3e9f7c26b3a1e7e54d2b3c4d5e";
const std::string kPyprojectSha = "sha256:9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kEnvKeyA = "3b8f1e0c2a4d6f8e0b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a";
const std::string kEnvKeyB = "c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4";
const std::string kListing = "sha256:8d969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92";
const std::string kSourceTar = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Every field of KeyInputs filled in, whatever `kind` uses, so that a
/// mutation of a field the kind ignores is a real change of a real value.
KeyInputs baseline(KeyKind kind) {
  KeyInputs in;
  in.kind = kind;
  in.format.mtime_clamp = 1700000000;
  in.format.compression = Compression::kGzip;
  in.format.level = 0;
  auto& e = in.environment;
  e.base = kBaseDigest;
  e.platform = "linux/amd64";
  e.uv = kUvSha;
  e.python = "/usr/bin/python3.12";
  e.uv_lock = kUvLockSha;
  e.pyproject = kPyprojectSha;
  e.venv_path = "/opt/venvs/vllm";
  e.cache_dir = "/root/.cache/uv";
  e.link_mode = "symlink";
  e.compile_bytecode = false;
  e.extras = {"vllm", "flashinfer"};
  e.groups = {"serve"};
  e.all_groups = false;
  e.no_default_groups = false;
  e.uv_env = {"UV_INDEX_URL=https://mirror.example/simple",
              "UV_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu124",
              "UV_HTTP_TIMEOUT=60",
              "UV_CONCURRENT_DOWNLOADS=8",
              "HTTPS_PROXY=http://proxy.corp:3128",
              "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
              "UV_NATIVE_TLS=1",
              "UV_INDEX_FOO_PASSWORD=hunter2"};
  in.uv = kUvSha;
  in.uv_path = "/usr/local/bin/uv";
  in.cache_dir = "/root/.cache/uv";
  in.environments = {{"vllm", kEnvKeyA}, {"cache:flashinfer", kEnvKeyB}};
  in.part = "vllm+cache:flashinfer";
  in.piece = "archives";
  in.listing = kListing;
  in.environment_key = kEnvKeyA;
  in.source_tar = kSourceTar;
  in.project_install = "editable";
  in.project_pyproject = kPyprojectSha;
  auto& s = in.step;
  s.parent = kEnvKeyA;
  s.platform = "linux/amd64";
  s.shell = {"bash", "-eu", "-o", "pipefail", "-c"};
  s.run = "apt-get update\napt-get install -y jq\n";
  s.env = {"DEBIAN_FRONTEND=noninteractive", "TZ=UTC"};
  s.workdir = "/";
  s.user = "";
  s.network = "host";
  s.mounts = {"cache /var/cache/apt id=apt locked", "bind /tmp/x.sh ro sha256:" + std::string(64, 'a')};
  s.args = {"CUSTOM_SETUP_FNAME=install_tools.sh"};
  auto& p = in.python;
  p.uv = kUvSha;
  p.request = "3.13";
  p.install_dir = "/opt/python";
  p.platform = "linux/amd64";
  p.mirror_env = {"UV_PYTHON_INSTALL_MIRROR=https://user:secret@mirror.corp/pbs", "UV_HTTP_TIMEOUT=60",
                  "HTTPS_PROXY=http://proxy.corp:3128"};
  return in;
}

std::string key_of(const KeyInputs& in) { return cache_key(in).hex(); }

/// Replaces the uv_env entry whose name is `name` (or appends it).
void set_env(KeyInputs& in, const std::string& name, const std::string& value) {
  auto& env = in.environment.uv_env;
  for (auto& kv : env) {
    if (kv.rfind(name + "=", 0) == 0) {
      kv = name + "=" + value;
      return;
    }
  }
  env.push_back(name + "=" + value);
}

void drop_env(KeyInputs& in, const std::string& name) {
  auto& env = in.environment.uv_env;
  env.erase(std::remove_if(env.begin(), env.end(),
                           [&](const std::string& kv) { return kv.rfind(name + "=", 0) == 0; }),
            env.end());
}

/// One change to a baseline, and the kinds whose key it must change. For every
/// other kind the key must stay the same.
struct Mutation {
  std::string what;
  std::function<void(KeyInputs&)> apply;
  std::set<KeyKind> changes;
};

const std::set<KeyKind> kEnvOnly = {KeyKind::kEnvironment};
const std::set<KeyKind> kNone = {};

std::vector<Mutation> mutations() {
  std::vector<Mutation> m = {
      // The layer format: every layer kind, never kEnvironment (a host venv
      // directory is not encoded).
      {"format.mtime_clamp + 1", [](KeyInputs& in) { in.format.mtime_clamp += 1; }, kLayerKinds},
      {"format.mtime_clamp = 0", [](KeyInputs& in) { in.format.mtime_clamp = 0; }, kLayerKinds},
      {"format.compression gzip -> zstd",
       [](KeyInputs& in) { in.format.compression = Compression::kZstd; }, kLayerKinds},
      {"format.compression gzip -> none",
       [](KeyInputs& in) { in.format.compression = Compression::kNone; }, kLayerKinds},
      {"format.level 0 -> 3", [](KeyInputs& in) { in.format.level = 3; }, kLayerKinds},

      // EnvironmentInputs: kEnvironment only.
      {"environment.base",
       [](KeyInputs& in) {
         in.environment.base = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
       },
       kEnvOnly},
      {"environment.platform linux/amd64 -> linux/arm64",
       [](KeyInputs& in) { in.environment.platform = "linux/arm64"; }, kEnvOnly},
      {"environment.platform gains a variant",
       [](KeyInputs& in) { in.environment.platform = "linux/amd64/v3"; }, kEnvOnly},
      {"environment.uv",
       [](KeyInputs& in) {
         in.environment.uv = "2222222222222222222222222222222222222222222222222222222222222222";
       },
       kEnvOnly},
      {"environment.python", [](KeyInputs& in) { in.environment.python = "/usr/bin/python3.11"; },
       kEnvOnly},
      {"environment.uv_lock",
       [](KeyInputs& in) {
         in.environment.uv_lock = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
       },
       kEnvOnly},
      {"environment.uv_lock -> missing", [](KeyInputs& in) { in.environment.uv_lock = "missing"; },
       kEnvOnly},
      {"environment.pyproject",
       [](KeyInputs& in) {
         in.environment.pyproject = "sha256:4444444444444444444444444444444444444444444444444444444444444444";
       },
       kEnvOnly},
      {"environment.pyproject -> missing", [](KeyInputs& in) { in.environment.pyproject = "missing"; },
       kEnvOnly},
      {"environment.venv_path", [](KeyInputs& in) { in.environment.venv_path = "/opt/venvs/sglang"; },
       kEnvOnly},
      {"environment.cache_dir", [](KeyInputs& in) { in.environment.cache_dir = "/var/cache/uv"; },
       kEnvOnly},
      {"environment.link_mode symlink -> copy", [](KeyInputs& in) { in.environment.link_mode = "copy"; },
       kEnvOnly},
      {"environment.compile_bytecode flipped",
       [](KeyInputs& in) { in.environment.compile_bytecode = !in.environment.compile_bytecode; }, kEnvOnly},
      {"environment.extras: one added",
       [](KeyInputs& in) { in.environment.extras.push_back("cuda"); }, kEnvOnly},
      {"environment.extras: one removed",
       [](KeyInputs& in) { in.environment.extras.pop_back(); }, kEnvOnly},
      {"environment.extras: emptied", [](KeyInputs& in) { in.environment.extras.clear(); }, kEnvOnly},
      // The key takes the extras as given, in order (no sort), the order in
      // which they reach `uv sync --extra ...`. A reorder is therefore a cache
      // miss: harmless (a rebuild, never a wrong hit). Keying them as a set
      // would be a deliberate change to cache_key(), and this row with it.
      {"environment.extras: reordered",
       [](KeyInputs& in) { std::reverse(in.environment.extras.begin(), in.environment.extras.end()); },
       kEnvOnly},
      // An extra moved to the groups: same strings, different meaning.
      {"environment.extras[0] moved to groups",
       [](KeyInputs& in) {
         in.environment.groups.push_back(in.environment.extras.front());
         in.environment.extras.erase(in.environment.extras.begin());
       },
       kEnvOnly},
      {"environment.groups: one added", [](KeyInputs& in) { in.environment.groups.push_back("dev"); },
       kEnvOnly},
      {"environment.groups: changed", [](KeyInputs& in) { in.environment.groups = {"dev"}; }, kEnvOnly},
      {"environment.groups: emptied", [](KeyInputs& in) { in.environment.groups.clear(); }, kEnvOnly},
      {"environment.all_groups flipped",
       [](KeyInputs& in) { in.environment.all_groups = !in.environment.all_groups; }, kEnvOnly},
      {"environment.no_default_groups flipped",
       [](KeyInputs& in) { in.environment.no_default_groups = !in.environment.no_default_groups; },
       kEnvOnly},

      // uv_env: the index choices count...
      {"uv_env: UV_INDEX_URL on another host",
       [](KeyInputs& in) { set_env(in, "UV_INDEX_URL", "https://other-mirror.example/simple"); }, kEnvOnly},
      {"uv_env: UV_INDEX_URL on another path",
       [](KeyInputs& in) { set_env(in, "UV_INDEX_URL", "https://mirror.example/pypi/simple"); }, kEnvOnly},
      {"uv_env: UV_INDEX_URL removed", [](KeyInputs& in) { drop_env(in, "UV_INDEX_URL"); }, kEnvOnly},
      {"uv_env: UV_EXTRA_INDEX_URL changed",
       [](KeyInputs& in) { set_env(in, "UV_EXTRA_INDEX_URL", "https://download.pytorch.org/whl/cu128"); },
       kEnvOnly},
      {"uv_env: UV_EXTRA_INDEX_URL gains a second index",
       [](KeyInputs& in) {
         set_env(in, "UV_EXTRA_INDEX_URL",
                 "https://download.pytorch.org/whl/cu124 https://wheels.example/simple");
       },
       kEnvOnly},
      {"uv_env: UV_DEFAULT_INDEX added",
       [](KeyInputs& in) { set_env(in, "UV_DEFAULT_INDEX", "https://pypi.example/simple"); }, kEnvOnly},
      {"uv_env: UV_INDEX added",
       [](KeyInputs& in) { set_env(in, "UV_INDEX", "internal=https://pkgs.example/simple"); }, kEnvOnly},
      {"uv_env: UV_FIND_LINKS added", [](KeyInputs& in) { set_env(in, "UV_FIND_LINKS", "/wheels"); },
       kEnvOnly},
      {"uv_env: UV_INDEX_STRATEGY added",
       [](KeyInputs& in) { set_env(in, "UV_INDEX_STRATEGY", "unsafe-best-match"); }, kEnvOnly},
      {"uv_env: UV_PYTHON_INSTALL_MIRROR added",
       [](KeyInputs& in) { set_env(in, "UV_PYTHON_INSTALL_MIRROR", "https://python.example/releases"); },
       kEnvOnly},

      // ... and nothing else of it does, for any kind.
      {"uv_env: reversed", [](KeyInputs& in) {
         std::reverse(in.environment.uv_env.begin(), in.environment.uv_env.end());
       }, kNone},
      {"uv_env: rotated", [](KeyInputs& in) {
         auto& env = in.environment.uv_env;
         std::rotate(env.begin(), env.begin() + 3, env.end());
       }, kNone},
      {"uv_env: UV_HTTP_TIMEOUT changed", [](KeyInputs& in) { set_env(in, "UV_HTTP_TIMEOUT", "600"); },
       kNone},
      {"uv_env: UV_HTTP_TIMEOUT removed", [](KeyInputs& in) { drop_env(in, "UV_HTTP_TIMEOUT"); }, kNone},
      // A route: uv installs the same hashed files or fails (--offline in an air gap).
      {"uv_env: UV_OFFLINE added", [](KeyInputs& in) { set_env(in, "UV_OFFLINE", "1"); }, kNone},
      {"uv_env: UV_CONCURRENT_DOWNLOADS changed",
       [](KeyInputs& in) { set_env(in, "UV_CONCURRENT_DOWNLOADS", "1"); }, kNone},
      {"uv_env: HTTPS_PROXY changed",
       [](KeyInputs& in) { set_env(in, "HTTPS_PROXY", "http://user:pw@other-proxy:8080"); }, kNone},
      {"uv_env: HTTPS_PROXY removed", [](KeyInputs& in) { drop_env(in, "HTTPS_PROXY"); }, kNone},
      {"uv_env: SSL_CERT_FILE changed",
       [](KeyInputs& in) { set_env(in, "SSL_CERT_FILE", "/usr/local/share/ca-certificates/corp.crt"); },
       kNone},
      {"uv_env: UV_NATIVE_TLS changed", [](KeyInputs& in) { set_env(in, "UV_NATIVE_TLS", "0"); }, kNone},
      {"uv_env: UV_INDEX_FOO_PASSWORD changed",
       [](KeyInputs& in) { set_env(in, "UV_INDEX_FOO_PASSWORD", "correct-horse"); }, kNone},
      {"uv_env: UV_INDEX_FOO_PASSWORD removed",
       [](KeyInputs& in) { drop_env(in, "UV_INDEX_FOO_PASSWORD"); }, kNone},
      {"uv_env: UV_INDEX_FOO_USERNAME added",
       [](KeyInputs& in) { set_env(in, "UV_INDEX_FOO_USERNAME", "ci-bot"); }, kNone},
      {"uv_env: UV_KEYRING_PROVIDER added",
       [](KeyInputs& in) { set_env(in, "UV_KEYRING_PROVIDER", "subprocess"); }, kNone},
      {"uv_env: UV_INDEX_URL gains credentials",
       [](KeyInputs& in) { set_env(in, "UV_INDEX_URL", "https://user:secret@mirror.example/simple"); },
       kNone},
      {"uv_env: UV_EXTRA_INDEX_URL gains credentials",
       [](KeyInputs& in) {
         set_env(in, "UV_EXTRA_INDEX_URL", "https://token:abc123@download.pytorch.org/whl/cu124");
       },
       kNone},

      // kUvBinary's own fields (distinct from environment.uv).
      {"uv",
       [](KeyInputs& in) { in.uv = "5555555555555555555555555555555555555555555555555555555555555555"; },
       {KeyKind::kUvBinary}},
      {"uv_path", [](KeyInputs& in) { in.uv_path = "/opt/uv/bin/uv"; }, {KeyKind::kUvBinary}},

      // kUvCache's and kUvCachePiece's (distinct from environment.cache_dir).
      {"cache_dir", [](KeyInputs& in) { in.cache_dir = "/var/cache/uv"; },
       {KeyKind::kUvCache, KeyKind::kUvCachePiece}},
      {"environments: one added",
       [](KeyInputs& in) { in.environments["sglang"] = kEnvKeyB; }, {KeyKind::kUvCache}},
      {"environments: one removed",
       [](KeyInputs& in) { in.environments.erase("cache:flashinfer"); }, {KeyKind::kUvCache}},
      {"environments: emptied", [](KeyInputs& in) { in.environments.clear(); }, {KeyKind::kUvCache}},
      {"environments: one environment's key changed",
       [](KeyInputs& in) {
         in.environments["vllm"] = "6666666666666666666666666666666666666666666666666666666666666666";
       },
       {KeyKind::kUvCache}},
      {"environments: one renamed (same key)",
       [](KeyInputs& in) {
         in.environments.erase("vllm");
         in.environments["vllm-serve"] = kEnvKeyA;
       },
       {KeyKind::kUvCache}},
      {"environments: two keys swapped",
       [](KeyInputs& in) {
         std::swap(in.environments["vllm"], in.environments["cache:flashinfer"]);
       },
       {KeyKind::kUvCache}},

      // kUvCachePiece's own.
      {"part", [](KeyInputs& in) { in.part = "vllm"; }, {KeyKind::kUvCachePiece}},
      {"piece archives -> index", [](KeyInputs& in) { in.piece = "index"; }, {KeyKind::kUvCachePiece}},
      {"listing",
       [](KeyInputs& in) {
         in.listing = "sha256:8888888888888888888888888888888888888888888888888888888888888888";
       },
       {KeyKind::kUvCachePiece}},

      // kVenv's and kSource's.
      {"environment_key (the venv's environment key)", [](KeyInputs& in) { in.environment_key = kEnvKeyB; },
       {KeyKind::kVenv, KeyKind::kProject}},
      {"source_tar",
       [](KeyInputs& in) {
         in.source_tar = "sha256:7777777777777777777777777777777777777777777777777777777777777777";
       },
       {KeyKind::kSource, KeyKind::kProject}},
      {"source_tar left out (an editable install)", [](KeyInputs& in) { in.source_tar = ""; },
       {KeyKind::kSource, KeyKind::kProject}},
      // kProject's own.
      {"project_install editable -> built", [](KeyInputs& in) { in.project_install = "built"; },
       {KeyKind::kProject}},
      {"project_pyproject", [](KeyInputs& in) { in.project_pyproject = kUvLockSha; }, {KeyKind::kProject}},
      // kStep's own.
      {"step.parent", [](KeyInputs& in) { in.step.parent = kEnvKeyB; }, {KeyKind::kStep}},
      {"step.platform", [](KeyInputs& in) { in.step.platform = "linux/arm64"; }, {KeyKind::kStep}},
      {"step.shell", [](KeyInputs& in) { in.step.shell = {"sh", "-c"}; }, {KeyKind::kStep}},
      {"step.run", [](KeyInputs& in) { in.step.run += "rm -rf /var/lib/apt/lists/*\n"; }, {KeyKind::kStep}},
      {"step.env: a value changed", [](KeyInputs& in) { in.step.env[1] = "TZ=Europe/Paris"; }, {KeyKind::kStep}},
      {"step.env: reordered", [](KeyInputs& in) { std::swap(in.step.env[0], in.step.env[1]); }, {KeyKind::kStep}},
      {"step.workdir", [](KeyInputs& in) { in.step.workdir = "/opt"; }, {KeyKind::kStep}},
      {"step.user", [](KeyInputs& in) { in.step.user = "nobody"; }, {KeyKind::kStep}},
      {"step.network", [](KeyInputs& in) { in.step.network = "none"; }, {KeyKind::kStep}},
      {"step.mounts: a bind's content",
       [](KeyInputs& in) { in.step.mounts[1] = "bind /tmp/x.sh ro sha256:" + std::string(64, 'b'); },
       {KeyKind::kStep}},
      {"step.mounts: one removed", [](KeyInputs& in) { in.step.mounts.pop_back(); }, {KeyKind::kStep}},
      {"step.args: a value changed", [](KeyInputs& in) { in.step.args = {"CUSTOM_SETUP_FNAME="}; },
       {KeyKind::kStep}},
  };
  const std::set<KeyKind> kPythonOnly = {KeyKind::kPython};
  std::vector<Mutation> python = {
      {"python.uv", [](KeyInputs& in) { in.python.uv = std::string(64, '5'); }, kPythonOnly},
      {"python.request 3.13 -> 3.13.2", [](KeyInputs& in) { in.python.request = "3.13.2"; }, kPythonOnly},
      {"python.install_dir", [](KeyInputs& in) { in.python.install_dir = "/opt/uv-python"; }, kPythonOnly},
      {"python.platform -> linux/arm64", [](KeyInputs& in) { in.python.platform = "linux/arm64"; }, kPythonOnly},
      {"python: the install mirror changed",
       [](KeyInputs& in) { in.python.mirror_env[0] = "UV_PYTHON_INSTALL_MIRROR=https://other.corp/pbs"; },
       kPythonOnly},
      {"python: a downloads list added",
       [](KeyInputs& in) { in.python.mirror_env.push_back("UV_PYTHON_DOWNLOADS_JSON_URL=http://m/d.json"); },
       kPythonOnly},
      // A route, not a source: proxies, timeouts and credentials never count.
      {"python: the mirror's password changed",
       [](KeyInputs& in) { in.python.mirror_env[0] = "UV_PYTHON_INSTALL_MIRROR=https://user:other@mirror.corp/pbs"; },
       kNone},
      {"python: a timeout and a proxy dropped",
       [](KeyInputs& in) { in.python.mirror_env.resize(1); }, kNone},
  };
  m.insert(m.end(), python.begin(), python.end());
  return m;
}

}  // namespace

TEST_CASE("each input of a kind changes its key, and nothing else does", "[layer_keys]") {
  const auto table = mutations();
  for (KeyKind kind : kAllKinds) {
    const KeyInputs base = baseline(kind);
    const std::string base_key = key_of(base);
    for (const auto& m : table) {
      KeyInputs changed = base;
      m.apply(changed);
      const bool must_change = m.changes.count(kind) != 0;
      INFO("kind " << kind_label(kind) << ", mutation: " << m.what
                   << (must_change ? " (must change the key)" : " (must not change the key)"));
      if (must_change) {
        CHECK(key_of(changed) != base_key);
      } else {
        CHECK(key_of(changed) == base_key);
      }
    }
  }
}

TEST_CASE("every kind has at least one input that changes its key", "[layer_keys]") {
  // Guards the table above: a kind with no changing row would pass vacuously.
  const auto table = mutations();
  for (KeyKind kind : kAllKinds) {
    INFO("kind " << kind_label(kind));
    CHECK(std::any_of(table.begin(), table.end(), [&](const Mutation& m) { return m.changes.count(kind) != 0; }));
  }
}

TEST_CASE("environments are keyed by name, not by insertion order", "[layer_keys]") {
  KeyInputs a = baseline(KeyKind::kUvCache);
  a.environments.clear();
  a.environments["vllm"] = kEnvKeyA;
  a.environments["cache:flashinfer"] = kEnvKeyB;
  KeyInputs b = a;
  b.environments.clear();
  b.environments["cache:flashinfer"] = kEnvKeyB;
  b.environments["vllm"] = kEnvKeyA;
  CHECK(key_of(a) == key_of(b));
}

TEST_CASE("credentials in index URLs never reach the key", "[layer_keys]") {
  KeyInputs a = baseline(KeyKind::kEnvironment);
  KeyInputs b = a;
  KeyInputs c = a;
  KeyInputs d = a;
  set_env(a, "UV_INDEX_URL", "https://user:secret@mirror.example/simple");
  set_env(b, "UV_INDEX_URL", "https://other:pw@mirror.example/simple");
  set_env(c, "UV_INDEX_URL", "https://mirror.example/simple");
  set_env(d, "UV_INDEX_URL", "https://user:secret@elsewhere.example/simple");
  CHECK(key_of(a) == key_of(b));
  CHECK(key_of(a) == key_of(c));
  CHECK(key_of(a) != key_of(d));

  SECTION("explain() shows no password") {
    // explain() cuts lines at 120 characters, which could hide a password by
    // accident; so one short uv_env per URL shape, and the host after the
    // userinfo must be visible (the line was not cut before it).
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"UV_INDEX_URL=https://user:secret@mirror.example/simple", "mirror.example/simple"},
        {"UV_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu124 https://bot:secret@wheels.example/simple",
         "wheels.example/simple"},
        {"UV_INDEX=internal=https://ci:secret@pkgs.example/simple", "pkgs.example/simple"},
    };
    for (const auto& [var, host] : cases) {
      KeyInputs in = baseline(KeyKind::kEnvironment);
      in.environment.uv_env = {var, "UV_INDEX_FOO_PASSWORD=secret", "HTTPS_PROXY=http://u:secret@proxy:3128"};
      const auto k = cache_key(in);
      INFO(var);
      REQUIRE_FALSE(k.explain().empty());
      bool shows_host = false;
      for (const auto& line : k.explain()) {
        INFO(line);
        CHECK(line.find("secret") == std::string::npos);
        if (line.find(host) != std::string::npos) shows_host = true;
      }
      CHECK(shows_host);  // the index itself is still shown, minus the userinfo
    }
  }
}

TEST_CASE("different kinds with equal inputs give different keys", "[layer_keys]") {
  SECTION("kVenv and kSource over the same string") {
    KeyInputs venv = baseline(KeyKind::kVenv);
    KeyInputs source = baseline(KeyKind::kSource);
    venv.environment_key = kSourceTar;
    source.source_tar = kSourceTar;
    CHECK(key_of(venv) != key_of(source));
  }
  SECTION("kUvBinary and kSource over the same string") {
    KeyInputs uv = baseline(KeyKind::kUvBinary);
    KeyInputs source = baseline(KeyKind::kSource);
    uv.uv = kSourceTar;
    uv.uv_path.clear();
    source.source_tar = kSourceTar;
    CHECK(key_of(uv) != key_of(source));
  }
  SECTION("all kinds from one baseline are pairwise distinct") {
    std::set<std::string> keys;
    for (KeyKind kind : kAllKinds) keys.insert(key_of(baseline(kind)));
    CHECK(keys.size() == kAllKinds.size());
  }
}

TEST_CASE("adjacent fields do not run into each other", "[layer_keys]") {
  // Moving text from one field to the next changes the key (length-prefixed).
  KeyInputs a = baseline(KeyKind::kEnvironment);
  KeyInputs b = a;
  a.environment.base = "ab";
  a.environment.platform = "c";
  b.environment.base = "a";
  b.environment.platform = "bc";
  CHECK(key_of(a) != key_of(b));

  KeyInputs c = baseline(KeyKind::kEnvironment);
  KeyInputs d = c;
  c.environment.extras = {"a", "b"};
  d.environment.extras = {"a,b"};
  CHECK(key_of(c) != key_of(d));

  KeyInputs e = baseline(KeyKind::kEnvironment);
  KeyInputs f = e;
  e.environment.extras = {};
  f.environment.extras = {""};
  CHECK(key_of(e) != key_of(f));
}

TEST_CASE("keys are stable", "[layer_keys]") {
  for (KeyKind kind : kAllKinds) {
    INFO("kind " << kind_label(kind));
    const KeyInputs in = baseline(kind);
    const std::string first = key_of(in);
    CHECK(key_of(in) == first);
    CHECK(key_of(baseline(kind)) == first);
    CHECK(first.size() == 64);
    CHECK(first.find_first_not_of("0123456789abcdef") == std::string::npos);
  }

  SECTION("golden value for a fixed kSource input") {
    // Spelled out here, not taken from baseline(), so that editing the
    // baseline cannot move it.
    KeyInputs in;
    in.kind = KeyKind::kSource;
    in.format.mtime_clamp = 1700000000;
    in.format.compression = Compression::kGzip;
    in.format.level = 0;
    in.source_tar = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    // THIS VALUE IS EVERY USER'S CACHE. Changing it (by changing how keys
    // are computed: field names, encoding, order, hashing) invalidates every
    // local and registry-shared (--cache-from) cache entry. Update it only
    // on purpose, in a change that says so.
    // (It is SHA-256 of "4:kind=6:source;11:mtime-clamp=10:1700000000;
    // 11:compression=4:gzip;17:compression-level=1:0;11:gzip-random=6:stored;
    // 3:tar=71:sha256:e3b0...;11:gzip-blocks=15:content-defined;", the
    // encoding of src/cache_key.cc, checked by hand with sha256sum. Changed
    // on purpose twice: the source layer's gzip blocks became content-defined,
    // then gzip blocks of random-looking bytes became stored blocks; each
    // changed a layer's bytes for the same tar.)
    CHECK(key_of(in) == "48a20f9b334338942c4e6e1c071256883b5f58c3e05f21c5a931334de8fdb7c2");
  }
}

TEST_CASE("uv_env_for_key sorts, filters and strips credentials", "[layer_keys]") {
  SECTION("empty in, empty out") { CHECK(uv_env_for_key({}).empty()); }

  SECTION("sorted by the whole NAME=VALUE") {
    const std::vector<std::string> in = {"UV_INDEX_STRATEGY=first-index", "UV_INDEX_URL=https://mirror.example/simple",
                                         "UV_FIND_LINKS=/wheels", "UV_DEFAULT_INDEX=https://pypi.example/simple"};
    const std::vector<std::string> want = {"UV_DEFAULT_INDEX=https://pypi.example/simple",
                                           "UV_FIND_LINKS=/wheels", "UV_INDEX_STRATEGY=first-index",
                                           "UV_INDEX_URL=https://mirror.example/simple"};
    CHECK(uv_env_for_key(in) == want);
    std::vector<std::string> reversed(in.rbegin(), in.rend());
    CHECK(uv_env_for_key(reversed) == want);
  }

  SECTION("only the variables that decide what is installed") {
    const std::vector<std::string> in = {
        "UV_HTTP_TIMEOUT=60",
        "UV_CONCURRENT_DOWNLOADS=8",
        "HTTPS_PROXY=http://proxy.corp:3128",
        "HTTP_PROXY=http://proxy.corp:3128",
        "NO_PROXY=localhost",
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "UV_NATIVE_TLS=1",
        "UV_INDEX_FOO_PASSWORD=hunter2",
        "UV_INDEX_FOO_USERNAME=ci-bot",
        "UV_KEYRING_PROVIDER=subprocess",
        "UV_INDEX_URL",  // no '=': not a variable, dropped
        "UV_DEFAULT_INDEX=https://pypi.example/simple",
        "UV_INDEX=internal=https://pkgs.example/simple",
        "UV_INDEX_URL=https://mirror.example/simple",
        "UV_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu124",
        "UV_FIND_LINKS=/wheels",
        "UV_INDEX_STRATEGY=unsafe-best-match",
        "UV_OFFLINE=1",
        "UV_PYTHON_INSTALL_MIRROR=https://python.example/releases",
    };
    const std::vector<std::string> want = {
        "UV_DEFAULT_INDEX=https://pypi.example/simple",
        "UV_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu124",
        "UV_FIND_LINKS=/wheels",
        "UV_INDEX=internal=https://pkgs.example/simple",
        "UV_INDEX_STRATEGY=unsafe-best-match",
        "UV_INDEX_URL=https://mirror.example/simple",
        "UV_PYTHON_INSTALL_MIRROR=https://python.example/releases",
    };
    CHECK(uv_env_for_key(in) == want);
  }

  SECTION("user:password@ removed from URLs") {
    using V = std::vector<std::string>;
    CHECK(uv_env_for_key({"UV_INDEX_URL=https://user:secret@mirror.example/simple"}) ==
          V{"UV_INDEX_URL=https://mirror.example/simple"});
    CHECK(uv_env_for_key({"UV_INDEX_URL=https://token@mirror.example/simple"}) ==
          V{"UV_INDEX_URL=https://mirror.example/simple"});
    CHECK(uv_env_for_key({"UV_INDEX_URL=https://user:p@ss@mirror.example/simple"}) ==
          V{"UV_INDEX_URL=https://mirror.example/simple"});
    CHECK(uv_env_for_key({"UV_INDEX_URL=https://user:secret@mirror.example"}) ==
          V{"UV_INDEX_URL=https://mirror.example"});
    CHECK(uv_env_for_key({"UV_INDEX=internal=https://ci:secret@pkgs.example/simple"}) ==
          V{"UV_INDEX=internal=https://pkgs.example/simple"});
    // An '@' after the host is part of the path, not userinfo: kept.
    CHECK(uv_env_for_key({"UV_FIND_LINKS=https://files.example/wheels/@latest/"}) ==
          V{"UV_FIND_LINKS=https://files.example/wheels/@latest/"});
    // Not a URL: left alone.
    CHECK(uv_env_for_key({"UV_FIND_LINKS=/wheels"}) == V{"UV_FIND_LINKS=/wheels"});
  }

  SECTION("credentials removed inside a space-separated UV_EXTRA_INDEX_URL list") {
    const auto out = uv_env_for_key(
        {"UV_EXTRA_INDEX_URL=https://a:secret@one.example/simple https://two.example/simple "
         "https://c:secret@three.example/simple"});
    REQUIRE(out.size() == 1);
    CHECK(out[0] ==
          "UV_EXTRA_INDEX_URL=https://one.example/simple https://two.example/simple "
          "https://three.example/simple");
    CHECK(out[0].find("secret") == std::string::npos);
  }

  SECTION("two users of the same index give the same entry") {
    CHECK(uv_env_for_key({"UV_INDEX_URL=https://user:secret@mirror.example/simple"}) ==
          uv_env_for_key({"UV_INDEX_URL=https://other:pw@mirror.example/simple"}));
    CHECK(uv_env_for_key({"UV_INDEX_URL=https://user:secret@mirror.example/simple"}) !=
          uv_env_for_key({"UV_INDEX_URL=https://user:secret@elsewhere.example/simple"}));
  }
}
