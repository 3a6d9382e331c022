#include "layers/hashing_sink.h"

namespace dockless {

void HashingSink::write(const void* data, std::size_t size) {
  hash_.update(data, size);
  size_ += size;
  if (next_ != nullptr) next_->write(data, size);
}

void HashingSink::finish() {
  digest_ = hash_.finish();
  finished_ = true;
  if (next_ != nullptr) next_->finish();
}

}  // namespace dockless
