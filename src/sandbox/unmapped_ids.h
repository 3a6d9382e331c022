// A build step in a sandbox that maps only one id (a user without
// /etc/subuid and /etc/subgid ranges): what it needed and could not have,
// found in its output (apt dropping to _apt, chown, tar) or in what it left
// (a user it added whose home it could not give away), and the one error
// line that says so with the way out.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "src/sandbox/sandbox.h"

namespace dockless {

/// An id a step needed that the sandbox could not map.
struct UnmappedId {
  std::string id;       ///< "uid 42", "gid 65534"; "" when the tool did not name it
  std::string context;  ///< why: the output line, or "for /home/alice (user alice)"
  bool apt = false;     ///< apt's privilege drop to its sandbox user
};

/// Watches a step's output lines for the signs of an unmappable id: apt's
/// "seteuid 42 failed", tar's "Cannot change ownership to uid N", chown's
/// or cp's "Invalid argument" on an owner change. Keeps the most precise one.
class UnmappedIdScanner {
 public:
  void line(std::string_view line);
  const std::optional<UnmappedId>& found() const { return found_; }

 private:
  std::optional<UnmappedId> found_;
  int rank_ = 0;  ///< 3 a uid, 2 a gid, 1 an id the tool did not name
};

/// After a step ran with one id mapped: a user the step added (in its
/// /etc/passwd, not in the one before); `with_home`: only one whose home
/// directory the step made, which then belongs to root instead of the user.
/// Reads spec.upper_dir, spec.lower_layers and spec.rootfs.
std::optional<UnmappedId> unmapped_new_user(const SandboxSpec& spec, bool with_home);

/// The error line: `step "NAME" WHAT: it needs uid 42 (_apt, ...), which
/// this sandbox cannot map ...; HINT` (subuid ranges; apt's
/// APT::Sandbox::User "root" where apt asked). `uid_map` is the sandbox's, as
/// SandboxResult has it; names are looked up in the step's /etc/passwd.
std::string unmapped_id_message(const SandboxSpec& spec, const std::string& step,
                                const std::string& what, const UnmappedId& id,
                                const std::string& uid_map);

}  // namespace dockless
