// --push as a pipeline: each layer's upload starts as soon as its blob is
// final (src/transfer/blob_pusher.h), while the build makes later layers;
// the base's layers go (mounted or HEAD-checked) right after the base is
// read, and the config as soon as the image is assembled, beside the last
// layers' uploads. The final push then writes the manifest once every blob
// is in, and skips what went ahead. A failed upload fails the build
// before any manifest is pushed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "oci/reference.h"
#include "src/build/build_state.h"

namespace dockless {

/// Starts the uploads of a build with --push (no-op otherwise): the base's
/// layers first, and `fresh_ahead` upload sessions opened for small blobs
/// the build is about to make (BlobPusher::open_sessions).
void start_push_pipeline(BuildState& s, const std::vector<Reference>& tags, int fresh_ahead);

/// Hands a layer the image ships to the uploads (no-op without --push).
/// `made_now`: this build made it (no cache had it), so the registry most
/// likely lacks it too (PushItem::fresh). Throws a failed upload's Error.
/// `bytes`: the layer's bytes, held by the build (uploaded from there);
/// `streamed`: an upload they were sent into as they were made.
void push_layer_ahead(BuildState& s, const CachedLayer& layer, bool made_now = false,
                      std::shared_ptr<const std::string> bytes = nullptr,
                      std::shared_ptr<StreamedUpload> streamed = nullptr);

/// Hands the config of the image being assembled (its bytes, before they
/// are stored) to the uploads: it goes beside the last layers' (a registry
/// takes milliseconds to finish even a tiny blob's upload), not after them.
void push_config_ahead(BuildState& s, const Descriptor& config, std::shared_ptr<const std::string> bytes);

/// Waits for every upload (throws the first failure's Error) and keeps
/// their timings and the blobs they pushed for the final push and the report.
void finish_push_pipeline(BuildState& s);

}  // namespace dockless
