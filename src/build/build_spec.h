// The build spec: dockless.toml (or [tool.dockless] in pyproject.toml), with
// --set overrides. What the image is made of; the CLI adds where it goes.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

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
    std::string workdir;   ///< "" = source.dest
    std::vector<std::pair<std::string, std::string>> env;  ///< in file order
    std::optional<std::vector<std::string>> entrypoint;
    std::optional<std::vector<std::string>> cmd;
    std::string user;
    std::map<std::string, std::string> labels;
  } image;

  struct Uv {
    std::string python = "/usr/bin/python3";  ///< a path in the image, or a version ("3.12")
    std::string cache_dir = "/root/.cache/uv";
    std::string link_mode = "symlink";  ///< symlink | copy
    bool ship_cache = true;
    std::string uv_path = "/usr/local/bin/uv";  ///< "" leaves uv out of the image
    bool compile_bytecode = false;
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
};

/// Reads the spec of the project in `project_dir`: `spec_file` when given,
/// else dockless.toml, else [tool.dockless] in pyproject.toml. Then applies
/// each override "dotted.key=value" (value parsed as TOML, else taken as a
/// string: image.base=localhost:5000/py:12, venv.main.extras=["a","b"],
/// uv.ship-cache=false). Validates everything. Throws Error naming the file,
/// the line and the key ("dockless.toml:12: [venv.main]: unknown key
/// \"extra\" (valid keys: path, extras, groups, tags, no-default-groups)").
BuildSpec load_build_spec(const std::filesystem::path& project_dir,
                          const std::filesystem::path& spec_file,
                          const std::vector<std::string>& overrides);

}  // namespace dockless
