#include "src/cache/cache_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

#include "base/error.h"

namespace dockless {

namespace {

UniqueFd open_lock_file(const std::filesystem::path& cache_dir) {
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  if (ec) throw Error("cannot create " + cache_dir.string() + ": " + ec.message());
  std::filesystem::path file = cache_dir / "lock";
  UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) throw_errno("cannot open " + file.string());
  return fd;
}

void lock(int fd, int op, const std::filesystem::path& cache_dir) {
  while (::flock(fd, op) != 0) {
    if (errno != EINTR) throw_errno("cannot lock " + (cache_dir / "lock").string());
  }
}

}  // namespace

CacheLock CacheLock::shared(const std::filesystem::path& cache_dir) {
  UniqueFd fd = open_lock_file(cache_dir);
  lock(fd.get(), LOCK_SH, cache_dir);
  return CacheLock(std::move(fd));
}

CacheLock CacheLock::exclusive(const std::filesystem::path& cache_dir,
                               const std::function<void()>& on_wait) {
  UniqueFd fd = open_lock_file(cache_dir);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return CacheLock(std::move(fd));
  if (errno != EWOULDBLOCK) throw_errno("cannot lock " + (cache_dir / "lock").string());
  if (on_wait) on_wait();
  lock(fd.get(), LOCK_EX, cache_dir);
  return CacheLock(std::move(fd));
}

}  // namespace dockless
