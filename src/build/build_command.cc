#include "src/build/build_command.h"

#include "src/build/multi_platform.h"

namespace dockless {

Digest run_build(const BuildOptions& options) { return run_platform_builds(options); }

}  // namespace dockless
