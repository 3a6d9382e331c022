// The uid/gid maps of the userns sandbox: root maps every id it has, a user
// maps itself to root plus its /etc/subuid and /etc/subgid ranges (through
// newuidmap/newgidmap), or only itself.
#pragma once

#include <sys/types.h>

#include "src/sandbox/sandbox.h"

namespace dockless::sandbox_detail {

/// Writes the uid/gid maps of process `pid`, which has just created a user
/// namespace: identity for root; the user's own id at 0 plus its subordinate
/// ranges at 1.. through newuidmap/newgidmap when there are some; else just
/// the user's own id at 0. With `report`, each fallback is a note. Returns
/// true when only one uid or gid is mapped (other ids cannot be used).
bool write_id_maps(const SandboxSpec& spec, pid_t pid, bool report = true);

/// True when this process is not root and write_id_maps would map its
/// /etc/subuid and /etc/subgid ranges (both have one, newuidmap and
/// newgidmap are installed): files of other ids can then be made and read
/// in an id namespace.
bool user_has_subid_ranges();

}  // namespace dockless::sandbox_detail
