#include "src/build/uv_tool.h"

#include <sys/stat.h>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/digest.h"
#include "src/build/uv_runner.h"
#include "src/cache/last_used.h"

namespace dockless {

namespace fs = std::filesystem;

UvTool identify_uv(const fs::path& binary, const fs::path& cache_dir) {
  UvTool uv;
  uv.binary = binary;
  struct stat st;
  if (::stat(binary.c_str(), &st) != 0) throw_errno("cannot stat " + binary.string());
  std::string identity = binary.string() + "\n" + std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) +
                         " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
                         std::to_string(st.st_mtim.tv_nsec) + " " + std::to_string(st.st_ctim.tv_sec) + "." +
                         std::to_string(st.st_ctim.tv_nsec);
  fs::path memo = cache_dir / "tools" / ("uv-" + sha256_of(identity).hex());
  try {
    std::string text = read_file(memo);
    std::size_t nl = text.find('\n');
    if (nl != std::string::npos && text.size() > nl + 1) {
      mark_used(memo);
      uv.sha = text.substr(0, nl);
      uv.version = text.substr(nl + 1, text.find('\n', nl + 1) - nl - 1);
    }
  } catch (const Error&) {
  }
  if (uv.sha.empty() || uv.version.rfind("uv ", 0) != 0) {
    uv.version = uv_version(binary);
    uv.sha = sha256_of(read_file(binary)).str();
    fs::create_directories(memo.parent_path());
    write_file_atomic(memo, uv.sha + "\n" + uv.version + "\n");
  }
  uv.short_version = uv.version.substr(3, uv.version.find(' ', 3) - 3);  // "uv 0.13.9 (...)"
  return uv;
}

}  // namespace dockless
