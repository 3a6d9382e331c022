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
// It also keeps the layer's resume points (GzipResumePoint), each with
// what the tar's producer needs to know to start there: which entries come
// before it, a digest of their stat (the same records as stat_directory_tree's),
// and from which entry's header the tar is written again. A tree whose first
// entries are unchanged up to a point is then not read, hashed or
// compressed up to there.
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

#include "layers/compression.h"
#include "oci/digest.h"

namespace dockless {

class GzipBlockReuse {
 public:
  struct Block {
    std::uint32_t crc = 0;        ///< CRC-32 of the block's data
    std::string_view deflated;  ///< in the loaded layer's bytes
  };

  /// A resume point of a tree's layer, with what its tar producer needs.
  struct Point {
    GzipResumePoint gzip;
    std::uint64_t entries = 0;  ///< tree entries whose bytes are before the point
    Digest entries_digest;      ///< of their stat records
    std::uint64_t start_entry = 0;   ///< the entry whose header is the last at or before the dictionary
    std::uint64_t start_offset = 0;  ///< that header's offset in the tar
    friend bool operator==(const Point&, const Point&) = default;
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
  /// The loaded layer's points, the gzip level it was made at, and when the
  /// walk of its tree began (ns since the epoch; a file changed shortly
  /// before may change again without a new stat).
  const std::vector<Point>& points() const { return points_; }
  int points_level() const { return points_level_; }
  std::int64_t points_walked_ns() const { return points_walked_ns_; }
  /// The loaded layer's bytes (its blob).
  std::string_view layer_bytes() const { return layer_; }
  /// The layer being made starts at `point` of the loaded one: the blocks
  /// before it are recorded as the loaded ones.
  void take_up_from(const Point& point);
  /// The points of the layer being made, saved with its blocks.
  void set_points(std::vector<Point> points, int level, std::int64_t walked_ns);
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
  std::vector<Recorded> loaded_order_;  ///< the loaded blocks, in order
  std::vector<Point> points_;
  int points_level_ = 0;
  std::int64_t points_walked_ns_ = 0;
  std::vector<Point> new_points_;
  int new_level_ = 0;
  std::int64_t new_walked_ns_ = 0;
  std::vector<Recorded> recorded_;
  std::size_t recorded_bytes_ = 0;
  bool over_bound_ = false;
  mutable std::atomic<std::size_t> reused_{0};
};

}  // namespace dockless
