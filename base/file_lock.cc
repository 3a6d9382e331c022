#include "base/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

#include "base/error.h"

namespace dockless {

namespace {

UniqueFd open_lock_file(const std::filesystem::path& path) {
  // Read-only is enough for flock, and works on a lock file we may not write.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) throw_errno("cannot open " + path.string());
  return fd;
}

int operation(LockMode mode) { return mode == LockMode::kShared ? LOCK_SH : LOCK_EX; }

// flock, retried when a signal interrupts the wait; false only for
// EWOULDBLOCK under LOCK_NB.
bool lock(int fd, int op, const std::filesystem::path& path) {
  while (::flock(fd, op) != 0) {
    if (errno == EWOULDBLOCK && (op & LOCK_NB)) return false;
    if (errno != EINTR) throw_errno("cannot lock " + path.string());
  }
  return true;
}

}  // namespace

FileLock::FileLock(const std::filesystem::path& path, LockMode mode)
    : path_(path), fd_(open_lock_file(path)) {
  lock(fd_.get(), operation(mode), path_);
}

std::optional<FileLock> FileLock::try_lock(const std::filesystem::path& path, LockMode mode) {
  UniqueFd fd = open_lock_file(path);
  if (!lock(fd.get(), operation(mode) | LOCK_NB, path)) return std::nullopt;
  return FileLock(path, std::move(fd));
}

void FileLock::change(LockMode mode) {
  if (!fd_) throw Error("cannot lock " + path_.string() + ": it was unlocked");
  lock(fd_.get(), operation(mode), path_);
}

}  // namespace dockless
