// The docker-archive transport: the tarball that `docker save` writes and
// `docker load` / `podman load` / `skopeo ... docker-archive:` read.
//
// A written archive holds two views of the same blobs, as Docker 25+ writes:
//   manifest.json   [{"Config":"blobs/sha256/<hex>","RepoTags":[...],"Layers":[...]}]
//   repositories    {"<repo>":{"<tag>":"<hex of the last layer blob>"}}
//   oci-layout, index.json, blobs/sha256/<hex>   an OCI image layout
// so loaders that know only Docker's legacy form and loaders that prefer the
// OCI layout both find the image.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "oci/blob_store.h"
#include "oci/descriptor.h"
#include "oci/reference.h"

namespace dockless {

/// "docker-archive:FILE[:REF]", as skopeo spells it. FILE cannot contain ':';
/// everything after the first ':' following FILE is REF: a reference with a
/// tag ("repo:tag", "localhost:5000/app:1"; a missing tag means "latest") or,
/// when reading, "@N" (the N-th image of manifest.json, from 0).
struct DockerArchiveRef {
  std::filesystem::path file;
  std::string ref;  ///< as given; empty when not given

  /// Throws UsageError when text does not start with "docker-archive:", FILE
  /// is empty, REF is empty after ':', REF is not a valid reference, or REF
  /// has a digest (an archive names images by tag only).
  static DockerArchiveRef parse(std::string_view text);
  std::string str() const;
};

/// The name Docker shows and writes in RepoTags for ref: docker.io's are
/// shortened ("docker.io/library/app:1" -> "app:1", "docker.io/u/app:1" ->
/// "u/app:1"), others are in full ("localhost/py:1"). Throws Error when ref
/// has a digest.
std::string docker_repo_tag(const Reference& ref);

/// Writes one image (its manifest, config and layers read from `store`,
/// each verified against its digest while copied) as a docker-archive at
/// `file`, atomically: a temp file beside it, fsynced, renamed. Nothing else
/// is written; on error no file (and no temp file) is left. Layers are stored
/// as they are in `store` (docker/podman load detect their compression).
/// Every repo tag is a reference ("app:1", "localhost:5000/app:1"); an empty
/// list gives RepoTags []. Same inputs -> same bytes: entries sorted by name,
/// mtime/owners/modes fixed. Throws Error for an index (one platform only),
/// a non-image manifest, or a missing or corrupt blob.
void write_docker_archive(const std::filesystem::path& file, const BlobStore& store,
                          const Descriptor& manifest, const std::vector<std::string>& repo_tags);

struct LoadedArchiveImage {
  Descriptor manifest;  ///< an image manifest stored in `into`, with its blobs
  std::vector<std::string> repo_tags;  ///< RepoTags of the image, as in manifest.json
};

/// Reads a docker-archive (a plain tar or one compressed with anything
/// libarchive reads) into `into`: Docker's legacy form (<id>/layer.tar,
/// <id>.json, symlinked layers), Docker 25+'s OCI form, or dockless's.
/// manifest.json is required. `ref` selects an image by RepoTags (compared
/// as normalised references, so "app:1" = "docker.io/library/app:1") or by
/// "@N"; empty selects the only image (else Error listing them).
///
/// When index.json names an OCI manifest (directly or through an image index)
/// with the selected image's config and layers, that manifest is used as it
/// is, so a round trip keeps the manifest digest. Otherwise an OCI manifest is
/// built: config from Config, layers in order, each with digest = sha256 of
/// its file and media type ...layer.v1.tar, +gzip or +zstd by the file's magic.
///
/// Every entry is first staged (streamed, hashed) in a temp store inside
/// into.root(); a blobs/sha256/<hex> entry whose bytes do not match is an
/// Error naming both digests. Only the selected image's blobs move into `into`,
/// and only when everything checked out: on any Error, nothing is stored.
LoadedArchiveImage read_docker_archive(const std::filesystem::path& file, const BlobStore& into,
                                       const std::string& ref = "");

}  // namespace dockless
