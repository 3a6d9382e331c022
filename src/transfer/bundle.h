// `dockless bundle` and `dockless unbundle`: everything a build inside an
// air gap needs (images, build caches, the lock's wheels, a Python archive)
// carried as ONE OCI layout (a directory or a tar of it), and pushed from it
// into the gap's registry under a prefix, with the same tags and digests.
//
// Each index.json entry records where it came from and where it goes:
//   org.opencontainers.image.ref.name  REPO:TAG (or REPO@DIGEST), the
//                                      repository path without the registry:
//                                      unbundle pushes it to TO/REPO:TAG
//   io.containerd.image.name           the full source reference
//                                      (registry.corp:5000/team/base:12), for
//                                      what came from a registry
//   dev.dockless.bundle.kind           image, cache, wheelhouse,
//                                      python-archive or referrer
//   dev.dockless.bundle.source         the full source reference, the
//                                      uv.lock or the archive file it was made of
// Referrers are untagged entries (as copy writes them); unbundle pushes each
// to every repository that holds its subject.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "src/transfer/progress_events.h"
#include "src/transfer/transfer.h"

namespace dockless {

namespace bundle_annotation {
inline constexpr const char* kRefName = "org.opencontainers.image.ref.name";
inline constexpr const char* kImageName = "io.containerd.image.name";
inline constexpr const char* kKind = "dev.dockless.bundle.kind";
inline constexpr const char* kSource = "dev.dockless.bundle.source";
}  // namespace bundle_annotation

namespace media_type {
inline constexpr std::string_view kPythonArchive = "application/vnd.dockless.python-archive.v1";
}

/// Counts what a transfer's blobs came to (from their progress events) and
/// passes every event on to the real sink.
class TransferTally : public ProgressSink {
 public:
  explicit TransferTally(ProgressSink* next) : next_(next) {}
  void report(const ProgressEvent& event) override;
  /// Blobs moved (pulled, pushed) and their bytes; blobs already there.
  std::size_t moved() const { return moved_; }
  std::uint64_t moved_bytes() const { return moved_bytes_; }
  std::size_t present() const { return present_; }
  std::uint64_t present_bytes() const { return present_bytes_; }

 private:
  ProgressSink* next_;
  std::mutex mu_;
  std::map<std::string, std::uint64_t> sizes_;
  std::size_t moved_ = 0, present_ = 0;
  std::uint64_t moved_bytes_ = 0, present_bytes_ = 0;
};

struct BundleOptions {
  TransferOptions transfer;  ///< all_platforms, platform, referrers as for copy
  std::vector<std::string> images, caches;  ///< registry references
  std::filesystem::path wheels_project;     ///< empty: no wheelhouse
  std::string wheels_ref;                   ///< REPO[:TAG]; empty: wheels/<project dir name>:latest
  std::vector<std::filesystem::path> python_archives;
  std::filesystem::path output;  ///< a directory, or FILE.tar
};

struct BundleSummary {
  std::size_t entries = 0, manifests = 0, blobs = 0;
  std::uint64_t bytes = 0;
  std::size_t fetched = 0, present = 0;  ///< blobs fetched now / already in the bundle
  std::uint64_t fetched_bytes = 0;
  std::string str() const;
};

/// Writes the bundle; resumable: a rerun after an interruption keeps what
/// its work directory (the output directory, or FILE.tar.partial) holds.
BundleSummary run_bundle(const BundleOptions& options);

struct UnbundleOptions {
  TransferOptions transfer;
  std::filesystem::path bundle;  ///< a directory or a tar
  std::string to;                ///< REGISTRY[/PREFIX]
  bool dry_run = false;
};

struct UnbundleSummary {
  std::size_t entries = 0, manifests = 0, blobs = 0;
  std::uint64_t bytes = 0;
  std::size_t uploaded = 0, present = 0;  ///< blobs pushed now / already in the registry
  std::uint64_t uploaded_bytes = 0;
  std::vector<std::string> plan;  ///< "SOURCE -> DESTINATION", one per tagged entry
  bool dry_run = false;  ///< nothing was pushed: str() leaves out the upload figures
  std::string str() const;
};

/// Pushes every entry of the bundle to TO/<its ref name>, referrers after
/// their subjects. Resumable and idempotent (blobs the registry has are
/// skipped). Error (one line) on a bundle that is not an OCI layout, a
/// missing blob, a blob whose bytes do not match its digest; UsageError
/// when `to` is not REGISTRY[/PREFIX].
UnbundleSummary run_unbundle(const UnbundleOptions& options);

}  // namespace dockless
