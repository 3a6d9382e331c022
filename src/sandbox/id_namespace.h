// Work on what a userns step left, from the build's side: as a user with
// /etc/subuid ranges, a step's files belong to subordinate ids (apt's
// /var/lib/apt/lists/partial is _apt's, mode 0700), which the user can
// neither read nor delete. A child that is root of a new user namespace with
// the sandbox's own id maps can (rootless podman's "unshare"), and sees the
// owners as the step saw them.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>

#include "src/sandbox/sandbox.h"

namespace dockless {

/// True when files a step leaves may be out of this process's reach: a
/// userns sandbox run by a user (not root).
bool step_files_need_id_namespace(const SandboxSpec& spec);

/// Runs `produce(fd)` in a forked child that is root of a new user
/// namespace with the maps the userns sandbox gives a command; what it writes
/// to fd is handed to `consume` as it comes. Throws Error with what produce
/// threw (or how the child ended).
void run_in_id_namespace(const SandboxSpec& spec, const std::function<void(int fd)>& produce,
                         const std::function<void(const char* data, std::size_t size)>& consume);

/// remove_tree(dir); as a user, what is left (subordinate ids' files) is
/// removed by run_in_id_namespace. Best effort there: never throws for it.
void remove_step_tree(const SandboxSpec& spec, const std::filesystem::path& dir);

}  // namespace dockless
