// Compressed gzip blocks of a layer, kept to make its next version: a block
// whose input (its dictionary, its data, the level, whether it is the last)
// is unchanged is not compressed again. With content-defined blocks
// (compression.h) an edit changes only the blocks around it, so a source
// tree's layer after a one-file edit costs the compression of one or two
// blocks instead of the whole tree.
//
// The blocks' bytes are not kept twice: the file beside the memo is an
// index (each block's key, CRC-32s and size) into the layer's blob, which
// the store has anyway. Saving after an edit writes ~100 bytes a block
// instead of the layer again.
//
// Reuse never changes a layer's bytes: ISA-L's output is a function of the
// block's input (the version of ISA-L is part of the index), so a reused
// block is the block compression would give.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "oci/digest.h"

namespace dockless {

class GzipBlockReuse {
 public:
  struct Block {
    std::uint32_t crc = 0;        ///< CRC-32 of the block's data
    std::string_view deflated;  ///< in the loaded layer's bytes
  };

  /// The key of a block's input.
  static std::string key_of(int level, bool last, std::string_view dict, std::string_view data);

  /// Where a layer's blob is (the store's path for its digest).
  using BlobPath = std::function<std::filesystem::path(const Digest&)>;

  /// Takes the blocks of the layer that save() indexed in `index`, reading
  /// the layer's blob from `blob_path`. A missing, damaged or foreign index
  /// or blob (another format, another ISA-L, a blob over the bound) gives
  /// none. Not thread-safe.
  void load(const std::filesystem::path& index, const BlobPath& blob_path);
  /// Replaces `index` with one of the blocks recorded since, which make up
  /// `layer` (between its gzip header and trailer). Not synced: a hint,
  /// checked whole when loaded. Nothing is written when none were recorded.
  void save(const std::filesystem::path& index, const Digest& layer) const;
  /// A loaded block with this key, or null. Thread-safe once loaded.
  const Block* find(const std::string& key) const;
  /// A block of the layer being made, in order; on one thread.
  void record(const std::string& key, std::uint32_t crc, const std::uint8_t* deflated, std::size_t size);
  /// How many find() calls found their block.
  std::size_t reused() const { return reused_.load(); }
  /// The deflated bytes loaded: about the size of the layer they came from.
  std::size_t loaded_bytes() const { return loaded_bytes_; }

 private:
  struct Recorded {
    std::string key;
    std::uint32_t crc = 0;          ///< of the block's data
    std::uint32_t size = 0;         ///< of its deflated bytes
    std::uint32_t deflated_crc = 0;  ///< of its deflated bytes
  };
  std::string layer_;  ///< the loaded layer's bytes; loaded_'s blocks point into it
  std::unordered_map<std::string, Block> loaded_;
  std::size_t loaded_bytes_ = 0;
  std::vector<Recorded> recorded_;
  std::size_t recorded_bytes_ = 0;
  bool over_bound_ = false;
  mutable std::atomic<std::size_t> reused_{0};
};

}  // namespace dockless
