// See unmapped_ids.h.

#include "src/sandbox/unmapped_ids.h"

#include <pwd.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <vector>

#include "src/sandbox/layer_stack.h"
#include "src/sandbox/step_user.h"

namespace dockless {

namespace fs = std::filesystem;
using sandbox_detail::find_in_stack;
using sandbox_detail::passwd_records;
using sandbox_detail::read_or_empty;

namespace {

/// The number right after `word` in `line` when `after` follows it
/// ("seteuid 42 failed"); nullopt otherwise.
std::optional<std::string> number_after(std::string_view line, std::string_view word,
                                        std::string_view after) {
  for (std::size_t at = line.find(word); at != std::string_view::npos; at = line.find(word, at + 1)) {
    std::size_t i = at + word.size(), j = i;
    while (j < line.size() && line[j] >= '0' && line[j] <= '9') ++j;
    if (j > i && line.substr(j, after.size()) == after) return std::string(line.substr(i, j - i));
  }
  return std::nullopt;
}

bool has(std::string_view line, std::string_view what) { return line.find(what) != std::string_view::npos; }

/// The layers of the step's result over the ones before: its passwd and
/// group as the image will have them.
std::vector<fs::path> after_stack(const SandboxSpec& spec) {
  std::vector<fs::path> layers = {spec.upper_dir};
  layers.insert(layers.end(), spec.lower_layers.begin(), spec.lower_layers.end());
  return layers;
}

/// "NAME" of id `num` in the passwd or group text, or "".
std::string name_of(const std::string& text, const std::string& num) {
  for (const auto& f : passwd_records(text))
    if (f.size() >= 3 && f[2] == num) return f[0];
  return {};
}

}  // namespace

void UnmappedIdScanner::line(std::string_view line) {
  UnmappedId id;
  int rank = 0;
  // apt drops to _apt before it fetches: "E: seteuid 42 failed - seteuid (22: ...)".
  if (auto n = number_after(line, "seteuid ", " failed"); n && *n != "0") {
    id = {"uid " + *n, "", true};
    rank = 3;
  } else if (auto g = number_after(line, "setegid ", " failed"); g && *g != "0") {
    id = {"gid " + *g, "", true};
    rank = 2;
  } else if (auto t = number_after(line, "Cannot change ownership to uid ", ",")) {
    id = {"uid " + *t, std::string(line), false};  // GNU tar
    rank = 3;
  } else if (has(line, "Invalid argument") &&
             (has(line, "changing ownership") || has(line, "changing group") ||
              has(line, "preserve ownership") || has(line, "chown"))) {
    id = {"", std::string(line.substr(0, 200)), false};
    rank = 1;
  }
  if (rank > rank_) {
    found_ = id;
    rank_ = rank;
  }
}

std::optional<UnmappedId> unmapped_new_user(const SandboxSpec& spec, bool with_home) {
  std::string before = read_or_empty(find_in_stack(spec.lower_layers, spec.rootfs, "etc/passwd"));
  std::string after = read_or_empty(find_in_stack(after_stack(spec), spec.rootfs, "etc/passwd"));
  if (before == after) return std::nullopt;
  std::set<std::string> known;
  for (const auto& f : passwd_records(before))
    if (!f.empty()) known.insert(f[0]);
  for (const auto& f : passwd_records(after)) {
    if (f.size() < 6 || known.count(f[0]) || f[2] == "0") continue;
    if (!with_home) return UnmappedId{"uid " + f[2], "(user " + f[0] + ", added by the step)", false};
    if (f[5].size() < 2 || f[5][0] != '/') continue;
    std::string home = f[5].substr(1);
    // A home the step made (not one the image had) holds files that are the user's.
    struct stat st;
    if (::lstat((spec.upper_dir / home).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    if (find_in_stack(spec.lower_layers, spec.rootfs, home)) continue;
    return UnmappedId{"uid " + f[2], "for its home /" + home + " (user " + f[0] + ", added by the step)",
                      false};
  }
  return std::nullopt;
}

std::string unmapped_id_message(const SandboxSpec& spec, const std::string& step,
                                const std::string& what, const UnmappedId& id,
                                const std::string& uid_map) {
  std::string msg = "step \"" + step + "\" " + what + ": it needs ";
  if (id.id.empty()) {
    msg += "a user or group id other than root";
  } else {
    bool uid = id.id.rfind("uid ", 0) == 0;
    auto stack = after_stack(spec);
    std::string name = name_of(read_or_empty(find_in_stack(stack, spec.rootfs, uid ? "etc/passwd" : "etc/group")),
                               id.id.substr(4));
    msg += id.id;
    if (id.apt)
      msg += " (" + (name.empty() ? std::string() : name + ", ") + "the user apt drops to)";
    else if (!name.empty() && id.context.empty())
      msg += " (" + name + ")";
  }
  if (!id.context.empty()) msg += " " + (id.id.empty() ? "(" + id.context + ")" : id.context);

  // "0 1002 1": the calling user, seen as root, is the only id there is.
  std::istringstream in(uid_map);
  unsigned long inside = 0, outside = 0;
  in >> inside >> outside;
  std::string user = std::to_string(outside);
  if (const passwd* pw = ::getpwuid(static_cast<uid_t>(outside)); pw != nullptr) user = pw->pw_name;
  msg += ", which this sandbox cannot map: only " + user + "'s own id is mapped (to root), as " + user +
         " has no /etc/subuid and /etc/subgid range or newuidmap/newgidmap are missing; ";
  if (id.apt)
    msg += "for apt, set APT::Sandbox::User \"root\" (apt-get -o APT::Sandbox::User=root, or a file in "
           "/etc/apt/apt.conf.d/), or ";
  msg += "give " + user + " ranges (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 " + user +
         ", package uidmap), or build as root";
  return msg;
}

}  // namespace dockless
