// A blob copied from one registry to another without landing on disk: a
// download thread feeds a bounded pipe that the upload reads from, so
// memory stays at a few MiB whatever the blob's size.
#pragma once

#include <string>

#include "oci/descriptor.h"
#include "oci/registry_client.h"

namespace dockless {

/// Uploads `blob` of from/from_repo to to/to_repo as one monolithic upload
/// whose body is the download, verified on the way (a wrong digest aborts
/// the upload before its last byte). Each upload try downloads anew.
void stream_blob_between(RegistryClient& from, const std::string& from_repo, RegistryClient& to,
                         const std::string& to_repo, const Descriptor& blob,
                         const ProgressFn& progress = nullptr);

}  // namespace dockless
