// See id_maps.h.

#include "src/sandbox/id_maps.h"

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/file_util.h"
#include "src/sandbox/host_tools.h"
#include "src/sandbox/spec_checks.h"

namespace dockless::sandbox_detail {
namespace {

void write_proc_file(pid_t pid, const char* name, const std::string& content) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throw_errno("open " + path);
  // The kernel wants the whole map in one write.
  ssize_t n = ::write(fd.get(), content.data(), content.size());
  if (n != static_cast<ssize_t>(content.size())) throw_errno("write " + path);
}

/// Every range of this process's own namespace, mapped to itself: root keeps
/// every uid, so chown in the sandbox works as on the host.
std::string identity_map(const char* self_map) {
  std::istringstream in(read_file(self_map));
  std::string out;
  unsigned long inside, outside, count;
  while (in >> inside >> outside >> count)
    out += std::to_string(inside) + " " + std::to_string(inside) + " " + std::to_string(count) + "\n";
  return out;
}

/// The user's ranges in /etc/subuid or /etc/subgid ("name:start:count" or
/// "uid:start:count").
std::vector<std::pair<unsigned long, unsigned long>> subid_ranges(const char* file,
                                                                  const std::string& name,
                                                                  unsigned long id) {
  std::vector<std::pair<unsigned long, unsigned long>> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::size_t a = line.find(':');
    std::size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string who = line.substr(0, a);
    if (who != name && who != std::to_string(id)) continue;
    try {
      unsigned long start = std::stoul(line.substr(a + 1, b - a - 1));
      unsigned long count = std::stoul(line.substr(b + 1));
      if (count > 0) out.emplace_back(start, count);
    } catch (const std::exception&) {
      // A malformed line is not ours to judge; newuidmap would refuse it too.
    }
  }
  return out;
}

std::string user_name(uid_t uid) {
  if (const passwd* pw = ::getpwuid(uid); pw != nullptr) return pw->pw_name;
  return "";
}

}  // namespace

bool user_has_subid_ranges() {
  uid_t uid = ::geteuid();
  if (uid == 0) return false;
  std::string name = user_name(uid);
  return !subid_ranges("/etc/subuid", name, uid).empty() &&
         !subid_ranges("/etc/subgid", name, ::getegid()).empty() && find_program("newuidmap") &&
         find_program("newgidmap");
}

bool write_id_maps(const SandboxSpec& spec, pid_t pid, bool report) {
  uid_t uid = ::geteuid();
  gid_t gid = ::getegid();
  bool uid_done = false;
  bool gid_done = false;
  if (uid == 0) {
    try {
      write_proc_file(pid, "uid_map", identity_map("/proc/self/uid_map"));
      uid_done = true;
      write_proc_file(pid, "gid_map", identity_map("/proc/self/gid_map"));
      gid_done = true;
    } catch (const Error& e) {
      if (report)
        note(spec, std::string("sandbox (userns): mapping every id failed (") + e.what() +
                       "); mapping only root");
    }
  } else {
    std::string name = user_name(uid);
    auto uids = subid_ranges("/etc/subuid", name, uid);
    auto gids = subid_ranges("/etc/subgid", name, gid);
    auto newuidmap = find_program("newuidmap");
    auto newgidmap = find_program("newgidmap");
    if (!uids.empty() && !gids.empty() && newuidmap && newgidmap) {
      auto args = [&](const std::string& tool, unsigned long own, const auto& ranges) {
        std::vector<std::string> a = {tool, std::to_string(pid), "0", std::to_string(own), "1"};
        unsigned long next = 1;
        for (const auto& [start, count] : ranges) {
          a.push_back(std::to_string(next));
          a.push_back(std::to_string(start));
          a.push_back(std::to_string(count));
          next += count;
        }
        return a;
      };
      ToolResult r = run_tool(args(*newuidmap, uid, uids));
      uid_done = r.status == 0;
      if (uid_done) {
        r = run_tool(args(*newgidmap, gid, gids));
        gid_done = r.status == 0;
      }
      if ((!uid_done || !gid_done) && report)
        note(spec, "sandbox (userns): newuidmap/newgidmap failed (" + r.output +
                       "); mapping only uid " + std::to_string(uid) + " to root");
    }
  }
  if (!uid_done) write_proc_file(pid, "uid_map", "0 " + std::to_string(uid) + " 1\n");
  if (!gid_done) {
    // An unprivileged map of one gid needs setgroups denied first.
    if (uid != 0) write_proc_file(pid, "setgroups", "deny");
    write_proc_file(pid, "gid_map", "0 " + std::to_string(gid) + " 1\n");
  }
  return !uid_done || !gid_done;
}

}  // namespace dockless::sandbox_detail
