// What a registry tag names now (the image pushed there last): its digest
// and the blobs of its image(s). The registry keeps those blobs in the
// repository while a manifest refers to them, so a push of a rebuilt image
// need not HEAD each one: most of a rebuild's blobs are there already.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "oci/blob_store.h"
#include "oci/digest.h"
#include "oci/reference.h"
#include "oci/registry_client.h"

namespace dockless {

struct TagContents {
  std::optional<Digest> digest;
  std::set<std::string> blobs;  ///< configs and layers, "sha256:..."
};

/// One HEAD of `ref`'s tag, then each manifest from `store` when it is
/// there, else a GET (an index's images too). Empty when the tag is new, is
/// a digest reference, or cannot be read: it is only a shortcut, and every
/// blob is then checked as usual.
TagContents read_tag(RegistryClient& client, const Reference& ref, const BlobStore& store);

}  // namespace dockless
