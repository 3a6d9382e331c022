#include "layers/layer_writer.h"

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

/// Runs `produce_tar` into the compressor feeding `out`; the layer's
/// diffID, sizes and media type (its digest is the caller's).
LayerBlob compress_tar(const std::function<void(ByteSink&)>& produce_tar, const CompressionOptions& compression,
                       ByteSink& out, GzipBlocking blocking) {
  auto compressor = make_compressor(compression, out, blocking);
  HashingSink tar_hash(compressor.get());
  produce_tar(tar_hash);
  if (!tar_hash.finished()) throw Error("layer producer ended without finishing its tar stream");
  LayerBlob layer;
  layer.diff_id = tar_hash.digest();
  layer.uncompressed_size = tar_hash.size();
  layer.descriptor.media_type = layer_media_type(compression.kind);
  return layer;
}

}  // namespace

LayerBlob write_layer(const std::function<void(ByteSink&)>& produce_tar,
                      const CompressionOptions& compression, const BlobStore& store, GzipBlocking blocking) {
  BlobWriter blob(store);
  BlobSink blob_sink(blob);
  LayerBlob layer = compress_tar(produce_tar, compression, blob_sink, blocking);
  layer.descriptor.size = static_cast<std::int64_t>(blob.size());
  layer.descriptor.digest = blob.commit();
  return layer;
}

LayerBlob compress_layer(const std::function<void(ByteSink&)>& produce_tar,
                         const CompressionOptions& compression, ByteSink& out, GzipBlocking blocking) {
  HashingSink blob_hash(&out);
  LayerBlob layer = compress_tar(produce_tar, compression, blob_hash, blocking);
  layer.descriptor.size = static_cast<std::int64_t>(blob_hash.size());
  layer.descriptor.digest = blob_hash.digest();
  return layer;
}

}  // namespace dockless
