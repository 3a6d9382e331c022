// A pipeline stage that hashes and counts the bytes passing through it: how
// the diffID (uncompressed) is computed in the same pass as the compression.
#pragma once

#include <cstdint>

#include "layers/byte_sink.h"
#include "oci/digest.h"

namespace dockless {

class HashingSink : public ByteSink {
 public:
  /// `next` may be null: then bytes are only hashed and counted.
  explicit HashingSink(ByteSink* next) : next_(next) {}

  void write(const void* data, std::size_t size) override;
  void finish() override;

  std::uint64_t size() const { return size_; }
  bool finished() const { return finished_; }
  /// Valid after finish().
  const Digest& digest() const { return digest_; }

 private:
  ByteSink* next_;
  Sha256 hash_;
  std::uint64_t size_ = 0;
  Digest digest_;
  bool finished_ = false;
};

}  // namespace dockless
