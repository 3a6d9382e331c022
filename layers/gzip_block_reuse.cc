#include "layers/gzip_block_reuse.h"

#include <isa-l.h>

#include <cstdio>
#include <optional>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/digest.h"

namespace dockless {

namespace {

// An index is only as good as the ISA-L that made its layer: another
// version may compress the same input to other bytes. Format 5: random-
// looking blocks are stored (layers/stored_deflate.h), where format 4's
// layers have them deflated.
const std::string kHeader = "dockless gzip blocks 5 isa-l " + std::to_string(ISAL_MAJOR_VERSION) + "." +
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

void put_le64(std::string& out, std::uint64_t v) {
  put_le32(out, static_cast<std::uint32_t>(v));
  put_le32(out, static_cast<std::uint32_t>(v >> 32));
}

std::uint64_t get_le64(std::string_view in) { return get_le32(in) | std::uint64_t{get_le32(in.substr(4))} << 32; }

// A point: block, tar and blob offsets, CRC, the two hash states (8 words
// and a byte count each), entries, their digest (32 bytes), start entry and
// its offset.
constexpr std::size_t kHashState = 8 * 4 + 8;
constexpr std::size_t kPoint = 8 + 8 + 8 + 4 + 2 * kHashState + 8 + 32 + 8 + 8;

void put_state(std::string& out, const Sha256::State& s) {
  for (auto w : s.h) put_le32(out, w);
  put_le64(out, s.bytes);
}

Sha256::State get_state(std::string_view in) {
  Sha256::State s;
  for (std::size_t i = 0; i < 8; ++i) s.h[i] = get_le32(in.substr(4 * i));
  s.bytes = get_le64(in.substr(32));
  return s;
}

void put_point(std::string& out, const GzipBlockReuse::Point& p) {
  put_le64(out, static_cast<std::uint64_t>(p.gzip.block));
  put_le64(out, p.gzip.tar_offset);
  put_le64(out, p.gzip.blob_offset);
  put_le32(out, p.gzip.crc);
  put_state(out, p.gzip.tar_hash);
  put_state(out, p.gzip.blob_hash);
  put_le64(out, p.entries);
  for (unsigned char b : p.entries_digest.sha256_bytes()) out.push_back(static_cast<char>(b));
  put_le64(out, p.start_entry);
  put_le64(out, p.start_offset);
}

GzipBlockReuse::Point get_point(std::string_view in) {
  GzipBlockReuse::Point p;
  p.gzip.block = static_cast<std::int64_t>(get_le64(in));
  p.gzip.tar_offset = get_le64(in.substr(8));
  p.gzip.blob_offset = get_le64(in.substr(16));
  p.gzip.crc = get_le32(in.substr(24));
  p.gzip.tar_hash = get_state(in.substr(28));
  p.gzip.blob_hash = get_state(in.substr(28 + kHashState));
  p.entries = get_le64(in.substr(28 + 2 * kHashState));
  p.entries_digest =
      Digest::from_sha256_bytes(reinterpret_cast<const unsigned char*>(in.data() + 36 + 2 * kHashState));
  p.start_entry = get_le64(in.substr(68 + 2 * kHashState));
  p.start_offset = get_le64(in.substr(76 + 2 * kHashState));
  return p;
}

// The most blocks (and points) a layer within the bound has.
constexpr std::size_t kMaxBlocks = kMaxLayerBytes / (64 << 10) + 1;

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

namespace {

/// An index file's parts, once its header and CRC-32 check out.
struct IndexFile {
  std::string text;
  Digest layer;
  std::string_view records;  ///< into text
  std::vector<GzipBlockReuse::Point> points;
  int level = 0;
  long long walked_ns = 0;
};

/// Header, the layer's digest, a line of counts, the block records, the
/// points, and a CRC-32 of all before it: a torn or damaged index is taken
/// all or nothing (nullopt).
std::optional<IndexFile> read_index(const std::filesystem::path& index) {
  std::error_code ec;
  const auto index_size = std::filesystem::file_size(index, ec);
  if (ec || index_size > kHeader.size() + 80 + 120 + kMaxBlocks * (kRecord + kPoint) + 4) return std::nullopt;
  IndexFile f;
  try {
    f.text = read_file(index);
  } catch (const Error&) {
    return std::nullopt;  // none yet
  }
  std::string_view in(f.text);
  if (!in.starts_with(kHeader) || in.size() < kHeader.size() + 4) return std::nullopt;
  if (crc_of(in.substr(0, in.size() - 4)) != get_le32(in.substr(in.size() - 4))) return std::nullopt;
  in.remove_suffix(4);
  in.remove_prefix(kHeader.size());
  const std::size_t eol = in.find('\n');
  if (eol == std::string_view::npos) return std::nullopt;
  try {
    f.layer = Digest::parse(in.substr(0, eol));
  } catch (const Error&) {
    return std::nullopt;
  }
  in.remove_prefix(eol + 1);
  const std::size_t eol2 = in.find('\n');
  if (eol2 == std::string_view::npos) return std::nullopt;
  std::size_t blocks = 0, points = 0;
  if (std::sscanf(std::string(in.substr(0, eol2)).c_str(), "blocks %zu points %zu level %d walked %lld", &blocks,
                  &points, &f.level, &f.walked_ns) != 4)
    return std::nullopt;
  in.remove_prefix(eol2 + 1);
  if (blocks > kMaxBlocks || points > kMaxBlocks || in.size() != blocks * kRecord + points * kPoint)
    return std::nullopt;
  for (std::size_t i = 0; i < points; ++i) f.points.push_back(get_point(in.substr(blocks * kRecord + i * kPoint, kPoint)));
  f.records = in.substr(0, blocks * kRecord);
  return f;
}

}  // namespace

void GzipBlockReuse::load(const std::filesystem::path& index, const BlobPath& blob_path) {
  loaded_.clear();
  loaded_order_.clear();
  points_.clear();
  loaded_bytes_ = 0;
  layer_.clear();
  std::optional<IndexFile> file = read_index(index);
  if (!file) return;
  std::string_view in = file->records;
  std::vector<Point> points = std::move(file->points);
  std::filesystem::path blob;
  try {
    blob = blob_path(file->layer);
  } catch (const Error&) {
    return;
  }
  std::error_code ec;
  const auto blob_size = std::filesystem::file_size(blob, ec);
  if (ec || blob_size > kMaxLayerBytes) return;  // pruned since, or too big to read whole
  try {
    layer_ = read_file(blob);
  } catch (const Error&) {
    return;
  }
  // The blocks are views into layer_, not copies.
  std::unordered_map<std::string, Block> blocks;
  std::vector<Recorded> order;
  // Where each block starts in the blob: a point must be at one of them.
  std::vector<std::size_t> starts;
  std::size_t at = kGzipHeader;
  for (; !in.empty(); in.remove_prefix(kRecord)) {
    const std::uint32_t size = get_le32(in.substr(68, 4));
    if (layer_.size() < at + size + kGzipTrailer) return layer_.clear();
    const std::string_view deflated = std::string_view(layer_).substr(at, size);
    if (crc_of(deflated) != get_le32(in.substr(72, 4))) return layer_.clear();
    blocks[std::string(in.substr(0, 64))] = Block{get_le32(in.substr(64, 4)), deflated};
    order.push_back(Recorded{std::string(in.substr(0, 64)), get_le32(in.substr(64, 4)), size, get_le32(in.substr(72, 4))});
    starts.push_back(at);
    at += size;
  }
  if (at + kGzipTrailer != layer_.size()) return layer_.clear();  // not this layer's blocks
  // Each point at a block's start, in order: else not this layer's points
  // (its blocks are still good).
  for (std::size_t i = 0; i < points.size(); ++i) {
    const GzipResumePoint& g = points[i].gzip;
    const auto b = static_cast<std::size_t>(g.block);
    if (g.block < 1 || b >= starts.size() || starts[b] != g.blob_offset ||
        (i > 0 && (g.block <= points[i - 1].gzip.block || g.tar_offset <= points[i - 1].gzip.tar_offset))) {
      points.clear();
      break;
    }
  }
  loaded_ = std::move(blocks);
  loaded_order_ = std::move(order);
  loaded_bytes_ = at - kGzipHeader;
  points_ = std::move(points);
  points_level_ = file->level;
  points_walked_ns_ = file->walked_ns;
}

void GzipBlockReuse::save(const std::filesystem::path& index, const Digest& layer) const {
  if (over_bound_ || recorded_.empty()) return;
  std::string out = kHeader + layer.str() + "\n" + "blocks " + std::to_string(recorded_.size()) + " points " +
                    std::to_string(new_points_.size()) + " level " + std::to_string(new_level_) + " walked " +
                    std::to_string(new_walked_ns_) + "\n";
  out.reserve(out.size() + recorded_.size() * kRecord + new_points_.size() * kPoint + 4);
  for (const auto& block : recorded_) {
    out += block.key;
    put_le32(out, block.crc);
    put_le32(out, block.size);
    put_le32(out, block.deflated_crc);
  }
  for (const auto& p : new_points_) put_point(out, p);
  put_le32(out, crc_of(out));
  write_file_replacing(index, out);
}

void GzipBlockReuse::take_up_from(const Point& point) {
  recorded_.assign(loaded_order_.begin(), loaded_order_.begin() + point.gzip.block);
  recorded_bytes_ = 0;
  for (const auto& r : recorded_) recorded_bytes_ += r.size;
}

void GzipBlockReuse::set_points(std::vector<Point> points, int level, std::int64_t walked_ns) {
  new_points_ = std::move(points);
  new_level_ = level;
  new_walked_ns_ = walked_ns;
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
