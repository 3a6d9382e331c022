// A bounded byte pipe between one writer and one reader thread: a download
// feeding an upload (src/transfer/blob_stream), a compressor feeding a
// streamed upload (oci/streamed_upload).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>

namespace dockless {

class BytePipe {
 public:
  /// The buffer is not touched before bytes come: an idle pipe costs no
  /// memory however large its capacity.
  explicit BytePipe(std::size_t capacity);

  /// Blocks while full; throws Error when the reader has gone (cancel()).
  void write(const char* data, std::size_t n);
  /// All n bytes if they fit now, else none: false (never blocks).
  bool try_write(const char* data, std::size_t n);
  /// Blocks while empty; 0 at the end; rethrows the error close() was given.
  std::size_t read(char* out, std::size_t cap);

  /// The writer is done: `error` (or none) once the reader has read all.
  void close(std::exception_ptr error);
  /// The reader is done: writes throw from now on.
  void cancel();

 private:
  void put(const char* data, std::size_t n);  // under mu_, n fits

  std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<char[]> buf_;
  std::size_t capacity_;
  std::size_t head_ = 0, used_ = 0;
  bool closed_ = false, cancelled_ = false;
  std::exception_ptr error_;
};

}  // namespace dockless
