// A blob upload that starts before the blob is whole: the bytes fed to it
// as they are made go, on a thread of its own, into one upload session (a
// PATCH with a chunked body). The blob becomes a blob of the repository
// only when commit() says so (a PUT with its digest and no body), once the
// caller knows it is to be pushed; until then the registry holds an upload
// session, which the destructor closes.
//
// Feeding never waits for the network: when the registry falls behind by
// more than the bound, or anything fails, the upload gives up, and the
// caller sends the blob the usual way (commit() returns false).
//
// Or the bytes come from a file being written (GrowingFile: a blob going
// into the store): the upload reads it as it grows, never falls behind by
// too much (the file is the buffer), and the writer never waits.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/byte_pipe.h"
#include "base/growing_file.h"
#include "oci/descriptor.h"
#include "oci/registry_client.h"

namespace dockless {

class StreamedUpload {
 public:
  /// Opens the session and starts sending on its own thread.
  StreamedUpload(RegistryClient& client, std::string repo, std::size_t bound = std::size_t{32} << 20);
  /// Opens the session and sends `file` as it is written (no feed()/end():
  /// the file says when it is whole).
  StreamedUpload(RegistryClient& client, std::string repo, std::shared_ptr<GrowingFile> file);
  /// Waits for the thread; closes a session not committed (best effort).
  ~StreamedUpload();
  StreamedUpload(const StreamedUpload&) = delete;
  StreamedUpload& operator=(const StreamedUpload&) = delete;

  /// The next bytes of the blob (the producer's thread).
  void feed(const void* data, std::size_t size);
  /// Every byte was fed (the producer's thread).
  void end();
  /// The bytes will not all come (the producer failed).
  void abandon();

  /// Waits for the bytes to be sent; then, when every byte fed reached the
  /// session and they are `blob.size` bytes, makes them `blob` in the
  /// repository. False when the upload gave up or failed (nothing thrown):
  /// the blob is to be sent again the usual way.
  bool commit(const Descriptor& blob);

  const std::string& registry() const { return client_.registry(); }
  const std::string& repository() const { return repo_; }

 private:
  void run();
  /// Ends the stream with an error (under mu_): the PATCH stops.
  void give_up();

  RegistryClient& client_;
  const std::string repo_;
  BytePipe pipe_;  ///< fed, not sent yet; its capacity is the bound
  std::shared_ptr<GrowingFile> file_;  ///< instead of pipe_: the blob's file as it is written

  std::mutex mu_;
  std::condition_variable changed_;
  std::uint64_t fed_ = 0;
  bool ended_ = false;
  bool gave_up_ = false;             ///< abandoned, over the bound, or failed
  bool sent_ = false;                ///< the PATCH is over (or failed)
  std::string session_;              ///< the session's location after the PATCH ("" on failure)
  std::uint64_t received_ = 0;
  bool committed_ = false;
  std::thread thread_;
};

}  // namespace dockless
