#include "layers/layer_writer.h"

#include <algorithm>
#include <memory>
#include <string>

#include "layers/hashing_sink.h"
#include "base/error.h"
#include "oci/media_types.h"

namespace dockless {

namespace {
/// The pipeline's last stage: compressed bytes into a blob file.
class BlobSink : public ByteSink {
 public:
  explicit BlobSink(BlobWriter& w) : w_(w) {}
  void write(const void* data, std::size_t size) override { w_.write(data, size); }
  void finish() override {}

 private:
  BlobWriter& w_;
};
}  // namespace

std::string layer_media_type(Compression c) {
  switch (c) {
    case Compression::kNone: return std::string(media_type::kOciLayerTar);
    case Compression::kGzip: return std::string(media_type::kOciLayerGzip);
    case Compression::kZstd: return std::string(media_type::kOciLayerZstd);
  }
  throw Error("unknown compression");
}

namespace {

/// A layer whose compressor hashed its tar and blob itself (GzipResumable).
LayerBlob layer_hashed_by(const GzipResumable& r, const CompressionOptions& compression) {
  if (r.blob_size == 0) throw Error("layer producer ended without finishing its tar stream");
  LayerBlob layer;
  layer.descriptor.media_type = layer_media_type(compression.kind);
  layer.descriptor.size = static_cast<std::int64_t>(r.blob_size);
  layer.descriptor.digest = r.blob_digest;
  layer.diff_id = r.tar_digest;
  layer.uncompressed_size = r.tar_size;
  return layer;
}

/// Runs `produce_tar` into the compressor feeding `out`; the layer's
/// diffID, sizes and media type (its digest is the caller's, unless the
/// compressor hashed the blob too: GzipResumable).
LayerBlob compress_tar(const std::function<void(ByteSink&)>& produce_tar, const CompressionOptions& compression,
                       ByteSink& out, GzipBlocking blocking) {
  auto compressor = make_compressor(compression, out, blocking);
  if (blocking.resumable != nullptr) {
    // The compressor hashes the tar and the blob itself (to note its resume points).
    produce_tar(*compressor);
    return layer_hashed_by(*blocking.resumable, compression);
  }
  LayerBlob layer;
  layer.descriptor.media_type = layer_media_type(compression.kind);
  HashingSink tar_hash(compressor.get());
  produce_tar(tar_hash);
  if (!tar_hash.finished()) throw Error("layer producer ended without finishing its tar stream");
  layer.diff_id = tar_hash.digest();
  layer.uncompressed_size = tar_hash.size();
  return layer;
}

/// The bytes a resumed layer's producer writes, from its tar_start: those
/// before the dictionary are dropped, the dictionary primes the compressor
/// (made once it is complete), and the rest is compressed.
class ResumeSink : public ByteSink {
 public:
  ResumeSink(std::uint64_t tar_start, const CompressionOptions& compression, ByteSink& out, GzipBlocking blocking)
      : pos_(tar_start), compression_(compression), out_(out), blocking_(blocking) {}

  void write(const void* data, std::size_t size) override {
    auto* p = static_cast<const char*>(data);
    const GzipResumePoint& at = *blocking_.resumable->from;
    const std::uint64_t dict_start = at.tar_offset - kGzipResumeDictSize;
    while (size > 0 && !compressor_) {
      std::size_t n = size;
      if (pos_ < dict_start) {
        n = static_cast<std::size_t>(std::min<std::uint64_t>(size, dict_start - pos_));
      } else {
        n = static_cast<std::size_t>(std::min<std::uint64_t>(size, at.tar_offset - pos_));
        dict_.append(p, n);
        if (pos_ + n == at.tar_offset) {
          blocking_.resumable->dict = dict_;
          compressor_ = make_compressor(compression_, out_, blocking_);
        }
      }
      pos_ += n;
      p += n;
      size -= n;
    }
    if (size > 0) compressor_->write(p, size);
  }

  void finish() override {
    if (!compressor_) throw Error("the layer's tar ended before the point it was to be taken up from");
    compressor_->finish();
  }

 private:
  std::uint64_t pos_;
  const CompressionOptions& compression_;
  ByteSink& out_;
  GzipBlocking blocking_;
  std::string dict_;
  std::unique_ptr<ByteSink> compressor_;
};

}  // namespace

LayerBlob write_layer(const std::function<void(ByteSink&)>& produce_tar,
                      const CompressionOptions& compression, const BlobStore& store, GzipBlocking blocking,
                      std::shared_ptr<GrowingFile> follower) {
  BlobWriter blob(store);
  if (follower) blob.follow(std::move(follower));
  BlobSink blob_sink(blob);
  LayerBlob layer = compress_tar(produce_tar, compression, blob_sink, blocking);
  const Digest own = layer.descriptor.digest;
  layer.descriptor.size = static_cast<std::int64_t>(blob.size());
  layer.descriptor.digest = blob.commit();
  if (blocking.resumable != nullptr && own != layer.descriptor.digest)
    throw Error("internal error: the gzip layer's own digest differs from its blob's");
  return layer;
}

LayerBlob compress_layer(const std::function<void(ByteSink&)>& produce_tar,
                         const CompressionOptions& compression, ByteSink& out, GzipBlocking blocking) {
  if (blocking.resumable != nullptr) return compress_tar(produce_tar, compression, out, blocking);
  HashingSink blob_hash(&out);
  LayerBlob layer = compress_tar(produce_tar, compression, blob_hash, blocking);
  layer.descriptor.size = static_cast<std::int64_t>(blob_hash.size());
  layer.descriptor.digest = blob_hash.digest();
  return layer;
}

LayerBlob resume_layer(const std::function<void(ByteSink&)>& produce_tar, std::uint64_t tar_start,
                       const GzipResumePoint& point, std::string_view blob_prefix,
                       const CompressionOptions& compression, ByteSink& out, GzipBlocking blocking) {
  GzipResumable* r = blocking.resumable;
  if (r == nullptr || compression.kind != Compression::kGzip || !blocking.content_defined)
    throw Error("internal error: only a content-defined gzip layer is taken up from a point");
  if (blob_prefix.size() != point.blob_offset || point.tar_offset < kGzipResumeDictSize ||
      tar_start > point.tar_offset - kGzipResumeDictSize)
    throw Error("internal error: inconsistent point to take a layer up from");
  r->from = &point;
  r->blob_tail = blob_prefix.substr(point.blob_hash.bytes);
  out.write(blob_prefix.data(), blob_prefix.size());
  ResumeSink sink(tar_start, compression, out, blocking);
  produce_tar(sink);
  return layer_hashed_by(*r, compression);  // an unfinished tar is an Error there
}

}  // namespace dockless
