#include "src/build/uv_runner.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "base/error.h"
#include "base/file_util.h"
#include "base/process.h"
#include "src/build/lock_mirror.h"

extern char** environ;

namespace dockless {

namespace {

constexpr const char* kSandboxUv = "/.dockless/bin/uv";
constexpr const char* kSandboxPath =
    "/.dockless/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

bool is_passthrough(const std::string& name) {
  static const char* const kExact[] = {
      "UV_DEFAULT_INDEX", "UV_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS",
      "UV_NATIVE_TLS", "UV_INSECURE_HOST", "UV_HTTP_TIMEOUT", "UV_OFFLINE", "UV_INDEX_STRATEGY",
      "UV_KEYRING_PROVIDER", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY",
      "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
      "UV_HTTP_RETRIES", "UV_PYTHON_INSTALL_MIRROR", "UV_PYPY_INSTALL_MIRROR", "UV_PYTHON_DOWNLOADS_JSON_URL"};
  for (const char* e : kExact)
    if (name == e) return true;
  // UV_INDEX_<NAME>_USERNAME / _PASSWORD, UV_CONCURRENT_DOWNLOADS / _BUILDS / _INSTALLS.
  return name.rfind("UV_INDEX_", 0) == 0 || name.rfind("UV_CONCURRENT_", 0) == 0;
}

/// The local path of a file:// URL ("" for anything else). A mirror or a
/// downloads list on the host's disk (an air gap) must be bound into the sandbox.
std::string file_url_path(const std::string& value) {
  const std::string scheme = "file://";
  if (value.rfind(scheme, 0) != 0) return {};
  std::string path = value.substr(scheme.size());
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

/// Runs argv on the host and returns its stdout; throws Error on failure.
std::string capture(const std::vector<std::string>& argv) {
  Command c;
  c.argv = argv;
  c.out = ProcessOutput::capture();
  ProcessResult r = run_process(c);
  if (r.status != 0) throw Error(argv[0] + " " + (argv.size() > 1 ? argv[1] : "") + " failed");
  return r.out;
}

/// The project tree at its destination, for uv. A venv inside it (uv's
/// Docker layout, /app/.venv) needs a mount point there, which a read-only
/// bind of the user's tree cannot get (and the user's own .venv must stay
/// hidden). So then the destination is a scratch dir `view` holding a
/// read-only bind of each entry of the tree, down the venv's path, with an
/// empty dir at the venv's place; the venv is mounted after it.
void add_project_binds(const UvRunnerConfig& c, const UvEnvironment& env, const std::filesystem::path& view,
                       std::vector<BindMount>& binds) {
  namespace fs = std::filesystem;
  std::string dest = c.image_project_dir;
  if (dest.empty() || dest.back() != '/') dest += '/';
  if (env.image_path.rfind(dest, 0) != 0) {
    binds.push_back({c.project_tree, c.image_project_dir, true});
    binds.push_back({env.host_dir, env.image_path, false});
    return;
  }
  fs::path inside = fs::path(env.image_path.substr(dest.size())).lexically_normal();
  fs::path tree = c.project_tree, at = view, image = c.image_project_dir;
  fs::create_directories(view);
  binds.push_back({view, c.image_project_dir, false});
  for (auto part = inside.begin(); part != inside.end(); ++part) {
    bool last = std::next(part) == inside.end();
    std::error_code ec;
    for (fs::directory_iterator it(tree, ec), end; !ec && it != end; it.increment(ec)) {
      fs::path name = it->path().filename();
      if (name == *part) continue;
      bool dir = it->is_directory(ec);
      if (dir) fs::create_directory(at / name);
      else write_file_atomic(at / name, "");
      binds.push_back({it->path(), (image / name).string(), true});
    }
    if (ec) throw Error("cannot list " + tree.string() + ": " + ec.message());
    fs::create_directory(at / *part);
    tree /= *part;
    at /= *part;
    image /= *part;
    if (last || !fs::is_directory(tree)) break;
  }
  binds.push_back({env.host_dir, env.image_path, false});
}

/// The mirrored uv.lock over the project's (after the project's binds).
void add_mirrored_lock(const UvRunnerConfig& c, std::vector<BindMount>& binds) {
  if (c.mirrored_lock.empty()) return;
  std::string dest = c.image_project_dir;
  binds.push_back({c.mirrored_lock, (dest.empty() || dest.back() != '/' ? dest + "/" : dest) + "uv.lock", true});
}

/// A failed download as one line (package and URL), with a hint when no
/// mirror was given.
std::string download_reason(const UvRunnerConfig& c, const UvDownloadFailure& failure) {
  std::string line = failure.line();
  if (line.empty() || !c.mirrored_lock.empty()) return line;
  return line + " (the URL uv.lock names; --index-mirror ORIGINAL=MIRROR fetches it from a mirror)";
}

/// One uv command in the sandbox; `what` names it in the error ("venv main").
void run_step(const UvRunnerConfig& c, const UvEnvironment& env, const std::string& step,
              const std::vector<std::string>& argv, const std::vector<std::string>& vars,
              const std::string& what) {
  SandboxSpec s;
  s.isolation = c.isolation;
  s.force_host = c.force_host;
  s.rootfs = c.rootfs;
  s.lower_layers = c.lower_layers;
  s.scratch = c.scratch / step;
  std::error_code ec;
  std::filesystem::remove_all(s.scratch, ec);
  std::filesystem::create_directories(s.scratch, ec);
  if (ec) throw Error("cannot create " + s.scratch.string() + ": " + ec.message());
  s.binds.push_back({c.uv_binary, kSandboxUv, true});
  s.binds.push_back({c.host_cache, c.image_cache_dir, false});
  std::filesystem::path view = c.scratch / (step + "-project");
  std::filesystem::remove_all(view, ec);
  add_project_binds(c, env, view, s.binds);
  for (const auto& b : c.extra_binds) s.binds.push_back(b);
  add_mirrored_lock(c, s.binds);
  s.argv = argv;
  s.env = vars;
  s.workdir = c.image_project_dir;
  std::string prefix = "[" + env.name + "] ";
  std::string reason;  // uv's own "error: ..." line, for the one-line message
  UvDownloadFailure download;
  s.on_output = [&](std::string_view line) {
    if (line.rfind("error:", 0) == 0 && reason.empty()) reason = std::string(line);
    download.feed(line);
    if (c.on_output) c.on_output(prefix + std::string(line));
  };
  // How the sandbox was made when the first choice was refused (overlay, a
  // device node...): worth a line when something later fails.
  s.on_note = [&](std::string_view note) {
    if (c.on_output) c.on_output(prefix + std::string(note));
  };
  int status = run_in_sandbox(s);
  std::filesystem::remove_all(s.scratch, ec);
  std::filesystem::remove_all(view, ec);
  // A download uv could not make: the package and the URL say it all.
  if (status != 0 && !download_reason(c, download).empty())
    throw Error(what + ": " + download_reason(c, download));
  if (status != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    throw Error(what + ": `" + cmd + "` failed with exit status " +
                std::to_string(status) + (reason.empty() ? " (its output is above)" : ": " + reason));
  }
}

}  // namespace

void collect_passthrough_env(std::vector<std::string>& env, std::vector<BindMount>& binds) {
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string name = kv.substr(0, eq);
    if (!is_passthrough(name)) continue;
    env.push_back(kv);
    // Host files these name must be where uv looks, inside the sandbox too.
    std::string path = kv.substr(eq + 1);
    if (name != "SSL_CERT_FILE") path = file_url_path(path);
    struct stat st;
    if (!path.empty() && path[0] == '/' && ::stat(path.c_str(), &st) == 0 &&
        (S_ISREG(st.st_mode) || (S_ISDIR(st.st_mode) && name != "SSL_CERT_FILE")))
      binds.push_back({path, path, true});
  }
}

std::filesystem::path find_uv(const std::filesystem::path& explicit_path) {
  auto executable = [](const std::filesystem::path& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (!explicit_path.empty()) {
    if (!executable(explicit_path))
      throw Error("--uv " + explicit_path.string() + ": not an executable file");
    return std::filesystem::absolute(explicit_path);
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t pos = 0;
  while (pos <= dirs.size()) {
    auto colon = dirs.find(':', pos);
    std::string dir = dirs.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos);
    if (!dir.empty()) {
      std::filesystem::path candidate = std::filesystem::path(dir) / "uv";
      if (executable(candidate)) return std::filesystem::canonical(candidate);
    }
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  throw Error("uv not found on PATH: install it (pip install uv) or pass --uv PATH");
}

std::string uv_version(const std::filesystem::path& uv_binary) {
  std::string out = capture({uv_binary.string(), "--version"});
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (out.rfind("uv ", 0) != 0) throw Error(uv_binary.string() + " --version: unexpected output");
  return out;
}

namespace {

/// With a uv-managed Python: where uv finds it, and nowhere else.
std::vector<std::string> python_vars(const UvRunnerConfig& c) {
  if (c.python_install_dir.empty()) return {};
  return {"UV_PYTHON_INSTALL_DIR=" + c.python_install_dir, "UV_PYTHON_PREFERENCE=only-managed"};
}

/// What every uv run of `env` gets in its environment.
std::vector<std::string> uv_vars(const UvRunnerConfig& c, const UvEnvironment& env) {
  std::vector<std::string> vars = {
      std::string("PATH=") + kSandboxPath,
      "HOME=/root",
      "LANG=C.UTF-8",
      "NO_COLOR=1",
      "UV_NO_PROGRESS=1",
      "UV_PYTHON_DOWNLOADS=never",
      "UV_CACHE_DIR=" + c.image_cache_dir,
      "UV_PROJECT_ENVIRONMENT=" + env.image_path,
      "UV_LINK_MODE=" + c.link_mode,
      "SOURCE_DATE_EPOCH=" + std::to_string(c.source_date_epoch),
  };
  for (const auto& v : python_vars(c)) vars.push_back(v);
  if (c.compile_bytecode) {
    // Layers clamp mtimes, so mtime-based pycs would go stale: hash-based ones don't.
    vars.push_back("UV_COMPILE_BYTECODE=1");
    vars.push_back("PYC_INVALIDATION_MODE=checked-hash");
  }
  for (const auto& v : c.passthrough_env) vars.push_back(v);
  return vars;
}

/// `uv sync --frozen` with the venv's extras and groups, then `extra`.
std::vector<std::string> sync_argv(const UvRunnerConfig& c, const UvEnvironment& env,
                                   const std::vector<std::string>& extra) {
  std::vector<std::string> sync = {kSandboxUv, "sync", "--frozen", "--python", env.image_path + "/bin/python"};
  if (!c.python_platform.empty()) {  // a foreign target's wheels and markers
    sync.push_back("--python-platform");
    sync.push_back(c.python_platform);
  }
  for (const auto& e : env.extras) {
    sync.push_back("--extra");
    sync.push_back(e);
  }
  if (env.all_groups) {
    sync.push_back("--all-groups");
  } else {
    for (const auto& g : env.groups) {
      sync.push_back("--group");
      sync.push_back(g);
    }
  }
  if (env.no_default_groups) sync.push_back("--no-default-groups");
  sync.insert(sync.end(), extra.begin(), extra.end());
  return sync;
}

}  // namespace

void run_uv_environment(const UvRunnerConfig& c, const UvEnvironment& env) {
  std::vector<std::string> vars = uv_vars(c, env);
  std::string what = "venv " + env.name;
  run_step(c, env, "venv", {kSandboxUv, "venv", "--allow-existing", "--python", c.python, env.image_path}, vars,
           what);
  run_step(c, env, "sync", sync_argv(c, env, {"--no-install-project"}), vars, what);
}

void run_uv_python_install(const UvRunnerConfig& c, const std::filesystem::path& host_dir) {
  std::vector<std::string> vars = {std::string("PATH=") + kSandboxPath,
                                   "HOME=/root",
                                   "LANG=C.UTF-8",
                                   "NO_COLOR=1",
                                   "UV_NO_PROGRESS=1",
                                   "UV_CACHE_DIR=" + c.image_cache_dir,
                                   "UV_PYTHON_INSTALL_DIR=" + c.python_install_dir};
  for (const auto& v : c.passthrough_env) vars.push_back(v);
  // --no-bin: only the install dir is the layer; nothing goes to ~/.local/bin.
  run_step(c, UvEnvironment{"python", c.python_install_dir, host_dir, {}, {}, false, false}, "python",
           {kSandboxUv, "python", "install", "--no-bin", c.python}, vars, "uv.python = \"" + c.python + "\"");
  // uv's own bookkeeping in the install dir: a lock, a download scratch dir.
  for (const char* name : {".lock", ".temp", ".cache"}) {
    std::error_code ec;
    std::filesystem::remove_all(host_dir / name, ec);
  }
}

void run_uv_project_install(const UvRunnerConfig& c, const UvEnvironment& env, bool editable,
                            const std::string& image_build_cache) {
  std::vector<std::string> vars = uv_vars(c, env);
  for (auto& v : vars) {
    // The project's build (and its build backend) goes to a cache of its
    // own, and its files are copied: the shipped uv cache never holds them.
    if (v.rfind("UV_CACHE_DIR=", 0) == 0) v = "UV_CACHE_DIR=" + image_build_cache;
    if (v.rfind("UV_LINK_MODE=", 0) == 0) v = "UV_LINK_MODE=copy";
  }
  // --inexact: the venv's packages stay as the main sync left them.
  std::vector<std::string> extra = {"--inexact"};
  // uv takes a local project's built wheel as fresh while pyproject.toml is
  // unchanged (its default cache-keys): a built install ignores the cache,
  // so a source edit (which changed this layer's key) reaches the wheel.
  if (!editable) extra.insert(extra.end(), {"--no-editable", "--no-cache"});
  run_step(c, env, "project", sync_argv(c, env, extra), vars, "venv " + env.name);
}

void check_lock(const UvRunnerConfig& c) {
  SandboxSpec s;
  s.isolation = c.isolation;
  s.force_host = c.force_host;
  s.rootfs = c.rootfs;
  s.lower_layers = c.lower_layers;
  s.scratch = c.scratch / "lock-check";
  std::error_code ec;
  std::filesystem::remove_all(s.scratch, ec);
  std::filesystem::create_directories(s.scratch, ec);
  if (ec) throw Error("cannot create " + s.scratch.string() + ": " + ec.message());
  s.binds.push_back({c.uv_binary, kSandboxUv, true});
  s.binds.push_back({c.host_cache, c.image_cache_dir, false});
  s.binds.push_back({c.project_tree, c.image_project_dir, true});
  for (const auto& b : c.extra_binds) s.binds.push_back(b);
  s.argv = {kSandboxUv, "lock", "--check", "--offline"};
  s.env = {std::string("PATH=") + kSandboxPath, "HOME=/root", "LANG=C.UTF-8", "NO_COLOR=1",
           "UV_NO_PROGRESS=1", "UV_PYTHON_DOWNLOADS=never", "UV_PYTHON=" + c.python,
           "UV_CACHE_DIR=" + c.image_cache_dir};
  for (const auto& v : python_vars(c)) s.env.push_back(v);
  for (const auto& v : c.passthrough_env) s.env.push_back(v);
  s.workdir = c.image_project_dir;
  // uv's reason: its "error:" line, and whether it only failed for want of
  // the network (a new requirement in no cache: the lock cannot be current).
  std::string reason;
  bool offline = false;
  s.on_output = [&](std::string_view line) {
    if (line.rfind("error: ", 0) == 0 && reason.empty()) reason = std::string(line.substr(7));
    if (line.find("network was disabled") != std::string_view::npos) offline = true;
    if (c.on_output) c.on_output("[uv.lock] " + std::string(line));
  };
  s.on_note = [&](std::string_view note) {
    if (c.on_output) c.on_output("[uv.lock] " + std::string(note));
  };
  int status = run_in_sandbox(s);
  std::filesystem::remove_all(s.scratch, ec);
  if (status == 0) return;
  if (reason.rfind("No interpreter found", 0) == 0)
    throw Error("uv.check-lock: " + reason + " in the base image (the lock is checked before any [[step]] runs)");
  while (!reason.empty() && (reason.back() == '.' || reason.back() == ' ')) reason.pop_back();
  if (reason.empty()) reason = "`uv lock --check --offline` failed with exit status " + std::to_string(status);
  if (offline) reason += " (resolving the changed requirements needs the network)";
  throw Error(std::string(reason.find("needs to be updated") != std::string::npos
                              ? "uv.lock is stale: "
                              : "uv.lock is stale or cannot be checked offline: ") +
              reason + "; run `uv lock` and commit uv.lock");
}

}  // namespace dockless
