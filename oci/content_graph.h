// What one manifest or index references, read from a blob store: the graph
// a copy must move (child manifests and nested indexes, configs, layers and
// any other blobs) in the order a destination must receive it. Manifests of
// any kind take part: images, artifacts (an artifactType or a config that is
// not an image config) and indexes; their bytes are never re-serialised.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "oci/blob_store.h"
#include "oci/descriptor.h"

namespace dockless {

/// Manifests larger than this are refused, as containerd does.
inline constexpr std::size_t kMaxManifestBytes = 4 << 20;
/// How deep indexes may nest (an index of indexes of manifests is depth 2).
inline constexpr int kMaxGraphDepth = 8;

struct ContentGraph {
  /// Every manifest and index, children before the indexes that list them,
  /// the top last; each once.
  std::vector<Descriptor> manifests;
  /// Every blob (configs, layers, artifact blobs), each once.
  std::vector<Descriptor> blobs;
};

/// True for the media types of a manifest or an index (OCI or Docker).
bool is_manifest_like(const std::string& media_type);

/// The graph under `top`, whose manifests must all be in `store` (Error
/// naming the first that is not). `what` names the source in errors.
/// Foreign (non-distributable) layers with URLs are left out.
ContentGraph content_graph(const BlobStore& store, const Descriptor& top, const std::string& what);

/// The direct children of an index or the blobs of a manifest, from its
/// bytes: what a loader fetches next. Checks the document's mediaType
/// against `d` when both are given.
std::vector<Descriptor> children_of(const Descriptor& d, const std::string& bytes);

/// Reads a manifest's bytes from `store`: bounded (kMaxManifestBytes) and
/// verified against its digest and the descriptor's size.
std::string read_manifest(const BlobStore& store, const Descriptor& d, const std::string& what);

/// Hashes the blob in `store` and checks it against d's digest and size.
void verify_blob(const BlobStore& store, const Descriptor& d, const std::string& what);

/// True when the manifest's config is an image config (OCI or Docker) and
/// its layers are layers: something `docker load` or a runtime can use.
bool is_image_manifest(const std::string& bytes);

}  // namespace dockless
