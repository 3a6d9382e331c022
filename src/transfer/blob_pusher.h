// Pushes a build's blobs to its --push repositories while the build still
// makes later ones: each blob goes as soon as it is final, on --jobs
// threads fed by a bounded queue, so uploads overlap uv runs and layer
// writing instead of following them. Blobs are read from their files
// (never held in memory). Blobs of the image the tag names now need no
// HEAD each (tag_contents.h). The manifest is not pushed here: the build's
// final push (ImageTransfer::store) writes it once every blob is in, and
// skips the blobs this pushed (LocalImage::pushed).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "oci/blob_store.h"
#include "oci/descriptor.h"
#include "oci/reference.h"
#include "oci/streamed_upload.h"
#include "src/transfer/tag_contents.h"
#include "src/transfer/transfer.h"

namespace dockless {

/// One blob's push to one repository, in seconds since the pusher's zero.
struct UploadTiming {
  std::string label;       ///< "layer venv vllm", "base layer 1"...
  std::string repository;  ///< registry/repository
  Digest digest;
  std::string action;      ///< transferred, mounted, skipped
  double start = 0, end = 0;
  bool streamed = false;   ///< transferred as it was made (PushItem::streamed)
};

/// A blob to push: in `store` (then uploaded from its file unless the
/// repository has it or a mount from `source_repo` works), or only in
/// `source_registry`/`source_repo` (then mounted when that is the
/// destination's registry, else left to the final push).
struct PushItem {
  Descriptor blob;
  std::string label;
  const BlobStore* store = nullptr;
  std::string source_registry, source_repo;
  /// Made by this build (a new layer, the config): a registry almost never
  /// has it, so one up to kFreshUploadLimit is uploaded without a HEAD
  /// first; at worst it is sent again.
  bool fresh = false;
  /// The blob's bytes, when the build holds them (an edited source tree's
  /// layer): uploaded from here, without waiting for `store` to have them.
  std::shared_ptr<const std::string> bytes;
  /// Its bytes already sent, as they were made, into a session of one
  /// destination: committed there instead of sent again.
  std::shared_ptr<StreamedUpload> streamed;
};

/// A fresh blob bigger than this is HEAD-checked all the same: another
/// builder may have pushed the same layer, and sending it again would cost
/// more than asking.
inline constexpr std::int64_t kFreshUploadLimit = std::int64_t{4} << 20;

class BlobPusher {
 public:
  /// `destinations`: the --tag references (one push per distinct
  /// repository). Clients are made, and the tags read (their manifests
  /// from `store` when there), here, on the caller's thread.
  BlobPusher(ImageTransfer& transfer, const std::vector<Reference>& destinations, const BlobStore& store,
             int jobs, std::chrono::steady_clock::time_point zero);
  /// Stops: queued blobs are dropped, running uploads end, threads joined.
  ~BlobPusher();
  BlobPusher(const BlobPusher&) = delete;
  BlobPusher& operator=(const BlobPusher&) = delete;

  /// Queues a blob for every destination (once per digest). Waits while
  /// the queue is full. Throws the first failed upload's Error.
  void add(PushItem item);
  /// Opens `n` upload sessions in each destination, on the pusher's
  /// threads, for fresh blobs still being made: their upload is then one
  /// PUT instead of a POST and a PUT. finish() closes those left unused.
  void open_sessions(int n);
  /// Waits until every queued blob is pushed; throws the first failed
  /// upload's Error. Returns the digests now in every destination.
  std::set<std::string> finish();
  /// Every push so far, in the order they ended.
  std::vector<UploadTiming> timings() const;
  /// What each destination's tag (Reference::str()) named when this began.
  std::map<std::string, TagContents> tags_read() const;

 private:
  struct Destination {
    Reference ref;
    RegistryClient* client = nullptr;
    /// What its tag names now; its blobs are pushed already, no HEAD.
    TagContents at_tag;
    std::vector<std::string> sessions;  ///< opened ahead, unused yet (under mu_)
  };
  void work();
  /// Pushes one blob to one destination; false when it is left to the final push.
  bool push_one(const PushItem& item, Destination& d);
  /// A session opened ahead in `d`, or "" (the upload opens its own).
  std::string take_session(Destination& d);
  void fail(std::exception_ptr e);

  ImageTransfer& transfer_;
  std::vector<Destination> destinations_;
  std::chrono::steady_clock::time_point zero_;
  std::size_t bound_;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::deque<PushItem> queue_;
  std::set<std::string> queued_;  ///< every digest ever added
  std::set<std::string> pushed_;  ///< in every destination
  std::size_t busy_ = 0;
  int sessions_wanted_ = 0;  ///< open_sessions' requests not taken by a thread yet
  bool stopping_ = false;
  std::exception_ptr error_;
  std::vector<UploadTiming> timings_;
  std::vector<std::thread> threads_;
};

}  // namespace dockless
