// A file one thread writes while another reads it as it grows: a layer's
// blob being compressed into the store, read by its upload (oci/
// streamed_upload) as the bytes land, so the upload never waits for the
// whole layer and nothing is held in memory. The file itself is the buffer:
// the writer never waits for the reader.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <mutex>

#include "base/file_util.h"

namespace dockless {

class GrowingFile {
 public:
  GrowingFile() = default;
  GrowingFile(const GrowingFile&) = delete;
  GrowingFile& operator=(const GrowingFile&) = delete;

  // The writer's side.
  /// Opens `path` for reading: the file being written (before any rename).
  /// Throws Error when it cannot be opened.
  void open(const std::filesystem::path& path);
  /// Its first `size` bytes are written.
  void grew(std::uint64_t size);
  /// It is whole at its last size.
  void ended();
  /// It will not be whole (the writer failed), or the reader stopped:
  /// a reader's waiting read throws.
  void abandon();

  // The reader's side.
  /// The next bytes, up to `cap`: waits while the writer has written no more
  /// than was read; 0 once the whole file was read. Throws Error when the
  /// file was abandoned or cannot be read.
  std::size_t read(char* out, std::size_t cap);
  /// Whether it ended whole, and at what size (its last, else).
  bool whole() const;
  std::uint64_t size() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable changed_;
  UniqueFd fd_;
  std::uint64_t size_ = 0;
  std::uint64_t read_ = 0;  ///< the reader's position (its thread only)
  bool ended_ = false;
  bool abandoned_ = false;
};

}  // namespace dockless
