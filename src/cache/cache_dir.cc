#include "src/cache/cache_dir.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

#include "base/error.h"

namespace dockless {

std::filesystem::path default_cache_dir() {
  if (const char* d = std::getenv("DOCKLESS_CACHE_DIR"); d != nullptr && *d != '\0') return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x == '/')
    return std::filesystem::path(x) / "dockless";
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr) home = pw->pw_dir;
  }
  if (home == nullptr || *home == '\0')
    throw Error("cannot find a cache directory: set --cache-dir or XDG_CACHE_HOME");
  return std::filesystem::path(home) / ".cache" / "dockless";
}

}  // namespace dockless
