// Layer compression: gzip (ISA-L, parallel independent blocks) and zstd
// (libzstd's own workers), as ByteSinks that feed their output downstream.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "layers/byte_sink.h"
#include "oci/digest.h"

namespace dockless {

enum class Compression { kNone, kGzip, kZstd };

/// Parses "gzip", "zstd" or "none"; throws Error otherwise.
Compression parse_compression(std::string_view name);
std::string_view compression_name(Compression c);

struct CompressionOptions {
  Compression kind = Compression::kGzip;
  /// 0 means the default for the kind. gzip: 1-3 (ISA-L levels); zstd: 1-19.
  int level = 0;
  /// Worker threads; 0 means one per online CPU. The output bytes never depend
  /// on this: gzip blocks have a fixed size and zstd's output is the same for
  /// any worker count >= 1. So a layer digest is the same on every machine.
  int threads = 0;
};

/// The ISA-L level gzip compresses at for `level` (0: the default);
/// throws Error when out of range.
int gzip_level(int level);

class GzipBlockReuse;

/// Where a content-defined gzip layer can be taken up again: the start of
/// one of its blocks after the first. A later version of the layer whose
/// tar is the same up to tar_offset starts there: the blob up to
/// blob_offset is the old one's, and the tar before it is not read again.
struct GzipResumePoint {
  std::int64_t block = 0;  ///< the index of the block that starts here
  std::uint64_t tar_offset = 0;
  std::uint64_t blob_offset = 0;  ///< gzip header included
  std::uint32_t crc = 0;          ///< CRC-32 of the tar before tar_offset
  /// The hashes of the tar and the blob at the last 64-byte boundary at or
  /// before the offsets (the bytes between are fed again on resume).
  Sha256::State tar_hash, blob_hash;
  friend bool operator==(const GzipResumePoint&, const GzipResumePoint&) = default;
};

/// Set in GzipBlocking: the compressor hashes the tar and the blob itself
/// (no HashingSink around it) and notes a GzipResumePoint at each block
/// boundary; it can also start at such a point instead of the beginning.
struct GzipResumable {
  /// In: start at this point of an earlier version (null: the beginning).
  /// The caller has written that version's blob up to from->blob_offset
  /// downstream already.
  const GzipResumePoint* from = nullptr;
  std::string_view dict;       ///< the tar's 32 KiB before from->tar_offset
  std::string_view blob_tail;  ///< the blob's bytes from from->blob_hash.bytes to from->blob_offset
  /// Out, after finish(): the points of this version (from `from` on).
  std::vector<GzipResumePoint> points;
  Digest tar_digest, blob_digest;
  std::uint64_t tar_size = 0, blob_size = 0;
};

/// The dictionary a resumed gzip layer needs: the tar's bytes just before
/// the point (deflate's window).
inline constexpr std::size_t kGzipResumeDictSize = std::size_t{32} << 10;

/// How gzip cuts a layer into blocks (zstd and none ignore it).
struct GzipBlocking {
  /// false: fixed 1 MiB blocks. true: a block ends where a rolling hash of
  /// the last 64 bytes says (64 KiB to 1 MiB, ~190 KiB on average), so an
  /// edit changes the blocks around it and not those after. Either way the
  /// bytes depend on the content only.
  bool content_defined = false;
  /// Blocks compressed before, taken instead of compressing again, and
  /// where this layer's blocks are recorded; may be null.
  GzipBlockReuse* reuse = nullptr;
  /// Hashes and resume points (content-defined blocks only); may be null.
  GzipResumable* resumable = nullptr;
};

/// A sink that compresses what it is given and writes the result to
/// `downstream` (which must outlive it). finish() writes the trailer and calls
/// downstream.finish(). gzip output is one RFC 1952 member (any gunzip reads
/// it) made of independently compressed blocks (`blocking`), each primed
/// with the previous 32 KiB as dictionary, joined with sync flushes, like
/// pigz. kNone passes bytes through.
std::unique_ptr<ByteSink> make_compressor(const CompressionOptions& options, ByteSink& downstream,
                                          GzipBlocking blocking = {});

}  // namespace dockless
