// The project's source: where the spec and the source tree come from (a
// directory, or a git checkout), and the layer of the source tree, keyed
// by the digest of its uncompressed tar.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "layers/compression.h"
#include "layers/ignore_rules.h"
#include "layers/layer_writer.h"
#include "layers/tar_writer.h"
#include "oci/blob_store.h"
#include "src/build/build_command.h"
#include "src/build/build_spec.h"

namespace dockless {

struct ProjectSource {
  BuildSpec spec;
  std::filesystem::path tree;          ///< what the source layer holds
  std::filesystem::path project_root;  ///< where uv.lock and pyproject.toml are
  std::string git_url, git_commit;     ///< "" unless the source is a git checkout
  IgnoreRules ignore;
};

/// Reads the spec and finds the source tree: --git (the spec comes from the
/// repository at that ref), else the project directory, whose spec may name
/// a git source. Checkouts go below `work_dir`.
ProjectSource load_project_source(const BuildOptions& options, const std::filesystem::path& cache_dir,
                                  const std::filesystem::path& work_dir);

class BoundedCopy;

/// The source tree's layer. Made by hashing the tree's tar (one uncompressed
/// pass), so only a real change of content costs compression and upload;
/// the tar is kept in memory up to a limit for write().
class SourceLayer {
 public:
  SourceLayer(const ProjectSource& source, std::int64_t mtime_clamp);
  ~SourceLayer();
  SourceLayer(const SourceLayer&) = delete;
  SourceLayer& operator=(const SourceLayer&) = delete;

  /// The digest of the uncompressed tar (the source slot's key input).
  const std::string& tar_digest() const { return tar_digest_; }
  /// Compresses the tar into `store`.
  LayerBlob write(const CompressionOptions& compression, BlobStore& store) const;
  /// Frees the kept tar (a cache has the layer).
  void drop_copy();

 private:
  std::filesystem::path tree_;
  IgnoreRules rules_;
  std::vector<std::string> venv_dirs_;  ///< venvs inside the destination, relative to it
  TarOptions tar_;
  std::unique_ptr<BoundedCopy> copy_;
  std::string tar_digest_;
};

}  // namespace dockless
