#include "layers/gzip_block_reuse.h"

#include <isa-l.h>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/digest.h"

namespace dockless {

namespace {

// An index is only as good as the ISA-L that made its layer: another
// version may compress the same input to other bytes.
const std::string kHeader = "dockless gzip blocks 3 isa-l " + std::to_string(ISAL_MAJOR_VERSION) + "." +
                            std::to_string(ISAL_MINOR_VERSION) + "." + std::to_string(ISAL_PATCH_VERSION) +
                            "\n";

// Past this, a layer's blocks are not kept: the layer would be read whole
// to reuse them (the source layer in memory has the same bound).
constexpr std::size_t kMaxLayerBytes = std::size_t{256} << 20;

// What the compressor puts around the blocks (compression.cc): a 10-byte
// gzip header, and an 8-byte trailer.
constexpr std::size_t kGzipHeader = 10;
constexpr std::size_t kGzipTrailer = 8;

void put_le32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A record: a block's key (64 hex digits), the CRC-32 of its data, the
// size and CRC-32 of its deflated bytes.
constexpr std::size_t kRecord = 64 + 4 + 4 + 4;

// Checks against torn writes and bit rot, not against a forger: the cache
// directory is the user's own, like the blob store beside it.
std::uint32_t crc_of(std::string_view bytes) {
  return crc32_gzip_refl(0, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

std::uint32_t get_le32(std::string_view in) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return v;
}

}  // namespace

std::string GzipBlockReuse::key_of(int level, bool last, std::string_view dict, std::string_view data) {
  Sha256 h;
  const std::string head = "level " + std::to_string(level) + (last ? " last" : " more") + " dict " +
                           std::to_string(dict.size()) + "\n";
  h.update(head);
  h.update(dict);
  h.update(data);
  return h.finish().hex();
}

void GzipBlockReuse::load(const std::filesystem::path& index, const BlobPath& blob_path) {
  loaded_.clear();
  loaded_bytes_ = 0;
  layer_.clear();
  // Header, the layer's digest, the records, and a CRC-32 of all before it:
  // a torn or damaged index is taken all or nothing.
  std::error_code ec;
  const auto index_size = std::filesystem::file_size(index, ec);
  if (ec || index_size > kHeader.size() + 80 + (kMaxLayerBytes / (64 << 10) + 1) * kRecord + 4) return;
  std::string text;
  try {
    text = read_file(index);
  } catch (const Error&) {
    return;  // none yet
  }
  std::string_view in(text);
  if (!in.starts_with(kHeader) || in.size() < kHeader.size() + 4) return;
  if (crc_of(in.substr(0, in.size() - 4)) != get_le32(in.substr(in.size() - 4))) return;
  in.remove_suffix(4);
  in.remove_prefix(kHeader.size());
  const std::size_t eol = in.find('\n');
  if (eol == std::string_view::npos) return;
  std::filesystem::path blob;
  try {
    blob = blob_path(Digest::parse(in.substr(0, eol)));
  } catch (const Error&) {
    return;
  }
  in.remove_prefix(eol + 1);
  if (in.size() % kRecord != 0) return;

  const auto blob_size = std::filesystem::file_size(blob, ec);
  if (ec || blob_size > kMaxLayerBytes) return;  // pruned since, or too big to read whole
  try {
    layer_ = read_file(blob);
  } catch (const Error&) {
    return;
  }
  // The blocks are views into layer_, not copies.
  std::unordered_map<std::string, Block> blocks;
  std::size_t at = kGzipHeader;
  for (; !in.empty(); in.remove_prefix(kRecord)) {
    const std::uint32_t size = get_le32(in.substr(68, 4));
    if (layer_.size() < at + size + kGzipTrailer) return layer_.clear();
    const std::string_view deflated = std::string_view(layer_).substr(at, size);
    if (crc_of(deflated) != get_le32(in.substr(72, 4))) return layer_.clear();
    blocks[std::string(in.substr(0, 64))] = Block{get_le32(in.substr(64, 4)), deflated};
    at += size;
  }
  if (at + kGzipTrailer != layer_.size()) return layer_.clear();  // not this layer's blocks
  loaded_ = std::move(blocks);
  loaded_bytes_ = at - kGzipHeader;
}

void GzipBlockReuse::save(const std::filesystem::path& index, const Digest& layer) const {
  if (over_bound_ || recorded_.empty()) return;
  std::string out = kHeader + layer.str() + "\n";
  out.reserve(out.size() + recorded_.size() * kRecord + 4);
  for (const auto& block : recorded_) {
    out += block.key;
    put_le32(out, block.crc);
    put_le32(out, block.size);
    put_le32(out, block.deflated_crc);
  }
  put_le32(out, crc_of(out));
  write_file_replacing(index, out);
}

const GzipBlockReuse::Block* GzipBlockReuse::find(const std::string& key) const {
  auto it = loaded_.find(key);
  if (it == loaded_.end()) return nullptr;
  ++reused_;
  return &it->second;
}

void GzipBlockReuse::record(const std::string& key, std::uint32_t crc, const std::uint8_t* deflated,
                            std::size_t size) {
  if (over_bound_) return;
  recorded_bytes_ += size;
  if (recorded_bytes_ > kMaxLayerBytes) {
    over_bound_ = true;
    recorded_.clear();
    return;
  }
  const std::string_view bytes(reinterpret_cast<const char*>(deflated), size);
  recorded_.push_back(Recorded{key, crc, static_cast<std::uint32_t>(size), crc_of(bytes)});
}

}  // namespace dockless
