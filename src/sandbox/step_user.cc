// See step_user.h.

#include "src/sandbox/step_user.h"

#include <cstdlib>
#include <optional>
#include <sstream>

#include "base/error.h"
#include "base/file_util.h"
#include "src/sandbox/layer_stack.h"

namespace dockless::sandbox_detail {

std::vector<std::vector<std::string>> passwd_records(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::size_t start = 0;
    for (;;) {
      std::size_t c = line.find(':', start);
      f.push_back(line.substr(start, c == std::string::npos ? c : c - start));
      if (c == std::string::npos) break;
      start = c + 1;
    }
    out.push_back(std::move(f));
  }
  return out;
}

namespace {

std::optional<unsigned long> number(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 10)
    return std::nullopt;
  return std::stoul(s);
}

}  // namespace

std::string read_or_empty(const std::optional<std::filesystem::path>& p) {
  if (!p) return {};
  try {
    return read_file(*p);
  } catch (const Error&) {
    return {};
  }
}

StepUser resolve_step_user(const std::string& spec, const std::string& passwd,
                           const std::string& group) {
  std::size_t colon = spec.find(':');
  std::string who = spec.substr(0, colon);
  std::string grp = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (who.empty()) throw UsageError("user '" + spec + "': no user name or uid");
  StepUser u;
  std::string name;
  bool found = false;
  auto uid_num = number(who);
  for (const auto& f : passwd_records(passwd)) {
    if (f.size() < 6) continue;
    bool match = uid_num ? number(f[2]) == uid_num : f[0] == who;
    if (!match) continue;
    name = f[0];
    u.uid = static_cast<uid_t>(*number(f[2]));
    u.gid = static_cast<gid_t>(number(f[3]).value_or(0));
    u.home = f[5].empty() ? "/" : f[5];
    found = true;
    break;
  }
  if (!found) {
    if (!uid_num) throw UsageError("user '" + who + "' is not in the image's /etc/passwd");
    u.uid = static_cast<uid_t>(*uid_num);
  }
  auto groups = passwd_records(group);
  if (!grp.empty()) {
    if (auto g = number(grp)) {
      u.gid = static_cast<gid_t>(*g);
    } else {
      bool have = false;
      for (const auto& f : groups) {
        if (f.size() >= 3 && f[0] == grp && number(f[2])) {
          u.gid = static_cast<gid_t>(*number(f[2]));
          have = true;
          break;
        }
      }
      if (!have) throw UsageError("group '" + grp + "' is not in the image's /etc/group");
    }
  }
  u.groups.push_back(u.gid);
  if (name.empty()) return u;
  for (const auto& f : groups) {
    if (f.size() < 4 || !number(f[2])) continue;
    std::istringstream members(f[3]);
    for (std::string m; std::getline(members, m, ',');) {
      auto g = static_cast<gid_t>(*number(f[2]));
      if (m == name && g != u.gid) u.groups.push_back(g);
    }
  }
  return u;
}

StepUser resolve_step_user_in(const std::string& spec,
                              const std::vector<std::filesystem::path>& layers,
                              const std::filesystem::path& rootfs) {
  return resolve_step_user(spec, read_or_empty(find_in_stack(layers, rootfs, "etc/passwd")),
                           read_or_empty(find_in_stack(layers, rootfs, "etc/group")));
}

}  // namespace dockless::sandbox_detail
