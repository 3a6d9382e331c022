// Runs uv inside the base image's root filesystem to make one environment:
// `uv venv` then `uv sync --frozen --no-install-project` with the venv's
// extras and groups, writing straight into host directories bind-mounted at
// their image paths (the venv, and the persistent uv cache).
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "src/sandbox/sandbox.h"

namespace dockless {

struct UvEnvironment {
  std::string name;               ///< for output prefixes and errors
  std::string image_path;         ///< where the venv lives in the image
  std::filesystem::path host_dir; ///< empty directory that receives it
  std::vector<std::string> extras;
  std::vector<std::string> groups;
  bool all_groups = false;
  bool no_default_groups = false;
};

struct UvRunnerConfig {
  Isolation isolation = Isolation::kUserns;
  bool force_host = false;
  std::filesystem::path rootfs;         ///< the base image's root filesystem
  /// The build steps at "base", as overlay lower dirs (upper-most first).
  std::vector<std::filesystem::path> lower_layers;
  std::filesystem::path scratch;        ///< per-run scratch space (emptied after each run)
  std::filesystem::path uv_binary;      ///< host path of the uv executable
  std::filesystem::path host_cache;     ///< persistent uv cache on the host
  std::string image_cache_dir;          ///< where it is mounted in the image
  std::filesystem::path project_tree;   ///< the source tree (read-only in the sandbox)
  std::string image_project_dir;        ///< where it is mounted (source.dest)
  std::string python;                   ///< interpreter path in the image, or a version request
  /// UV_PYTHON_INSTALL_DIR when `python` is a request for a uv-managed
  /// Python ("" for an interpreter path): uv finds it there, and only there.
  std::string python_install_dir;
  std::string link_mode;                ///< symlink | copy
  bool compile_bytecode = false;
  std::int64_t source_date_epoch = 0;
  /// "K=V" passed through from the user's environment (index URLs, TLS...).
  std::vector<std::string> passthrough_env;
  /// Host files to make visible (a CA bundle named by SSL_CERT_FILE...).
  std::vector<BindMount> extra_binds;
  /// A copy of uv.lock with mirrored URLs (lock_mirror.h), mounted read-only
  /// over the project's uv.lock for `uv sync`; "" = none. check_lock leaves
  /// it out: uv would take the changed registry URLs for a stale lock.
  std::filesystem::path mirrored_lock;
  /// uv's --python-platform for `uv sync` ("aarch64-manylinux_2_36") when the
  /// venv is made for a foreign platform in the host-platform twin; "" = native.
  std::string python_platform;
  /// Each output line of uv, already prefixed with the environment name.
  std::function<void(std::string_view)> on_output;
};

/// The user's environment variables that uv runs receive: uv's index, TLS,
/// network and resolution settings (UV_INDEX*, UV_DEFAULT_INDEX,
/// UV_EXTRA_INDEX_URL, UV_INDEX_URL, UV_FIND_LINKS, UV_NATIVE_TLS,
/// UV_INSECURE_HOST, UV_HTTP_TIMEOUT, UV_CONCURRENT_*, UV_OFFLINE,
/// SSL_CERT_FILE, SSL_CERT_DIR, HTTP(S)_PROXY, NO_PROXY and lowercase
/// forms). A file named by SSL_CERT_FILE is bind-mounted at the same path.
void collect_passthrough_env(std::vector<std::string>& env, std::vector<BindMount>& binds);

/// Makes `env` with uv in a sandbox. Throws Error when uv fails (its exit
/// status and the command) or the sandbox cannot be set up.
void run_uv_environment(const UvRunnerConfig& config, const UvEnvironment& env);

/// uv.python = "3.13": `uv python install --no-bin` of config.python into
/// `host_dir`, bind-mounted at config.python_install_dir, with the user's
/// mirror variables (UV_PYTHON_INSTALL_MIRROR, UV_PYTHON_DOWNLOADS_JSON_URL).
/// Throws Error with uv's reason when it fails.
void run_uv_python_install(const UvRunnerConfig& config, const std::filesystem::path& host_dir);

/// uv.check-lock: `uv lock --check --offline` in a sandbox over `config.rootfs`
/// (the project tree read-only, the uv cache, `UV_PYTHON` = config.python).
/// Throws Error, one line, when uv cannot confirm that uv.lock matches
/// pyproject.toml: stale, or not checkable offline (a new requirement that
/// is in no cache), with uv's own reason and the fix.
void check_lock(const UvRunnerConfig& config);

/// Installs the project into the made venv at `env.host_dir` (`uv sync
/// --frozen --inexact`, editable or `--no-editable`), building it with the
/// uv cache at `image_build_cache` (which `config.extra_binds` must mount)
/// and copying its files, so the venv's uv cache is only read.
void run_uv_project_install(const UvRunnerConfig& config, const UvEnvironment& env, bool editable,
                            const std::string& image_build_cache);

/// `uv --version` of a host uv binary ("uv 0.13.9 (x86_64-unknown-linux-gnu)").
std::string uv_version(const std::filesystem::path& uv_binary);

/// The uv binary to use: `explicit_path` when given, else `uv` on PATH.
std::filesystem::path find_uv(const std::filesystem::path& explicit_path);

}  // namespace dockless
