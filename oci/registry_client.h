// The OCI distribution API for one registry: manifests and blobs, pulled
// with verification and resume, pushed with existence checks, cross-repo
// mounts and monolithic or chunked uploads. Thread-safe: parallel blob
// transfers share one client.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "oci/blob_store.h"
#include "oci/descriptor.h"
#include "oci/registry_transport.h"

namespace dockless {

struct ManifestData {
  std::string bytes;
  std::string media_type;
  Digest digest;
};

enum class BlobPushOutcome { kSkipped, kMounted, kUploaded };

/// Bytes done so far of a transfer.
using ProgressFn = std::function<void(std::uint64_t done)>;

/// One upload try's body: fills buf, returns the bytes written (0 only at
/// the end).
using BlobReader = std::function<std::size_t(char* buf, std::size_t size)>;
/// Opens bytes [offset, offset + length) of a blob for one upload try.
using BlobOpener = std::function<BlobReader(std::uint64_t offset, std::uint64_t length)>;

class RegistryClient {
 public:
  RegistryClient(std::string registry, RegistryOptions options, const Keychain& keychain);

  const std::string& registry() const { return transport_.registry(); }

  /// GET a manifest or index by tag or digest, verified against the digest
  /// when `ref` is one (and against Docker-Content-Digest when sent).
  ManifestData get_manifest(const std::string& repo, const std::string& ref);

  /// HEAD a manifest: its digest, size and media type, or nullopt on 404.
  std::optional<Descriptor> head_manifest(const std::string& repo, const std::string& ref);

  /// PUT a manifest under `ref` (tag or digest); returns its digest.
  /// `oci_subject`, when given, receives the OCI-Subject header of the
  /// answer: a registry sends it when its referrers API indexed the subject.
  Digest put_manifest(const std::string& repo, const std::string& ref, const std::string& bytes,
                      const std::string& media_type, std::string* oci_subject = nullptr);

  /// The referrers API (GET /v2/NAME/referrers/DIGEST): the referrers of
  /// `subject`, or nullopt when the registry has no such API (404, 400,
  /// 405). Bounded like a manifest. In oci/registry_referrers.cc.
  std::optional<std::vector<Descriptor>> referrers_api(const std::string& repo, const Digest& subject);

  /// GET a manifest or index like get_manifest, nullopt on 404 (a
  /// referrers tag that does not exist yet).
  std::optional<ManifestData> find_manifest(const std::string& repo, const std::string& ref);

  bool blob_exists(const std::string& repo, const Digest& digest);

  /// Downloads a blob into `store`, verified while streaming; an interrupted
  /// download resumes with Range where the registry allows it. On a digest
  /// or size mismatch nothing is stored and Error names both digests.
  /// `follower`, when given, reads the blob as it lands (BlobWriter::follow;
  /// a restarted download abandons it).
  void fetch_blob(const std::string& repo, const Descriptor& blob, const BlobStore& store,
                  const ProgressFn& progress = nullptr, std::shared_ptr<GrowingFile> follower = nullptr);

  /// Downloads a blob into `sink`, each byte once and in order, verified
  /// while streaming and resumed like fetch_blob. A wrong digest or size
  /// throws before the sink gets the last bytes, so what it feeds (an
  /// upload to another registry) never completes with bad content.
  void stream_blob(const std::string& repo, const Descriptor& blob,
                   const std::function<void(const char*, std::size_t)>& sink);

  /// Uploads the blob in `file` unless the repository has it. `mount_from`
  /// (a repository of the same registry, or "") is tried first as a
  /// cross-repository mount. `chunk_size` 0 means one PUT; otherwise PATCH
  /// chunks of at least that size (and at least OCI-Chunk-Min-Length).
  /// Tries a cross-repository mount alone: true when the registry mounted
  /// it (201); false otherwise (an upload session it offered is cancelled).
  bool mount_blob(const std::string& repo, const Digest& digest, const std::string& from);

  /// With `verify`, a monolithic upload hashes the file as it sends it and
  /// aborts before the last byte if the digest is wrong (a chunked one
  /// relies on the registry's check of ?digest=).
  BlobPushOutcome push_blob(const std::string& repo, const Descriptor& blob,
                            const std::filesystem::path& file, const std::string& mount_from,
                            std::uint64_t chunk_size, const ProgressFn& progress = nullptr,
                            bool verify = false);

  /// Uploads the blob in `file` without asking whether the repository has
  /// it (a blob just made: the answer is almost always no), retried like
  /// push_blob's; in `session` (from open_upload) when not "".
  void upload_blob(const std::string& repo, const Descriptor& blob, const std::filesystem::path& file,
                   std::uint64_t chunk_size, const ProgressFn& progress = nullptr,
                   const std::string& session = "");

  /// upload_blob of a blob held in memory, in one PUT.
  void upload_bytes(const std::string& repo, const Descriptor& blob, std::string_view bytes,
                    const ProgressFn& progress = nullptr, const std::string& session = "");

  /// Opens an upload session (POST) for a blob not known yet: a build opens
  /// one while it still makes the blob, so that the upload is one request.
  /// Returns its absolute location.
  std::string open_upload(const std::string& repo);
  /// Closes a session that will not be used (DELETE, best effort).
  void cancel_upload(const std::string& repo, const std::string& session);
  /// Sends into `session` everything `body` gives until it returns 0, in
  /// one PATCH of unknown length (chunked), as the bytes are made. Returns
  /// the session's next location; `received` gets the byte count the
  /// registry says it holds. Not retried: the caller uploads again instead.
  std::string stream_into(const std::string& repo, const std::string& session, const BlobReader& body,
                          std::uint64_t* received);
  /// Ends a session holding all of `blob`'s bytes: PUT ?digest= with no body.
  void commit_upload(const std::string& repo, const std::string& session, const Descriptor& blob);

  /// Uploads a blob whose bytes come from `open` (called once per try, e.g.
  /// a stream from another registry) as one monolithic upload, retried like
  /// push_blob's. No existence check or mount: the caller tried those.
  void upload_blob_stream(const std::string& repo, const Descriptor& blob,
                          const std::function<BlobReader()>& open);

 private:
  /// Where a download goes: its size so far (the offset of the next byte),
  /// the next bytes, and "the body starts over from byte 0".
  struct DownloadTarget {
    std::function<std::uint64_t()> size;
    std::function<void(const char*, std::size_t)> write;
    std::function<void()> restart;
  };
  void download(const std::string& repo, const Descriptor& blob, const DownloadTarget& target);
  /// Uploads (after a mount offered `location`, or in a new session) with
  /// retries; monolithic unless chunk_size says otherwise.
  void upload_with_retries(const std::string& repo, const std::vector<std::string>& scopes,
                           std::string location, const Descriptor& blob, const BlobOpener& open,
                           std::uint64_t chunk_size);
  /// upload_with_retries of the blob in `file` (hashed as it is sent when `verify`).
  void upload_file(const std::string& repo, const std::vector<std::string>& scopes, const std::string& location,
                   const Descriptor& blob, const std::filesystem::path& file, std::uint64_t chunk_size,
                   const ProgressFn& progress, bool verify);
  /// POSTs a new upload session; returns its absolute Location.
  std::string start_upload(const std::string& repo, const std::vector<std::string>& scopes,
                           std::uint64_t* min_chunk);
  void upload_monolithic(const std::string& repo, const std::vector<std::string>& scopes,
                         const std::string& location, const Descriptor& blob,
                         const BlobOpener& open);
  void upload_chunked(const std::string& repo, const std::vector<std::string>& scopes,
                      std::string location, const Descriptor& blob, const BlobOpener& open,
                      std::uint64_t chunk_size);
  /// PUT ?digest= with no body: the session's bytes become `blob`.
  void finish_session(const std::string& what, const std::vector<std::string>& scopes, const std::string& session,
                      const Descriptor& blob, bool retry);
  /// DELETEs an upload session, best effort.
  void cancel_session(const std::vector<std::string>& scopes, const std::string& session);
  [[noreturn]] void fail(const std::string& what, const HttpResponse& r) const;

  RegistryTransport transport_;
};

}  // namespace dockless
