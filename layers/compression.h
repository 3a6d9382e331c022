// Layer compression: gzip (ISA-L, parallel independent blocks) and zstd
// (libzstd's own workers), as ByteSinks that feed their output downstream.
#pragma once

#include <memory>
#include <string_view>

#include "layers/byte_sink.h"

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

class GzipBlockReuse;

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
