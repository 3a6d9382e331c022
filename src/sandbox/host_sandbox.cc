// See host_sandbox.h.

#include "src/sandbox/host_sandbox.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "base/error.h"
#include "src/sandbox/child_process.h"
#include "src/sandbox/spec_checks.h"

namespace dockless::sandbox_detail {

namespace fs = std::filesystem;

SandboxResult run_host(const SandboxSpec& spec) {
  const std::string prefix = "sandbox (host): ";
  if (!spec.force_host && !running_in_container())
    throw Error(prefix +
                "refusing to run on this machine's own / outside a container (uv would install "
                "into its /opt, /root, ...); run dockless inside a container of the base image, "
                "or force it (--force)");
  check_common(spec, prefix, false);
  if (!spec.lower_layers.empty() || !spec.upper_dir.empty() || !spec.tmpfs.empty())
    throw UsageError(prefix +
                     "runs on this machine's / itself: it cannot stack layers, keep changes "
                     "or mount a tmpfs (use --isolation userns|chroot)");
  for (const auto& b : spec.binds) {
    std::error_code ec;
    if (!fs::equivalent(b.host, b.target, ec))
      throw Error(prefix + "host isolation uses the image paths as they are, so " +
                  b.host.string() + " must be " + b.target +
                  " itself (use that path, or --isolation userns|chroot)");
  }
  Steps steps;
  ExecPlan exec = make_exec_plan(spec, steps, spec.workdir);
  set_exec_user(exec, spec, {}, "/", steps);
  int step_net = -1;
  if (spec.network == Network::kNone) {
    if (::geteuid() != 0) throw Error(prefix + "network = none needs root here");
    step_net = steps.add("create a network namespace with only loopback");
  }
  auto [st, failure] = run_simple(spec, nullptr, -1, exec, prefix, step_net);
  if (failure) throw Error(prefix + steps.describe(*failure));
  SandboxResult r;
  r.status = status_code(st);
  return r;
}

}  // namespace dockless::sandbox_detail
