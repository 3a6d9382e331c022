// A place that bytes are pushed into: the stage interface of the layer pipeline
// (tar writer -> hasher -> compressor -> hasher -> blob file).
#pragma once

#include <cstddef>

namespace dockless {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  /// Consumes size bytes. May throw Error.
  virtual void write(const void* data, std::size_t size) = 0;
  /// No more data will come: flush everything downstream. Called once.
  virtual void finish() = 0;
};

}  // namespace dockless
