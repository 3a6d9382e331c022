#include "base/error.h"

#include <cerrno>
#include <cstring>

namespace dockless {

void throw_errno(const std::string& what) { throw_errno(what, errno); }

void throw_errno(const std::string& what, int errnum) {
  throw Error(what + ": " + std::strerror(errnum));
}

}  // namespace dockless
