#include "base/byte_pipe.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"

namespace dockless {

BytePipe::BytePipe(std::size_t capacity)
    : buf_(std::make_unique_for_overwrite<char[]>(capacity)), capacity_(capacity) {}

void BytePipe::put(const char* data, std::size_t n) {
  while (n > 0) {
    std::size_t tail = (head_ + used_) % capacity_;
    std::size_t k = std::min(n, capacity_ - tail);
    std::memcpy(buf_.get() + tail, data, k);
    used_ += k;
    data += k;
    n -= k;
  }
  cv_.notify_all();
}

void BytePipe::write(const char* data, std::size_t n) {
  while (n > 0) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return used_ < capacity_ || cancelled_; });
    if (cancelled_) throw Error("upload cancelled");
    std::size_t k = std::min(n, capacity_ - used_);
    put(data, k);
    data += k;
    n -= k;
  }
}

bool BytePipe::try_write(const char* data, std::size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_ || closed_ || n > capacity_ - used_) return false;
  put(data, n);
  return true;
}

std::size_t BytePipe::read(char* out, std::size_t cap) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return used_ > 0 || closed_; });
  if (used_ == 0) {
    if (error_) std::rethrow_exception(error_);
    return 0;
  }
  std::size_t k = std::min({cap, used_, capacity_ - head_});
  std::memcpy(out, buf_.get() + head_, k);
  head_ = (head_ + k) % capacity_;
  used_ -= k;
  cv_.notify_all();
  return k;
}

void BytePipe::close(std::exception_ptr error) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  closed_ = true;
  error_ = std::move(error);
  cv_.notify_all();
}

void BytePipe::cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  cv_.notify_all();
}

}  // namespace dockless
