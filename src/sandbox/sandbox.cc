// The sandbox uv runs in. Three modes (see sandbox.h and DESIGN.md "Isolation
// modes"), one file pair each: userns_sandbox, chroot_sandbox, host_sandbox.
// All share the fork/exec plumbing in child_process: the output pump (one
// pipe for stdout+stderr, split into lines) and the failure protocol (a
// child that cannot set up writes a ChildFailure record to a close-on-exec
// pipe and exits, and the parent turns the record into one Error line).

#include "src/sandbox/sandbox.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "base/error.h"
#include "src/sandbox/chroot_sandbox.h"
#include "src/sandbox/host_sandbox.h"
#include "src/sandbox/userns_sandbox.h"

namespace dockless {

Isolation parse_isolation(std::string_view text) {
  if (text == "userns") return Isolation::kUserns;
  if (text == "chroot") return Isolation::kChroot;
  if (text == "host") return Isolation::kHost;
  throw UsageError("unknown isolation '" + std::string(text) + "' (expected userns, chroot or host)");
}

int run_in_sandbox(const SandboxSpec& spec) { return run_sandbox(spec).status; }

SandboxResult run_sandbox(const SandboxSpec& spec) {
  switch (spec.isolation) {
    case Isolation::kUserns:
      return sandbox_detail::run_userns(spec);
    case Isolation::kChroot:
      return sandbox_detail::run_chroot(spec);
    case Isolation::kHost:
      return sandbox_detail::run_host(spec);
  }
  throw UsageError("unknown isolation mode");
}

bool running_in_container() {
  if (const char* c = std::getenv("container"); c != nullptr && *c != '\0') return true;
  if (::access("/.dockerenv", F_OK) == 0 || ::access("/run/.containerenv", F_OK) == 0) return true;
  std::ifstream in("/proc/1/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    for (const char* word : {"kubepods", "docker", "containerd", "libpod"})
      if (line.find(word) != std::string::npos) return true;
  }
  return false;
}

}  // namespace dockless
