// Who may use dockless's cache directory at the same time: every command
// that reads or fills it (build, pull, push, copy) holds a shared lock for
// its whole run; `dockless cache prune` holds the exclusive one, so it
// never removes a blob or a snapshot that a running build has chosen.
#pragma once

#include <filesystem>
#include <functional>

#include "base/file_lock.h"

namespace dockless {

class CacheLock {
 public:
  /// Blocks while a prune runs.
  static CacheLock shared(const std::filesystem::path& cache_dir);
  /// Blocks while any other command uses the cache; `on_wait` runs once
  /// before blocking (to say why nothing happens).
  static CacheLock exclusive(const std::filesystem::path& cache_dir,
                             const std::function<void()>& on_wait = {});

 private:
  explicit CacheLock(FileLock lock) : lock_(std::move(lock)) {}
  FileLock lock_;
};

}  // namespace dockless
