// Advisory whole-file locks (flock) between dockless processes: the cache,
// a git mirror, a snapshot being made, an OCI layout's index. The lock goes
// with the open file description, so it is released when the FileLock is
// destroyed or the process dies, never left behind.
#pragma once

#include <filesystem>
#include <optional>

#include "base/file_util.h"

namespace dockless {

enum class LockMode { kShared, kExclusive };

class FileLock {
 public:
  /// Opens `path` (creating an empty file 0644 if absent) and blocks until
  /// the lock is held. Errors name the path.
  FileLock(const std::filesystem::path& path, LockMode mode);
  /// The same without waiting: nullopt while a conflicting lock is held.
  static std::optional<FileLock> try_lock(const std::filesystem::path& path, LockMode mode);

  FileLock(FileLock&&) noexcept = default;
  FileLock& operator=(FileLock&&) noexcept = default;

  /// Converts the held lock (blocks until the new mode is granted). flock
  /// drops the old lock first, so another process may get in between.
  void change(LockMode mode);
  /// Releases the lock now rather than at destruction.
  void unlock() { fd_.reset(); }
  bool held() const { return static_cast<bool>(fd_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  FileLock(std::filesystem::path path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::filesystem::path path_;
  UniqueFd fd_;
};

}  // namespace dockless
