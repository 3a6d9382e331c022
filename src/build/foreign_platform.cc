#include "src/build/foreign_platform.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/file_util.h"
#include "src/transfer/toml_document.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

/// uv's and the wheel tags' name of an architecture ("aarch64" for arm64).
std::string wheel_arch(const Platform& p) {
  if (p.architecture == "amd64") return "x86_64";
  if (p.architecture == "arm64") return "aarch64";
  if (p.architecture == "386") return "i686";
  if (p.architecture == "arm") return "armv7l";
  return p.architecture;  // ppc64le, s390x, riscv64 are spelt alike
}

std::string read_small(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// "7f454c46..." -> bytes; empty on a malformed value.
std::string hex_bytes(std::string_view hex) {
  std::string out;
  if (hex.size() % 2 != 0) return {};
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    auto nib = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    };
    int hi = nib(hex[i]), lo = nib(hex[i + 1]);
    if (hi < 0 || lo < 0) return {};
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

/// Whether one binfmt_misc entry (its file's text) is an enabled F-flag
/// handler for ELF files of machine `machine`.
bool entry_matches(const std::string& text, int machine) {
  bool enabled = false, fix_binary = false;
  std::string magic, mask;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line == "enabled") enabled = true;
    if (line.rfind("flags:", 0) == 0) fix_binary = line.find('F', 6) != std::string::npos;
    if (line.rfind("magic ", 0) == 0) magic = hex_bytes(line.substr(6));
    if (line.rfind("mask ", 0) == 0) mask = hex_bytes(line.substr(5));
    if (line.rfind("offset ", 0) == 0 && line != "offset 0") return false;
  }
  if (!enabled || !fix_binary || magic.size() < 20) return false;
  // A 64-bit little-endian ELF executable header of this machine, as the
  // handler's mask sees it: "\x7fELF", class 2, data 1, e_machine at 18.
  std::string header(20, '\0');
  header.replace(0, 4, "\x7f" "ELF");
  header[4] = 2;
  header[5] = 1;
  header[6] = 1;
  header[16] = 2;  // ET_EXEC
  header[18] = static_cast<char>(machine & 0xff);
  header[19] = static_cast<char>((machine >> 8) & 0xff);
  for (std::size_t i = 0; i < 20; ++i) {
    unsigned char m = i < mask.size() ? static_cast<unsigned char>(mask[i]) : 0xff;
    if ((static_cast<unsigned char>(header[i]) & m) != (static_cast<unsigned char>(magic[i]) & m)) return false;
  }
  return true;
}

/// Whether a wheel file name has a tag that installs on linux/`arch`.
bool wheel_fits(std::string_view filename, const std::string& arch) {
  if (filename.size() < 4 || filename.substr(filename.size() - 4) != ".whl") return false;
  filename.remove_suffix(4);
  std::size_t dash = filename.rfind('-');
  if (dash == std::string_view::npos) return false;
  std::string_view plats = filename.substr(dash + 1);
  std::size_t start = 0;
  while (start <= plats.size()) {
    std::size_t dot = plats.find('.', start);
    std::string_view tag = plats.substr(start, dot == std::string_view::npos ? plats.npos : dot - start);
    if (tag == "any") return true;
    bool linux_tag = tag.rfind("manylinux", 0) == 0 || tag.rfind("musllinux", 0) == 0 || tag.rfind("linux_", 0) == 0;
    if (linux_tag && tag.size() > arch.size() && tag.substr(tag.size() - arch.size()) == arch &&
        tag[tag.size() - arch.size() - 1] == '_')
      return true;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return false;
}

std::string base_name(std::string_view url) {
  std::size_t q = url.find_first_of("?#");
  if (q != std::string_view::npos) url = url.substr(0, q);
  std::size_t slash = url.rfind('/');
  return std::string(slash == std::string_view::npos ? url : url.substr(slash + 1));
}

/// `path` inside `root` with every symlink resolved inside root (an
/// absolute target restarts at root); "" when a part is missing or the
/// links loop.
fs::path resolve_in_root(const fs::path& root, const std::string& path) {
  std::vector<std::string> todo;
  auto push_parts = [&todo](const std::string& p) {
    std::vector<std::string> parts;
    std::stringstream ss(p);
    for (std::string part; std::getline(ss, part, '/');)
      if (!part.empty() && part != ".") parts.push_back(part);
    todo.insert(todo.end(), parts.rbegin(), parts.rend());
  };
  push_parts(path);
  std::vector<std::string> done;
  int links = 0;
  while (!todo.empty()) {
    std::string part = todo.back();
    todo.pop_back();
    if (part == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    fs::path here = root;
    for (const auto& d : done) here /= d;
    here /= part;
    std::error_code ec;
    auto st = fs::symlink_status(here, ec);
    if (ec || !fs::exists(st)) return {};
    if (fs::is_symlink(st)) {
      if (++links > 40) return {};
      std::string target = fs::read_symlink(here, ec).string();
      if (ec) return {};
      if (!target.empty() && target.front() == '/') done.clear();
      push_parts(target);
      continue;
    }
    done.push_back(part);
  }
  fs::path out = root;
  for (const auto& d : done) out /= d;
  return out;
}

}  // namespace

bool runs_natively(const Platform& target, const Platform& host) {
  return target.os == host.os && target.architecture == host.architecture;
}

int elf_machine_of(const Platform& p) {
  if (p.architecture == "amd64") return 62;
  if (p.architecture == "arm64") return 183;
  if (p.architecture == "386") return 3;
  if (p.architecture == "arm") return 40;
  if (p.architecture == "ppc64le") return 21;
  if (p.architecture == "s390x") return 22;
  if (p.architecture == "riscv64") return 243;
  return 0;
}

bool binfmt_handler_for(const Platform& platform, const fs::path& binfmt_dir) {
  int machine = elf_machine_of(platform);
  if (machine == 0) return false;
  std::error_code ec;
  if (read_small(binfmt_dir / "status").rfind("enabled", 0) != 0) return false;
  for (const auto& e : fs::directory_iterator(binfmt_dir, ec)) {
    std::string name = e.path().filename().string();
    if (name == "status" || name == "register") continue;
    if (entry_matches(read_small(e.path()), machine)) return true;
  }
  return false;
}

std::string emulation_hint(const Platform& platform, const std::string& what) {
  return what + " must run on " + platform.str() + ", which this machine cannot execute: install " +
         "qemu-user-static (apt install qemu-user-static) and register it for " + wheel_arch(platform) +
         " with the F flag (binfmt_misc), or build that platform on a native host";
}

std::vector<std::string> sdist_only_packages(std::string_view lock_text, const std::string& lock_name,
                                             const Platform& platform) {
  const toml::table doc = parse_toml_document(lock_text, lock_name);
  std::string arch = wheel_arch(platform);
  std::vector<std::string> out;
  const toml::array* packages = doc["package"].as_array();
  if (packages == nullptr) return out;
  for (const auto& p : *packages) {
    const toml::table* pkg = p.as_table();
    if (pkg == nullptr || !(*pkg)["sdist"]) continue;  // the project itself, git or path sources
    bool fits = false;
    if (const toml::array* wheels = (*pkg)["wheels"].as_array())
      for (const auto& w : *wheels) {
        const toml::table* wt = w.as_table();
        if (wt == nullptr) continue;
        std::string file = (*wt)["filename"].value_or(std::string());
        if (file.empty()) file = base_name((*wt)["url"].value_or((*wt)["path"].value_or(std::string())));
        if (wheel_fits(file, arch)) fits = true;
      }
    if (!fits)
      out.push_back((*pkg)["name"].value_or(std::string("?")) + "==" + (*pkg)["version"].value_or(std::string("?")));
  }
  return out;
}

int glibc_minor(std::string_view v) {
  if (v.rfind("2.", 0) != 0) return -1;
  int minor = 0, digits = 0;
  for (std::size_t i = 2; i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])); ++i, ++digits)
    minor = minor * 10 + (v[i] - '0');
  return digits == 0 ? -1 : minor;
}

std::string python_platform_for(const Platform& platform, const fs::path& rootfs) {
  int minor = -1;
  // dpkg's record of libc6 ("Version: 2.36-9+deb12u4").
  std::istringstream status(read_small(rootfs / "var/lib/dpkg/status"));
  bool in_libc = false;
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Package: ", 0) == 0) in_libc = line == "Package: libc6";
    if (in_libc && line.rfind("Version: ", 0) == 0) {
      minor = glibc_minor(line.substr(9));
      break;
    }
  }
  if (minor < 0) {  // older glibc ships libc-2.NN.so
    std::error_code ec;
    for (const char* dir : {"lib", "usr/lib", "lib64"})
      for (auto it = fs::recursive_directory_iterator(rootfs / dir, ec); !ec && it != fs::end(it); it.increment(ec)) {
        if (it.depth() > 1) it.disable_recursion_pending();
        std::string name = it->path().filename().string();
        if (name.rfind("libc-2.", 0) == 0 && name.size() > 3 && name.substr(name.size() - 3) == ".so")
          minor = std::max(minor, glibc_minor(name.substr(5)));
      }
  }
  // uv 0.13 knows manylinux_2_28 and 2_31 .. 2_40 for linux targets.
  if (minor < 31) minor = 28;
  if (minor > 40) minor = 40;
  return wheel_arch(platform) + "-manylinux_2_" + std::to_string(minor);
}

std::string python_minor_in(const fs::path& rootfs, const std::string& python) {
  fs::path real = resolve_in_root(rootfs, python);
  if (real.empty()) return {};
  std::string name = real.filename().string();
  if (name.rfind("python", 0) != 0) return {};
  std::string v = name.substr(6);
  int dots = static_cast<int>(std::count(v.begin(), v.end(), '.'));
  if (v.empty() || dots != 1 || !std::all_of(v.begin(), v.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
      }))
    return {};
  return v;
}

void check_same_python(const fs::path& target_rootfs, const Platform& target, const fs::path& host_rootfs,
                       const Platform& host, const std::string& python) {
  std::string t = python_minor_in(target_rootfs, python);
  std::string h = python_minor_in(host_rootfs, python);
  auto show = [](const std::string& v) { return v.empty() ? std::string("missing (or not pythonX.Y)") : "python" + v; };
  if (t.empty() || h.empty() || t != h)
    throw Error("uv.python " + python + ": " + show(t) + " in the base for " + target.str() + ", " + show(h) +
                " in its " + host.str() + " twin; a venv made on " + host.str() +
                " needs the same interpreter path and Python version in both");
}

}  // namespace dockless
