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
  void fetch_blob(const std::string& repo, const Descriptor& blob, const BlobStore& store,
                  const ProgressFn& progress = nullptr);

  /// Uploads the blob in `file` unless the repository has it. `mount_from`
  /// (a repository of the same registry, or "") is tried first as a
  /// cross-repository mount. `chunk_size` 0 means one PUT; otherwise PATCH
  /// chunks of at least that size (and at least OCI-Chunk-Min-Length).
  /// Tries a cross-repository mount alone: true when the registry mounted
  /// it (201); false otherwise (an upload session it offered is cancelled).
  bool mount_blob(const std::string& repo, const Digest& digest, const std::string& from);

  BlobPushOutcome push_blob(const std::string& repo, const Descriptor& blob,
                            const std::filesystem::path& file, const std::string& mount_from,
                            std::uint64_t chunk_size, const ProgressFn& progress = nullptr);

 private:
  /// POSTs a new upload session; returns its absolute Location.
  std::string start_upload(const std::string& repo, const std::vector<std::string>& scopes,
                           std::uint64_t* min_chunk);
  void upload_monolithic(const std::string& repo, const std::vector<std::string>& scopes,
                         const std::string& location, const Descriptor& blob,
                         const std::filesystem::path& file, const ProgressFn& progress);
  void upload_chunked(const std::string& repo, const std::vector<std::string>& scopes,
                      std::string location, const Descriptor& blob,
                      const std::filesystem::path& file, std::uint64_t chunk_size,
                      const ProgressFn& progress);
  [[noreturn]] void fail(const std::string& what, const HttpResponse& r) const;

  RegistryTransport transport_;
};

}  // namespace dockless
