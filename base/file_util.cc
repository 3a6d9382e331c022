#include "base/file_util.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <utility>

#include "base/error.h"

namespace dockless {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

UniqueFd::~UniqueFd() { reset(); }

int UniqueFd::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void write_all(int fd, const void* data, std::size_t size, const std::string& what) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write " + what);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

std::size_t read_some(int fd, void* data, std::size_t size, const std::string& what) {
  for (;;) {
    ssize_t n = ::read(fd, data, size);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) throw_errno("cannot read " + what);
  }
}

std::string read_file(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("cannot open " + path.string());
  std::string out;
  char buf[65536];
  for (;;) {
    std::size_t n = read_some(fd.get(), buf, sizeof buf, path.string());
    if (n == 0) break;
    out.append(buf, n);
  }
  return out;
}

std::filesystem::path temp_path_beside(const std::filesystem::path& final_name) {
  static std::atomic<unsigned long> counter{0};
  return final_name.parent_path() /
         (".tmp-" + final_name.filename().string() + "-" + std::to_string(::getpid()) + "-" +
          std::to_string(counter.fetch_add(1)));
}

namespace {
int make_dir_writable(const char* path, const struct stat* st, int type, FTW*) {
  if (type == FTW_D) ::chmod(path, (st->st_mode & 07777) | S_IRWXU);
  return 0;
}

int remove_entry(const char* path, const struct stat*, int type, FTW*) {
  if (type == FTW_DP || type == FTW_D || type == FTW_DNR)
    ::rmdir(path);
  else
    ::unlink(path);
  return 0;
}
}  // namespace

void remove_tree(const std::filesystem::path& dir) {
  ::nftw(dir.c_str(), make_dir_writable, 32, FTW_PHYS | FTW_MOUNT);
  ::nftw(dir.c_str(), remove_entry, 32, FTW_PHYS | FTW_MOUNT | FTW_DEPTH);
}

void fsync_dir(const std::filesystem::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno("cannot open directory " + dir.string());
  if (::fsync(fd.get()) != 0 && errno != EINVAL) throw_errno("cannot sync " + dir.string());
}

AtomicFile::AtomicFile(std::filesystem::path final_path)
    : final_(std::move(final_path)), temp_(temp_path_beside(final_)) {
  fd_.reset(::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd_) throw_errno("cannot create " + temp_.string());
}

AtomicFile::~AtomicFile() {
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, std::size_t size) {
  write_all(fd_.get(), data, size, temp_.string());
  written_ += size;
  // Starts the disk writes of each full window now, without waiting for
  // them: commit()'s fsync then waits for the last window only, not for
  // gigabytes, and the disk works while the writer computes the next bytes.
  if (written_ - flushed_ >= kWritebackWindow) {
    ::sync_file_range(fd_.get(), static_cast<off_t>(flushed_), static_cast<off_t>(written_ - flushed_),
                      SYNC_FILE_RANGE_WRITE);  // a hint: its failure changes nothing fsync checks
    flushed_ = written_;
  }
}

void AtomicFile::truncate() {
  if (::ftruncate(fd_.get(), 0) != 0 || ::lseek(fd_.get(), 0, SEEK_SET) != 0)
    throw_errno("cannot truncate " + temp_.string());
  written_ = flushed_ = 0;
}

void AtomicFile::commit() { commit_as(final_); }

void AtomicFile::commit_unsynced() {
  fd_.reset();
  if (::rename(temp_.c_str(), final_.c_str()) != 0) throw_errno("cannot rename to " + final_.string());
  committed_ = true;
}

void AtomicFile::commit_as(const std::filesystem::path& final_path) {
  if (::fsync(fd_.get()) != 0) throw_errno("cannot sync " + temp_.string());
  fd_.reset();
  if (::rename(temp_.c_str(), final_path.c_str()) != 0) throw_errno("cannot rename to " + final_path.string());
  committed_ = true;
  fsync_dir(final_path.parent_path().empty() ? "." : final_path.parent_path());
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  AtomicFile file(path);
  file.write(content.data(), content.size());
  file.commit();
}

void write_file_replacing(const std::filesystem::path& path, std::string_view content) {
  AtomicFile file(path);
  file.write(content.data(), content.size());
  file.commit_unsynced();
}

}  // namespace dockless
