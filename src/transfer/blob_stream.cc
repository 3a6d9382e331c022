#include "src/transfer/blob_stream.h"

#include <exception>
#include <memory>
#include <thread>

#include "base/byte_pipe.h"
#include "base/error.h"

namespace dockless {

namespace {

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
