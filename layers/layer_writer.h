// Layer production in one pass: tar stream -> diffID hash -> compressor ->
// digest hash -> blob store. No temp tar on disk, no second read.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string_view>

#include "layers/byte_sink.h"
#include "layers/compression.h"
#include "oci/blob_store.h"
#include "oci/descriptor.h"

namespace dockless {

/// A layer stored as a blob: its descriptor (compressed digest and size,
/// media type) and the digest of its uncompressed tar.
struct LayerBlob {
  Descriptor descriptor;
  Digest diff_id;
  std::uint64_t uncompressed_size = 0;
};

/// The OCI media type of a layer compressed with c.
std::string layer_media_type(Compression c);

/// Runs `produce_tar`, which must write a whole tar to the sink it is given
/// and call finish() on it, and stores the compressed result in `store`.
/// `follower`, when given, reads the blob as it is written (BlobWriter::follow).
LayerBlob write_layer(const std::function<void(ByteSink&)>& produce_tar,
                      const CompressionOptions& compression, const BlobStore& store, GzipBlocking blocking = {},
                      std::shared_ptr<GrowingFile> follower = nullptr);

/// The same pipeline into `out` instead of a store (a buffer the caller
/// stores later): the layer as write_layer would describe it.
LayerBlob compress_layer(const std::function<void(ByteSink&)>& produce_tar,
                         const CompressionOptions& compression, ByteSink& out, GzipBlocking blocking = {});

/// compress_layer for a layer whose tar is the same as its last version's
/// up to `point` (a gzip resume point of that version): `blob_prefix`, the
/// last version's blob up to point.blob_offset, is written to `out` as it
/// is, and `produce_tar` writes the tar only from `tar_start` on (at or
/// before point.tar_offset - kGzipResumeDictSize, which the bytes up to
/// the point only prime). `blocking.resumable` must be set; it gets the
/// new version's points from `point` on.
LayerBlob resume_layer(const std::function<void(ByteSink&)>& produce_tar, std::uint64_t tar_start,
                       const GzipResumePoint& point, std::string_view blob_prefix,
                       const CompressionOptions& compression, ByteSink& out, GzipBlocking blocking);

}  // namespace dockless
