// The uv binary a build runs and ships: where it is, its version, and its
// SHA-256 (in every environment's key).
#pragma once

#include <filesystem>
#include <string>

namespace dockless {

struct UvTool {
  std::filesystem::path binary;  ///< "" when the build needs no uv
  std::string version;           ///< "uv 0.13.9 (...)"
  std::string short_version;     ///< "0.13.9"
  std::string sha;               ///< hex SHA-256 of the binary
};

/// uv's version and SHA-256, remembered under `cache_dir`/tools per file
/// identity (device, inode, size, mtime, ctime): hashing a 40 MB binary on
/// every build costs more than the rest of a no-change build.
UvTool identify_uv(const std::filesystem::path& binary, const std::filesystem::path& cache_dir);

}  // namespace dockless
