#include "tests/test_support.h"

#include <stdlib.h>

#include <fstream>
#include <stdexcept>

#include "base/file_util.h"

namespace dockless::test {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "dockless-test-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  // Tests make read-only dirs; remove_tree gives write back first.
  remove_tree(path_);
}

void write_text(const std::filesystem::path& path, std::string_view content) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace dockless::test
