#include "base/open_in_root.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

// Older C libraries do not know the number (the same on every architecture
// since Linux 5.x's unified syscall table).
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

namespace dockless {

namespace {

// Our own copy of the kernel's struct open_how: <linux/openat2.h> is missing
// from older kernel headers.
struct OpenHow {
  std::uint64_t flags;
  std::uint64_t mode;
  std::uint64_t resolve;
};
constexpr std::uint64_t kResolveNoMagiclinks = 0x02;
constexpr std::uint64_t kResolveInRoot = 0x10;
// The kernel's EAGAIN retries are bounded: a tree renamed without pause
// should fail, not hang us.
constexpr int kMaxRetries = 100;

}  // namespace

int openat2_in_root(int rootfd, const char* path, int flags) noexcept {
  OpenHow how{};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.resolve = kResolveInRoot | kResolveNoMagiclinks;
  const char* p = path[0] != '\0' ? path : ".";
  for (int tries = 0;; ++tries) {
    long fd = ::syscall(SYS_openat2, rootfd, p, &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if ((errno != EINTR && errno != EAGAIN) || tries >= kMaxRetries) return -1;
  }
}

}  // namespace dockless
