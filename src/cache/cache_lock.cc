#include "src/cache/cache_lock.h"

#include <system_error>
#include <utility>

#include "base/error.h"

namespace dockless {

namespace {

std::filesystem::path lock_file(const std::filesystem::path& cache_dir) {
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  if (ec) throw Error("cannot create " + cache_dir.string() + ": " + ec.message());
  return cache_dir / "lock";
}

}  // namespace

CacheLock CacheLock::shared(const std::filesystem::path& cache_dir) {
  return CacheLock(FileLock(lock_file(cache_dir), LockMode::kShared));
}

CacheLock CacheLock::exclusive(const std::filesystem::path& cache_dir,
                               const std::function<void()>& on_wait) {
  const std::filesystem::path file = lock_file(cache_dir);
  if (std::optional<FileLock> now = FileLock::try_lock(file, LockMode::kExclusive))
    return CacheLock(std::move(*now));
  if (on_wait) on_wait();
  return CacheLock(FileLock(file, LockMode::kExclusive));
}

}  // namespace dockless
