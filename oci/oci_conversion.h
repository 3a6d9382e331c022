// Docker schema2 -> OCI, for writing into an OCI image layout: skopeo and
// podman accept only OCI manifests there. Media types are renamed; config
// and layer blobs keep their bytes (and digests); the manifest gets a new
// digest, as with `skopeo copy docker://... oci:...`.
#pragma once

#include <optional>
#include <string>

#include "oci/image_index.h"
#include "oci/manifest.h"

namespace dockless {

/// The OCI form of a Docker schema2 manifest; nullopt when it is OCI already.
std::optional<Manifest> docker_manifest_to_oci(const Manifest& m);

/// The OCI form of a Docker manifest list, whose entries are replaced by the
/// caller; nullopt when it is OCI already.
std::optional<ImageIndex> docker_index_to_oci(const ImageIndex& index);

}  // namespace dockless
