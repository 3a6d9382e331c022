#include "base/growing_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/error.h"

namespace dockless {

void GrowingFile::open(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("cannot open " + path.string() + " to read it as it is written");
  std::lock_guard<std::mutex> lock(mu_);
  fd_ = std::move(fd);
  changed_.notify_all();
}

void GrowingFile::grew(std::uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  size_ = size;
  changed_.notify_all();
}

void GrowingFile::ended() {
  std::lock_guard<std::mutex> lock(mu_);
  ended_ = true;
  changed_.notify_all();
}

void GrowingFile::abandon() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ended_) abandoned_ = true;
  changed_.notify_all();
}

std::size_t GrowingFile::read(char* out, std::size_t cap) {
  int fd = -1;
  std::size_t n = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return abandoned_ || (fd_ && (read_ < size_ || ended_)); });
    if (abandoned_) throw Error("the file being read as it was written was abandoned");
    if (read_ == size_) return 0;  // ended, all read
    fd = fd_.get();
    n = static_cast<std::size_t>(std::min<std::uint64_t>(cap, size_ - read_));
  }
  // The fd stays open (only ~GrowingFile closes it); bytes below size_ never change.
  ssize_t got = 0;
  do {
    got = ::pread(fd, out, n, static_cast<off_t>(read_));
  } while (got < 0 && errno == EINTR);
  if (got < 0) throw_errno("cannot read the file being written");
  if (got == 0) throw Error("the file being written is shorter than its writer said");
  read_ += static_cast<std::uint64_t>(got);
  return static_cast<std::size_t>(got);
}

bool GrowingFile::whole() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ended_ && !abandoned_;
}

std::uint64_t GrowingFile::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
}

}  // namespace dockless
