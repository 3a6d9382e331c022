#include "src/build/uv_layers.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "base/error.h"
#include "base/file_util.h"
#include "base/parallel.h"
#include "src/build/push_pipeline.h"
#include "src/build/uv_cache_partition.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

/// From this size a piece's upload streams (BuildState::write_streamed);
/// smaller ones go whole, in one request, once made.
constexpr std::uint64_t kStreamedPieceBytes = std::uint64_t{4} << 20;

/// A readable name for a cache part: its venvs when few, else how many
/// (the key uses the full list).
std::string part_label(const CachePart& part) {
  if (part.users.size() <= 2) return cache_part_name(part);
  std::string first = *part.users.begin();
  return "shared by " + std::to_string(part.users.size()) + " environments: " + first + ", ... " +
         sha256_of(cache_part_name(part)).short_hex(8);
}

/// The bytes of the regular files at and below `paths` (relative to `root`):
/// what a piece's compressor will read.
std::uint64_t tree_bytes(const fs::path& root, const std::set<std::string>& paths) {
  std::uint64_t sum = 0;
  for (const auto& p : paths) {
    std::error_code ec;
    fs::recursive_directory_iterator it(root / p, fs::directory_options::none, ec), end;
    if (ec) {
      if (fs::is_regular_file(fs::symlink_status(root / p, ec))) sum += fs::file_size(root / p, ec);
      continue;
    }
    for (; it != end; it.increment(ec)) {
      if (ec) break;
      if (it->is_regular_file(ec) && !it->is_symlink(ec)) sum += it->file_size(ec);
    }
  }
  return sum;
}

/// One piece of a part: its layer from the layer cache (keyed by its file
/// list), else written and recorded there. Pieces are written on several
/// threads; `state_mu` guards what is recorded in the build state.
CachedLayer write_piece(BuildState& s, std::mutex& state_mu, const CachePart& part, const CachePart& piece,
                        bool is_index, bool streamed) {
  std::string name = std::string(is_index ? "uv cache index (" : "uv cache (") + part_label(part) + ")";
  // A piece whose files are unchanged is reused from an earlier build
  // of another uv cache slot (e.g. after a uv.lock edit elsewhere).
  KeyInputs in;
  in.kind = KeyKind::kUvCachePiece;
  in.format.mtime_clamp = s.clamp;
  in.format.compression = s.opt.compression.kind;
  in.format.level = s.opt.compression.level;
  in.cache_dir = s.spec().uv.cache_dir;
  in.part = cache_part_name(part);
  in.piece = is_index ? "index" : "archives";
  std::string listing;
  for (const auto& p : piece.paths) {
    listing += p + "\n";
    // Pointer files may be rewritten by uv; archive dirs never are
    // (their names are derived from their content).
    if (is_index) listing += file_digest(s.host_uv_cache / p) + "\n";
  }
  in.listing = sha256_of(listing).str();
  CacheKey k = cache_key(in);
  std::optional<std::vector<CachedLayer>> reused = s.opt.no_cache ? std::nullopt : s.layer_cache.find(k.hex());
  LayerBlob blob;
  std::shared_ptr<StreamedUpload> upload;
  if (reused) {
    blob = reused->front().blob;
  } else {
    auto produce = [&](ByteSink& sink) {
      TarOptions t = s.layer_tar();
      t.dest = s.spec().uv.cache_dir;
      t.include = [&piece](const std::string& rel, bool is_dir) { return piece.includes(rel, is_dir); };
      write_directory_tar(s.host_uv_cache, t, sink);
    };
    blob = streamed ? s.write_streamed(produce, upload) : s.write_one(produce);
    s.layer_cache.put(k.hex(), {{name, blob, part.users}});
  }
  // Its upload need not wait for the slot's other parts.
  std::lock_guard<std::mutex> lock(state_mu);
  s.made_at[blob.descriptor.digest.str()] = seconds_since(s.started);
  push_layer_ahead(s, CachedLayer{name, blob, part.users}, /*made_now=*/!reused, nullptr, std::move(upload));
  return CachedLayer{name, blob, part.users};
}

}  // namespace

std::vector<CachedLayer> write_uv_binary_layer(BuildState& s, const std::string& name) {
  fs::path staging = s.work_dir / "tools";
  fs::path target = staging / fs::path(s.spec().uv.uv_path).relative_path();
  fs::create_directories(target.parent_path());
  fs::copy_file(s.image_uv.binary, target, fs::copy_options::overwrite_existing);
  fs::permissions(target, fs::perms(0755));
  TarOptions t = s.layer_tar();
  return {{name, s.write_one([&](ByteSink& sink) { write_directory_tar(staging, t, sink); }), {}}};
}

std::vector<CachedLayer> write_uv_cache_layers(BuildState& s, const std::set<std::string>& users) {
  std::map<std::string, fs::path> env_dirs;
  for (const auto& e : s.plan.environments)
    if (users.count(e.name)) env_dirs[e.name] = s.env_dir(e);
  // Unpacked wheels (big, reproducible) apart from uv's pointer files
  // (small; they carry HTTP cache times, so they differ between clean
  // builds): the big layer keeps its digest across clean builds.
  struct Piece {
    CachePart part, files;
    bool is_index = false;
  };
  std::vector<Piece> pieces;
  for (const CachePart& part : partition_uv_cache(s.host_uv_cache, env_dirs)) {
    Piece archives{part, {}, false}, index{part, {}, true};
    archives.files.users = index.files.users = part.users;
    for (const auto& p : part.paths) (p.rfind("archive-v0/", 0) == 0 ? archives : index).files.paths.insert(p);
    if (!archives.files.paths.empty()) pieces.push_back(std::move(archives));
    if (!index.files.paths.empty()) pieces.push_back(std::move(index));
  }
  // Each piece is its own tar and compressor: they are compressed side by
  // side (a cold build of gigabytes of wheels spent most of its layer time
  // here, one piece after another), largest first, and kept in image
  // order. A piece holding most of the bytes is written alone first, with
  // every core on its compressor: its upload, the longest, then overlaps
  // the writing of the others instead of following it.
  std::vector<std::uint64_t> bytes(pieces.size(), 0);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (!pieces[i].is_index) bytes[i] = tree_bytes(s.host_uv_cache, pieces[i].files.paths);
    total += bytes[i];
  }
  std::vector<std::size_t> order(pieces.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return bytes[a] > bytes[b]; });
  std::vector<CachedLayer> out(pieces.size());
  std::mutex state_mu;
  auto write = [&](std::size_t i) {
    // A large piece goes to the registry as it is compressed: the
    // registry's share of the work (receiving, hashing, storing it) runs
    // beside ours instead of after it.
    out[i] = write_piece(s, state_mu, pieces[i].part, pieces[i].files, pieces[i].is_index,
                         bytes[i] >= kStreamedPieceBytes);
  };
  if (!order.empty() && bytes[order.front()] * 2 > total) {
    write(order.front());
    order.erase(order.begin());
  }
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  parallel_for_each(order, std::min(threads, std::max(s.opt.transfer.jobs, 1)), write);
  return out;
}

}  // namespace dockless
