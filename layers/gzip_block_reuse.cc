#include "layers/gzip_block_reuse.h"

#include <isa-l.h>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/digest.h"

namespace dockless {

namespace {

// What a file holds is only as good as the ISA-L that made it: another
// version may compress the same input to other bytes.
const std::string kHeader = "dockless gzip blocks 2 isa-l " + std::to_string(ISAL_MAJOR_VERSION) + "." +
                            std::to_string(ISAL_MINOR_VERSION) + "." + std::to_string(ISAL_PATCH_VERSION) +
                            "\n";

// Past this, a layer's blocks are not kept (the source layer in memory has
// the same bound).
constexpr std::size_t kMaxRecordedBytes = std::size_t{256} << 20;

void put_le32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A record's key (64 hex digits) and three 32-bit numbers.
constexpr std::size_t kRecordHead = 64 + 4 + 4 + 4;

// Checks the file against torn writes and bit rot, not against a forger:
// the cache directory is the user's own, like the blob store beside it.
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

void GzipBlockReuse::load(const std::filesystem::path& file) {
  loaded_.clear();
  loaded_bytes_ = 0;
  file_.clear();
  // Bounded like what save() writes (deflated bytes plus 76-byte heads):
  // a file grown past that is not ours to load whole.
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec || size > 2 * kMaxRecordedBytes) return;
  try {
    file_ = read_file(file);
  } catch (const Error&) {
    return;  // none yet
  }
  // The blocks are views into file_, not copies (a layer's worth of bytes).
  std::string_view in(file_);
  if (!in.starts_with(kHeader)) return file_.clear();
  in.remove_prefix(kHeader.size());
  // Records: key, CRC-32 of the data, size, CRC-32 of the deflated bytes,
  // the deflated bytes. A torn or damaged file is taken all or nothing.
  std::unordered_map<std::string, Block> blocks;
  std::size_t total = 0;
  while (!in.empty()) {
    if (in.size() < kRecordHead) return file_.clear();
    std::string key(in.substr(0, 64));
    const std::uint32_t crc = get_le32(in.substr(64, 4));
    const std::uint32_t size = get_le32(in.substr(68, 4));
    const std::uint32_t check = get_le32(in.substr(72, 4));
    in.remove_prefix(kRecordHead);
    if (in.size() < size || crc_of(in.substr(0, size)) != check) return file_.clear();
    blocks[key] = Block{crc, in.substr(0, size)};
    total += size;
    in.remove_prefix(size);
  }
  loaded_ = std::move(blocks);
  loaded_bytes_ = total;
}

void GzipBlockReuse::save(const std::filesystem::path& file) const {
  if (over_bound_ || recorded_.empty()) return;
  std::string out = kHeader;
  out.reserve(kHeader.size() + recorded_bytes_ + recorded_.size() * kRecordHead);
  for (const auto& block : recorded_) {
    out += block.key;
    put_le32(out, block.crc);
    put_le32(out, static_cast<std::uint32_t>(block.deflated.size()));
    put_le32(out, crc_of(block.deflated));
    out += block.deflated;
  }
  write_file_replacing(file, out);
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
  if (recorded_bytes_ > kMaxRecordedBytes) {
    over_bound_ = true;
    recorded_.clear();
    return;
  }
  recorded_.push_back(Recorded{key, crc, std::string(reinterpret_cast<const char*>(deflated), size)});
}

}  // namespace dockless
