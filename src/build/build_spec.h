// The build spec: dockless.toml (or [tool.dockless] in pyproject.toml), with
// --set overrides. What the image is made of; the CLI adds where it goes.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "src/build/step_spec.h"

namespace dockless {

/// One virtualenv of the image: `uv sync` with these extras/groups into `path`.
struct VenvSpec {
  std::string name;  ///< the table name: "main" or e.g. "app.workers.VllmWorker"
  std::string path;  ///< absolute image path, e.g. /opt/ray_venvs/app.workers.VllmWorker
  std::vector<std::string> extras;
  std::vector<std::string> groups;  ///< dependency groups (ignored when all_groups)
  bool all_groups = false;          ///< groups = "all"
  bool no_default_groups = false;   ///< leave out uv's default groups (dev)
  std::vector<std::string> tags;    ///< --skip matches the name or any tag
  /// install-project: leave the project out (uv sync --no-install-project),
  /// install it built (true), or editable (a small layer after the source).
  enum class InstallProject { kNo, kYes, kEditable } install_project = InstallProject::kNo;
  /// The project environment (the venv named "main"): first on PATH, and
  /// UV_PROJECT_ENVIRONMENT in the image.
  bool is_main() const { return name == "main"; }
};

struct BuildSpec {
  /// The file the spec came from (dockless.toml or pyproject.toml), for messages.
  std::filesystem::path file;

  struct Image {
    std::string base;      ///< registry reference or oci:DIR[:TAG]; required
    std::string platform;  ///< "" = the host's
    /// image.platforms: several platforms, one image each under an index
    /// (exclusive with `platform`); empty = just `platform`.
    std::vector<std::string> platforms;
    std::string workdir;   ///< "" = source.dest
    std::vector<std::pair<std::string, std::string>> env;  ///< in file order
    std::optional<std::vector<std::string>> entrypoint;
    std::optional<std::vector<std::string>> cmd;
    std::string user;
    std::map<std::string, std::string> labels;
    bool sbom = false;  ///< as build --sbom: a CycloneDX SBOM attached as a referrer
  } image;

  struct Uv {
    /// An interpreter path in the image ("/usr/bin/python3"), or a version
    /// request for `uv python install` ("3.13", "3.13.2", "cpython-3.13");
    /// python_source says which.
    std::string python = "/usr/bin/python3";
    enum class PythonSource {
      kImagePath,  ///< python starts with "/": use that interpreter
      kUvManaged   ///< anything else: uv installs it into python_install_dir (its own layer)
    } python_source = PythonSource::kImagePath;
    std::string python_install_dir = "/opt/python";  ///< UV_PYTHON_INSTALL_DIR; used when kUvManaged
    bool check_lock = false;  ///< run `uv lock --check` and fail on a stale lock
    std::string cache_dir = "/root/.cache/uv";
    std::string link_mode = "symlink";  ///< symlink | copy
    bool ship_cache = true;
    std::string uv_path = "/usr/local/bin/uv";  ///< "" leaves uv out of the image
    bool compile_bytecode = false;
    /// ORIGINAL -> MIRROR URL prefixes for the URLs of uv.lock (lock_mirror.h);
    /// --index-mirror adds to them and wins for the same ORIGINAL.
    std::map<std::string, std::string> index_mirrors;
    /// uv's --python-platform for a foreign target ("aarch64-manylinux_2_36");
    /// "" = derived from the target base's glibc.
    std::string python_platform;
  } uv;

  struct Cache {
    std::vector<std::string> extras;  ///< pre-fetched into the cache without a venv
    std::vector<std::string> groups;
  } cache;

  struct Source {
    std::string path = ".";  ///< relative to the spec's directory
    std::string git;         ///< URL; when set, path is ignored
    std::string ref;         ///< branch, tag or commit; "" = the default branch
    bool keep_git_dir = false;
    std::string dest = "/opt/app";
    std::string ignore_file = ".dockerignore";
  } source;

  /// In the order of the file, except that "main" is last.
  std::vector<VenvSpec> venvs;

  /// [[step]] tables in file order (skipped ones included, marked skipped).
  std::vector<StepSpec> steps;
  /// Build args: [args] defaults, then --arg values on top.
  std::map<std::string, std::string> args;
  /// --arg names that nothing in the spec uses (no ${NAME}, no skip-if-empty):
  /// the build warns about each.
  std::vector<std::string> unused_args;
};

/// Reads the spec of the project in `project_dir`: `spec_file` when given,
/// else dockless.toml, else [tool.dockless] in pyproject.toml. Then applies
/// each override "dotted.key=value" (value parsed as TOML, else taken as a
/// string: image.base=localhost:5000/py:12, venv.main.extras=["a","b"],
/// uv.ship-cache=false). `args` are the --arg NAME=VALUE pairs in command-line
/// order (a later one wins); they override [args] and fill ${NAME} (see
/// build_args.h). Validates everything. Throws Error naming the file,
/// the line and the key ("dockless.toml:12: [venv.main]: unknown key
/// \"extra\" (valid keys: path, extras, groups, tags, no-default-groups)").
BuildSpec load_build_spec(const std::filesystem::path& project_dir,
                          const std::filesystem::path& spec_file,
                          const std::vector<std::string>& overrides,
                          const std::vector<std::pair<std::string, std::string>>& args = {});

}  // namespace dockless
