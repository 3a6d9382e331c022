// The project's source: where the spec and the source tree come from (a
// directory, or a git checkout), and the layer of the source tree, keyed
// by the digest of its uncompressed tar.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "layers/compression.h"
#include "layers/gzip_block_reuse.h"
#include "layers/ignore_rules.h"
#include "layers/layer_writer.h"
#include "layers/tar_writer.h"
#include "oci/blob_store.h"
#include "oci/streamed_upload.h"
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

/// The source tree's layer, keyed by the digest of its uncompressed tar,
/// learnt in one of three ways (a memo per tree under the cache, keyed by
/// the tree's place and tar options, holds its last stat digest and tar
/// digest):
///   - the stat walk matches the memo: no file is read;
///   - it does not (an edit): the layer is made at once, tar, hash and
///     compression in one pass into memory, since it is almost surely new
///     (the store gets it in write(), once the build is past its checks);
///   - no memo (a first build here): the tar is hashed and kept in memory,
///     and compressed only if no cache has the layer (write()).
/// Its gzip blocks are content-defined (GzipBlocking) and kept beside the
/// memo, so that an edit compresses again only the blocks around it; and
/// the layer's resume points with them, so that an edit's layer starts at
/// the last point before the first changed entry (the tree before it is
/// neither read nor hashed again).
class SourceLayer {
 public:
  /// `memo_dir` empty: no memo is read or written (--no-cache). `on_edit`,
  /// when set, is called on this thread as soon as the stat walk shows an
  /// edit, before the layer is made; the upload it may return (a --push
  /// build's) gets the layer's bytes as they are made.
  SourceLayer(const ProjectSource& source, std::int64_t mtime_clamp, const std::filesystem::path& memo_dir,
              const BlobStore& store, const CompressionOptions& compression,
              const std::function<std::shared_ptr<StreamedUpload>()>& on_edit = nullptr);
  ~SourceLayer();
  SourceLayer(const SourceLayer&) = delete;
  SourceLayer& operator=(const SourceLayer&) = delete;

  /// The digest of the uncompressed tar (the source slot's key input).
  const std::string& tar_digest() const { return tar_digest_; }
  /// Whether the tree's files were read (no memo matched its stat).
  bool read_tree() const { return made_.has_value() || copy_ != nullptr; }
  /// Whether the layer was compressed while learning the digest (an edited tree).
  bool made() const { return made_.has_value(); }
  /// The layer in `store`: the one made while learning the digest, or made now.
  LayerBlob write(const CompressionOptions& compression, const BlobStore& store) const;
  /// The layer made while learning the digest, with `compression`, and its
  /// bytes: an upload can start from memory before write() stores them.
  std::optional<std::pair<LayerBlob, std::shared_ptr<const std::string>>> made_in_memory(
      const CompressionOptions& compression) const;
  /// The upload on_edit returned, fed the made layer's bytes (null if none).
  std::shared_ptr<StreamedUpload> streamed() const { return streamed_; }
  /// Frees what is kept in memory (a cache has the layer).
  void drop_copy();
  /// Of an edited tree's layer: how many gzip blocks came from its last
  /// version (GzipBlockReuse) instead of being compressed again.
  std::size_t reused_blocks() const { return reused_blocks_; }
  /// Of an edited tree's layer: the tar offset it was taken up from (its
  /// last version's bytes before it kept as they were), or 0.
  std::uint64_t resumed_at() const { return resumed_at_; }

 private:
  std::string memo_identity(const ProjectSource& source) const;
  void hash_tree();
  /// The tree's tar: from the stat walk's entries, once (from `from`'s
  /// start entry when set), else a walk.
  void write_tree(ByteSink& sink, const GzipBlockReuse::Point* from = nullptr);
  /// The last build's point to take this layer up from, or null.
  const GzipBlockReuse::Point* resume_point(const GzipBlockReuse& last, int level) const;
  /// The points of the layer just made from the walk's tar, after those
  /// of `last` up to `from` (when taken up from there).
  std::vector<GzipBlockReuse::Point> points_of(const GzipResumable& made, const GzipBlockReuse* last,
                                               const GzipBlockReuse::Point* from) const;
  void compress_tree(const CompressionOptions& compression, std::shared_ptr<StreamedUpload> streamed);

  std::filesystem::path tree_;
  IgnoreRules rules_;
  std::vector<std::string> venv_dirs_;  ///< venvs inside the destination, relative to it
  TarOptions tar_;
  std::optional<LayerBlob> made_;  ///< an edited tree's layer, made with made_with_
  CompressionOptions made_with_;
  std::shared_ptr<const std::string> compressed_;  ///< its bytes, for write()
  std::unique_ptr<BoundedCopy> copy_;        ///< the tar, hashed only (no memo)
  std::unique_ptr<WalkedTree> walked_;       ///< the stat walk's entries
  bool walked_written_ = false;              ///< the tar was written from them (once only)
  /// Where the tar written from them has each entry's header, from entry
  /// first_offset_entry_ on, then the end-of-archive blocks.
  std::vector<std::uint64_t> offsets_;
  std::size_t first_offset_entry_ = 0;
  std::int64_t walk_began_ = 0;
  std::string tar_digest_;
  /// The index of the gzip blocks of the last layer of this tree, beside
  /// its memo ("" without one), and the store that has that layer.
  std::filesystem::path blocks_file_;
  GzipBlockReuse::BlobPath blob_path_;
  std::unique_ptr<GzipBlockReuse> blocks_;  ///< an edited tree's, saved by write()
  std::shared_ptr<StreamedUpload> streamed_;
  std::size_t reused_blocks_ = 0;
  std::uint64_t resumed_at_ = 0;
};

}  // namespace dockless
