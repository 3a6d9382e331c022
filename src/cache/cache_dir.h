// dockless's cache directory: --cache-dir, else $DOCKLESS_CACHE_DIR, else
// $XDG_CACHE_HOME/dockless, else ~/.cache/dockless.
#pragma once

#include <filesystem>

namespace dockless {

std::filesystem::path default_cache_dir();

}  // namespace dockless
