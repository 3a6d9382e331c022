// The end of a build: the image assembled from the base and the layers,
// its blobs marked used, the outputs and pushes written, the build cache
// for --cache-to, and the --report JSON.
#pragma once

#include <vector>

#include "oci/json_util.h"
#include "src/build/build_state.h"

namespace dockless {

/// The image's config and manifest, stored; returns the manifest's descriptor.
Descriptor assemble_image(BuildState& s);

/// Last-used times for `cache prune --keep-days`: every blob of the image.
void mark_image_used(BuildState& s, const Descriptor& manifest);

/// Writes each --output, then pushes each --tag with --push.
void write_outputs(BuildState& s, const Descriptor& manifest, const std::vector<ImageLocation>& outputs,
                   const std::vector<Reference>& tags);

/// --cache-to: this build's slots, and the other slots of the cache that
/// was there (a --skip variant keeps the full build's venvs cached).
void write_cache_to(BuildState& s);

/// --report FILE.json.
void write_report(const BuildState& s, const Digest& digest, double seconds);

/// The report's object for one image (digest, uv runs, base, layers, outputs...), into `w`.
void write_report_object(const BuildState& s, const Digest& digest, double seconds, json::Writer& w);

/// "2 uv runs, 1 step run": the summary line's counts.
std::string run_counts(const BuildState& s);

}  // namespace dockless
