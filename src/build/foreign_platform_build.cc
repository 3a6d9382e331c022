#include "src/build/foreign_platform_build.h"

#include "base/error.h"
#include "base/file_util.h"
#include "src/build/foreign_platform.h"
#include "src/build/platform_uv.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

/// --uv PLATFORM=PATH: a binary this machine may not run, so not asked
/// for its version (the host uv's is assumed); its ELF machine is checked.
UvTool given_uv(const BuildState& s, const fs::path& path) {
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    throw Error("--uv " + s.platform.str() + "=" + path.string() + ": " + e.what());
  }
  int machine = bytes.size() >= 20 && bytes.compare(0, 4, "\x7f" "ELF") == 0
                    ? static_cast<unsigned char>(bytes[18]) | (static_cast<unsigned char>(bytes[19]) << 8)
                    : -1;
  if (machine != elf_machine_of(s.platform))
    throw Error("--uv " + s.platform.str() + "=" + path.string() + ": not an ELF executable for " + s.platform.str());
  UvTool t = s.uv;
  t.binary = path;
  t.sha = sha256_of(bytes).hex();
  return t;
}

/// The uv binary the target's image ships: --uv PLATFORM=PATH, else the uv
/// wheel of the host uv's version for that platform.
UvTool target_uv(BuildState& s) {
  for (const auto& [platform, path] : s.opt.platform_uvs)
    if (Platform::parse(platform).matches(s.platform) || s.platform.matches(Platform::parse(platform)))
      return given_uv(s, path);
  PlatformUvSource source;
  source.index_urls = platform_uv_index_urls(s.passthrough, s.source.project_root / "pyproject.toml");
  for (const auto& [original, mirror] : s.spec().uv.index_mirrors) source.index_mirrors[original] = mirror;
  for (const auto& m : s.opt.index_mirrors) source.index_mirrors[m.original] = m.mirror;
  source.offline = s.opt.offline;
  source.http = s.opt.transfer.registry;  // TLS settings (--ca-cert ...)
  return fetch_platform_uv(s.uv, s.platform, source, s.cache_dir);
}

bool has_base_steps(const BuildSpec& spec) {
  for (const auto& st : spec.steps)
    if (!st.skipped && st.at == StepStage::kBase) return true;
  return false;
}

}  // namespace

void prepare_foreign(BuildState& s) {
  s.image_uv = s.uv;
  s.foreign = {};
  s.foreign.host = Platform::host();
  if (runs_natively(s.platform, s.foreign.host)) return;
  s.foreign.active = true;
  if (s.spec().uv.python_source == BuildSpec::Uv::PythonSource::kUvManaged)
    throw Error(s.spec().file.string() + ": uv.python = \"" + s.spec().uv.python +
                "\" (a uv-managed Python) is not supported for a foreign platform (" + s.platform.str() +
                ") yet: give the base's interpreter path");
  if (!s.plan.environments.empty()) {
    fs::path lock = s.source.project_root / "uv.lock";
    s.foreign.sdist_only = sdist_only_packages(read_file(lock), lock.string(), s.platform);
    // Venvs made over the target's own base steps, or with packages built
    // from source, need the target's CPU: the target's base, emulated.
    s.foreign.emulated = !s.foreign.sdist_only.empty() || has_base_steps(s.spec());
  }
  // The target's uv: shipped in the image, and the one that runs emulated
  // (the host's would find no loader of its own in the target's base).
  if (!s.uv.binary.empty() && (!s.spec().uv.uv_path.empty() || s.foreign.emulated)) s.image_uv = target_uv(s);
  if (s.plan.environments.empty() || s.foreign.emulated) return;
  // The host-platform twin: the same base reference, this machine's manifest.
  s.transfer.set_platform(s.foreign.host);
  try {
    s.foreign.twin = fetch_base_image(s.spec().image.base, s.foreign.host, true, s.transfer, s.store);
  } catch (const Error& e) {
    s.transfer.set_platform(s.platform);
    throw Error("base " + s.spec().image.base + " for " + s.platform.str() + ": uv runs in the base's " +
                s.foreign.host.str() + " image, and there is none: " + e.what());
  }
  s.transfer.set_platform(s.platform);
  s.note("environments for " + s.platform.str() + " made on " + s.foreign.host.str() + " in the base's " +
         s.foreign.host.str() + " image " + s.foreign.twin->image.top.digest.short_hex() + " (no emulation)");
}

std::string foreign_key_input(const BuildState& s) {
  if (!s.foreign.active) return {};
  if (s.foreign.emulated) return "emulated uv=" + s.image_uv.sha;
  return "twin=" + s.foreign.twin->image.top.digest.str() + " python-platform=" +
         (s.spec().uv.python_platform.empty() ? "from-base-glibc" : s.spec().uv.python_platform) +
         " uv=" + s.uv.sha;
}

fs::path uv_rootfs(BuildState& s) {
  fs::path target = base_rootfs(s.base, s.cache_dir, s.transfer, s.store);
  if (!s.foreign.active) return target;
  if (s.foreign.emulated) {
    if (!binfmt_handler_for(s.platform)) {
      std::string what = "the environments (uv.lock's packages";
      if (s.foreign.sdist_only.empty()) {
        what += " over the [[step]]s at \"base\")";
      } else {
        what += " with only an sdist for " + s.platform.str() + ":";
        for (std::size_t i = 0; i < s.foreign.sdist_only.size() && i < 8; ++i) what += " " + s.foreign.sdist_only[i];
        if (s.foreign.sdist_only.size() > 8) what += " ...";
        what += ")";
      }
      throw Error(emulation_hint(s.platform, what));
    }
    return target;
  }
  fs::path twin = base_rootfs(*s.foreign.twin, s.cache_dir, s.transfer, s.store);
  check_same_python(target, s.platform, twin, s.foreign.host, s.spec().uv.python);
  if (s.foreign.python_platform.empty())
    s.foreign.python_platform = !s.spec().uv.python_platform.empty() ? s.spec().uv.python_platform
                                                                      : python_platform_for(s.platform, target);
  return twin;
}

void apply_foreign(const BuildState& s, UvRunnerConfig& c) {
  if (!s.foreign.active) return;
  if (s.foreign.emulated) {
    c.uv_binary = s.image_uv.binary;
  } else {
    c.python_platform = s.foreign.python_platform;
  }
}

void check_step_can_run(const BuildState& s, const std::string& step_name) {
  if (s.foreign.active && !binfmt_handler_for(s.platform))
    throw Error(emulation_hint(s.platform, "step \"" + step_name + "\""));
}

}  // namespace dockless
