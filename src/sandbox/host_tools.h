// Host programs the sandbox runs from the parent (cp, newuidmap, rm,
// fuse-overlayfs): finding them, and running them with their output captured.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace dockless::sandbox_detail {

struct ToolResult {
  int status = -1;  ///< exit status, 128+signal, or -1 when it could not start
  std::string output;
};

/// Runs a host tool (cp, newuidmap) with stdout+stderr captured.
ToolResult run_tool(const std::vector<std::string>& argv);

/// An executable on the host's PATH or in the usual system directories.
std::optional<std::string> find_program(const std::string& name);

/// cp -a of a file or directory to `to` (which must not exist). Reflinks
/// where the filesystem has them, so a copy of a rootfs is cheap on xfs/btrfs.
/// Throws Error starting with prefix when cp fails.
void copy_tree(const std::filesystem::path& from, const std::filesystem::path& to,
               const std::string& prefix);

}  // namespace dockless::sandbox_detail
