// Small POSIX file helpers shared by the blob store, the layout and the layer
// code: an owning fd, full reads/writes, and atomic file replacement.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace dockless {

/// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release();
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

/// Writes all of data to fd, retrying short writes and EINTR.
void write_all(int fd, const void* data, std::size_t size, const std::string& what);

/// Reads up to size bytes, retrying EINTR; returns 0 only at end of file.
std::size_t read_some(int fd, void* data, std::size_t size, const std::string& what);

/// The whole content of a file.
std::string read_file(const std::filesystem::path& path);

/// Replaces path with content atomically: temp file in the same directory,
/// fsync, rename, fsync of the directory. Readers see the old or the new file.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);
/// The same without the fsyncs, for a record that is only a hint and is
/// validated when read: after a crash it may be the old one, or empty,
/// never a mix.
void write_file_replacing(const std::filesystem::path& path, std::string_view content);

/// A file written under a temp name beside its final one and renamed into
/// place on commit() (after an fsync; the directory is fsynced after the
/// rename), so readers see the old file or the whole new one. Dropped before
/// commit(), it removes its temp file.
class AtomicFile {
 public:
  /// Creates the temp file (mode 0644) in final_path's directory.
  explicit AtomicFile(std::filesystem::path final_path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  int fd() const { return fd_.get(); }
  const std::filesystem::path& temp_path() const { return temp_; }
  void write(const void* data, std::size_t size);
  /// Back to empty (a download that must start over).
  void truncate();
  /// fsync, rename onto the final path, fsync of the directory.
  void commit();
  /// The same, onto another name in the same directory (known only at the
  /// end, like a blob's digest).
  void commit_as(const std::filesystem::path& final_path);
  /// Renames without any fsync (write_file_replacing).
  void commit_unsynced();

 private:
  std::filesystem::path final_;
  std::filesystem::path temp_;
  UniqueFd fd_;
  bool committed_ = false;
  static constexpr std::uint64_t kWritebackWindow = std::uint64_t{8} << 20;
  std::uint64_t written_ = 0;  ///< bytes written by write()
  std::uint64_t flushed_ = 0;  ///< of those, handed to the disk ahead of commit()
};

/// fsyncs a directory so a rename inside it is durable.
void fsync_dir(const std::filesystem::path& dir);

/// Removes a directory tree, best effort and quietly: directories are made
/// writable first (layers and overlayfs leave read-only ones behind), and the
/// walk never crosses into another filesystem (a leftover mount stays intact).
void remove_tree(const std::filesystem::path& dir);

/// A name for a temp file beside `final_name` that no other process or thread uses.
std::filesystem::path temp_path_beside(const std::filesystem::path& final_name);

}  // namespace dockless
