// A gzip layer file's uncompressed bytes, inflated by ISA-L on a thread of
// its own a few chunks ahead of the reader: unpacking the base's root
// filesystem spent more time in zlib's inflate (via libarchive) than in
// writing the files, and the two now overlap.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "base/growing_file.h"

namespace dockless {

/// True when the file starts with the gzip magic (1f 8b).
bool is_gzip_file(const std::filesystem::path& file);

class GzipReader {
 public:
  /// Opens `file` and starts inflating; throws Error when it cannot be read.
  explicit GzipReader(const std::filesystem::path& file);
  /// Inflates `file` as its writer writes it (a blob being downloaded),
  /// named `name` in errors. Stopping early abandons it (its reads end).
  GzipReader(std::shared_ptr<GrowingFile> file, std::string name);
  /// Stops the inflating thread (a reader may stop early).
  ~GzipReader();
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  /// The next chunk of uncompressed bytes, valid until the next call; empty
  /// at the end. Throws Error on corrupt or truncated data (a bad CRC or
  /// length in a member's trailer included). Concatenated members are read
  /// as one stream; bytes after the last member that do not start another
  /// are ignored, as gzip and libarchive do.
  std::string_view next();

 private:
  struct Chunk {
    std::unique_ptr<unsigned char[]> bytes;
    std::size_t size = 0;
  };
  void inflate_all();
  /// Reads the next compressed bytes (0 at the end).
  std::size_t read_input(unsigned char* buf, std::size_t cap);
  /// Waits for a free chunk; false when the reader is gone.
  bool take_free(Chunk& out);
  void give_full(Chunk chunk);

  std::string file_;
  int fd_ = -1;
  std::shared_ptr<GrowingFile> growing_;  ///< instead of fd_
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Chunk> free_, full_;
  Chunk reading_;  ///< the chunk next() returned last (the caller holds it)
  bool ended_ = false, stopping_ = false;
  std::string error_;
  std::thread worker_;
};

}  // namespace dockless
