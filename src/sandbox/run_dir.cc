// See run_dir.h.

#include "src/sandbox/run_dir.h"

#include <cstdlib>

#include "base/error.h"
#include "base/file_util.h"

namespace dockless::sandbox_detail {

namespace fs = std::filesystem;

RunDir::RunDir(const fs::path& scratch, const std::string& prefix) {
  std::error_code ec;
  fs::create_directories(scratch, ec);
  std::string tmpl = (scratch / "sandbox-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw_errno(prefix + "create a directory in the scratch dir " + scratch.string());
  path_ = tmpl;
}

RunDir::~RunDir() {
  if (!keep_) remove_tree(path_);
}

}  // namespace dockless::sandbox_detail
