// Copying images between an OCI layout, a docker-archive and a registry:
// what `pull`, `push` and `copy` do. Every image passes through a local blob
// store (the destination layout's, or dockless's cache), so each blob is
// verified once and never fetched twice.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "oci/keychain.h"
#include "oci/platform.h"
#include "oci/registry_transport.h"
#include "src/image_location.h"

namespace dockless {

struct TransferOptions {
  RegistryOptions registry;
  KeychainOptions keychain;
  Platform platform;           ///< which manifest of an index to take
  bool all_platforms = false;  ///< keep the whole index
  int jobs = 4;                ///< parallel blob transfers
  std::uint64_t chunk_size = 0;  ///< 0: monolithic uploads
  bool quiet = false;
  std::filesystem::path report_file;  ///< JSON report; empty: none
  std::filesystem::path cache_dir;
};

/// Copies src to dst; returns the digest of what dst now holds at the top
/// (the manifest, or the index with --all-platforms).
Digest run_copy(const ImageLocation& src, const ImageLocation& dst, const TransferOptions& options);

}  // namespace dockless
