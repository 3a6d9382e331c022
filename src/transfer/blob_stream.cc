#include "src/transfer/blob_stream.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/error.h"

namespace dockless {

namespace {

/// A bounded byte pipe between one writer and one reader thread.
class BytePipe {
 public:
  explicit BytePipe(std::size_t capacity) : buf_(capacity) {}

  /// Blocks while full; throws when the reader has gone (the upload failed).
  void write(const char* data, std::size_t n) {
    while (n > 0) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return used_ < buf_.size() || cancelled_; });
      if (cancelled_) throw Error("upload cancelled");
      std::size_t tail = (head_ + used_) % buf_.size();
      std::size_t k = std::min({n, buf_.size() - used_, buf_.size() - tail});
      std::memcpy(buf_.data() + tail, data, k);
      used_ += k;
      data += k;
      n -= k;
      cv_.notify_all();
    }
  }

  /// Blocks while empty; 0 at the end; rethrows the writer's failure.
  std::size_t read(char* out, std::size_t cap) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return used_ > 0 || closed_; });
    if (used_ == 0) {
      if (error_) std::rethrow_exception(error_);
      return 0;
    }
    std::size_t k = std::min({cap, used_, buf_.size() - head_});
    std::memcpy(out, buf_.data() + head_, k);
    head_ = (head_ + k) % buf_.size();
    used_ -= k;
    cv_.notify_all();
    return k;
  }

  void close(std::exception_ptr error) {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    error_ = std::move(error);
    cv_.notify_all();
  }

  void cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<char> buf_;
  std::size_t head_ = 0, used_ = 0;
  bool closed_ = false, cancelled_ = false;
  std::exception_ptr error_;
};

constexpr std::size_t kPipeBytes = 8 << 20;

/// One upload try's download: started when made, stopped and joined when
/// the upload lets go of its reader.
struct Download {
  BytePipe pipe{kPipeBytes};
  std::thread thread;
  ~Download() {
    pipe.cancel();
    if (thread.joinable()) thread.join();
  }
};

}  // namespace

void stream_blob_between(RegistryClient& from, const std::string& from_repo, RegistryClient& to,
                         const std::string& to_repo, const Descriptor& blob,
                         const ProgressFn& progress) {
  to.upload_blob_stream(to_repo, blob, [&]() -> BlobReader {
    auto d = std::make_shared<Download>();
    BytePipe* pipe = &d->pipe;
    d->thread = std::thread([&from, &from_repo, &blob, pipe] {
      try {
        from.stream_blob(from_repo, blob, [pipe](const char* data, std::size_t n) { pipe->write(data, n); });
        pipe->close(nullptr);
      } catch (...) {
        pipe->close(std::current_exception());
      }
    });
    auto sent = std::make_shared<std::uint64_t>(0);
    return [d, sent, progress](char* buf, std::size_t cap) {
      std::size_t n = d->pipe.read(buf, cap);
      *sent += n;
      if (progress && n > 0) progress(*sent);
      return n;
    };
  });
}

}  // namespace dockless
