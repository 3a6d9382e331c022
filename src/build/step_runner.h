// Build steps ([[step]]): each runs in the sandbox over the base's root
// filesystem and every layer below it, and what it changed becomes its
// layer. Nothing is diffed where an overlay can be mounted: the overlay's
// upper dir is the change. In chroot mode (no mounts) the step runs in a
// copy, and the copy is compared with the tree it started from.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "src/build/build_state.h"

namespace dockless {

/// The content digest of each bind mount of the steps that will run (keyed
/// by StepMount::origin), for their cache keys: a tar digest of the bound
/// file or directory, so an edit of a setup script reruns its step.
std::map<std::string, std::string> bind_mount_digests(const BuildState& s);

/// The layers below the next one (s.layers so far) as overlay lower dirs,
/// upper-most first: a step's own kept upper dir, or the layer unpacked in
/// overlay format under <cache>/unpacked (once per diffID).
std::vector<std::filesystem::path> lower_dirs(BuildState& s);

/// Runs the step of `slot` and returns its layer. Throws Error when the step
/// fails: its name, exit code and last lines of output.
std::vector<CachedLayer> run_step(BuildState& s, const LayerSlot& slot);

}  // namespace dockless
