// The layers of uv in the image: the uv binary at uv.uv-path, and the uv
// cache in parts by which environments use each entry.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "src/build/build_state.h"

namespace dockless {

/// The layer `name` holding uv at spec uv.uv-path.
std::vector<CachedLayer> write_uv_binary_layer(BuildState& s, const std::string& name);

/// The host uv cache in parts by which of `users` (environment names) use
/// each entry; each part is two layers, unpacked wheels apart from uv's
/// pointer files. A piece whose files an earlier build stored is reused.
std::vector<CachedLayer> write_uv_cache_layers(BuildState& s, const std::set<std::string>& users);

}  // namespace dockless
