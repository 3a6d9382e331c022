// Helpers shared by the unit tests: scratch directories and small file makers.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace dockless::test {

/// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// Writes content to path, creating parent directories.
void write_text(const std::filesystem::path& path, std::string_view content);

}  // namespace dockless::test
