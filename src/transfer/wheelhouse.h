// The wheelhouse artifact (docs: /work/wheelhouse-format.md, README "bundle"):
// the wheels and sdists a uv.lock names, downloaded from the URLs the lock
// gives, each checked against the lock's sha256, as one OCI artifact whose
// layer digests ARE the lock's hashes. The same lock gives the same manifest.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "oci/blob_store.h"
#include "oci/descriptor.h"
#include "oci/registry_transport.h"

namespace dockless {

namespace media_type {
inline constexpr std::string_view kWheelhouse = "application/vnd.dockless.wheelhouse.v1";
inline constexpr std::string_view kPythonWheel = "application/vnd.dockless.python.wheel";
inline constexpr std::string_view kPythonSdist = "application/vnd.dockless.python.sdist";
inline constexpr std::string_view kOciEmpty = "application/vnd.oci.empty.v1+json";
}  // namespace media_type

/// One distribution file of a uv.lock.
struct LockedFile {
  std::string name;  ///< the file name (last URL path segment, decoded)
  std::string url;
  Digest digest;     ///< the lock's hash
  std::int64_t size = -1;  ///< -1 when the lock gives none
  bool wheel = false;
};

/// Every wheel and sdist with a URL in the uv.lock text, once per digest,
/// sorted by file name. Files without a URL (path or git sources, the
/// project itself) are not listed. Throws Error naming the lock on bad TOML
/// or a file entry without a sha256 hash.
std::vector<LockedFile> locked_files(std::string_view lock_text, const std::string& what);

/// Downloads `file` into `store` unless it is there, following redirects,
/// with the TLS settings of `options` (--ca-cert, --insecure-registry hosts)
/// and libcurl's proxy variables. A body whose sha256 or size differs from
/// the lock is never stored: Error names the file, the URL and both digests.
/// Returns the bytes downloaded (0 when the store had it).
std::uint64_t download_locked_file(const LockedFile& file, const BlobStore& store,
                                   const RegistryOptions& options);

/// The wheelhouse manifest for `files` (all in store, sizes known) made
/// from a lock whose bytes hash to lock_sha256_hex. Puts the empty config
/// blob into store. Returns the manifest's bytes.
std::string wheelhouse_manifest(const std::vector<LockedFile>& files, const std::string& lock_sha256_hex,
                                const BlobStore& store);

}  // namespace dockless
