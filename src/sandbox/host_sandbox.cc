// See host_sandbox.h.

#include "src/sandbox/host_sandbox.h"

#include <filesystem>
#include <string>
#include <system_error>

#include "base/error.h"
#include "src/sandbox/child_process.h"
#include "src/sandbox/spec_checks.h"

namespace dockless::sandbox_detail {

namespace fs = std::filesystem;

int run_host(const SandboxSpec& spec) {
  const std::string prefix = "sandbox (host): ";
  if (!spec.force_host && !running_in_container())
    throw Error(prefix +
                "refusing to run on this machine's own / outside a container (uv would install "
                "into its /opt, /root, ...); run dockless inside a container of the base image, "
                "or force it (--force)");
  check_common(spec, prefix, false);
  for (const auto& b : spec.binds) {
    std::error_code ec;
    if (!fs::equivalent(b.host, b.target, ec))
      throw Error(prefix + "host isolation uses the image paths as they are, so " +
                  b.host.string() + " must be " + b.target +
                  " itself (use that path, or --isolation userns|chroot)");
  }
  Steps steps;
  ExecPlan exec = make_exec_plan(spec, steps, spec.workdir);
  auto [st, failure] = run_simple(spec, nullptr, -1, exec, prefix);
  if (failure) throw Error(prefix + steps.describe(*failure));
  return status_code(st);
}

}  // namespace dockless::sandbox_detail
