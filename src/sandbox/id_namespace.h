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

/// True when this process is a user (not root) with /etc/subuid and
/// /etc/subgid ranges: files of other ids (the base's /etc/shadow of group
/// shadow, a cached step layer's _apt dir) are then made, and removed, in an
/// id namespace, so that they belong to the same subordinate ids as the
/// files a step writes. Root, or a user without ranges, needs none.
bool owners_need_id_namespace();

/// Runs `fn(all_ids)` in a forked child that is root of a new user namespace
/// with the user's ranges mapped, as a step's sandbox maps them (container id
/// N -> the range's host id). all_ids is false when only the user's own id
/// could be mapped (newuidmap refused): chown to other ids fails there.
/// Throws Error with what fn threw.
void run_as_mapped_root(const std::function<void(bool all_ids)>& fn);

/// remove_tree(dir); what is left when owners_need_id_namespace() (files of
/// subordinate ids) is then removed as mapped root. Never throws for that part.
void remove_tree_as_mapped_root(const std::filesystem::path& dir);

/// remove_tree(dir); as a user, what is left (subordinate ids' files) is
/// removed by run_in_id_namespace. Best effort there: never throws for it.
void remove_step_tree(const SandboxSpec& spec, const std::filesystem::path& dir);

}  // namespace dockless
