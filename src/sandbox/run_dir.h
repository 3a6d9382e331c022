// The scratch directory of one sandbox run.
#pragma once

#include <filesystem>
#include <string>

namespace dockless::sandbox_detail {

/// A fresh directory for one sandbox run under the caller's scratch dir,
/// removed afterwards unless keep() was called.
class RunDir {
 public:
  /// Throws Error starting with prefix when the directory cannot be made.
  RunDir(const std::filesystem::path& scratch, const std::string& prefix);
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;
  ~RunDir();
  const std::filesystem::path& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

}  // namespace dockless::sandbox_detail
