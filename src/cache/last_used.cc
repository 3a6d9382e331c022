#include "src/cache/last_used.h"

#include <fcntl.h>
#include <sys/stat.h>

namespace dockless {

void mark_used(const std::filesystem::path& path) {
  ::utimensat(AT_FDCWD, path.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
}

}  // namespace dockless
