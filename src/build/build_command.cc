#include "src/build/build_command.h"

#include "src/build/build_executor.h"

namespace dockless {

Digest run_build(const BuildOptions& options) { return execute_build(options); }

}  // namespace dockless
