#include "src/build/source_layer.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "base/file_util.h"
#include "layers/hashing_sink.h"
#include "oci/digest.h"
#include "src/build/git_source.h"
#include "src/cache/last_used.h"

namespace dockless {

namespace fs = std::filesystem;

ProjectSource load_project_source(const BuildOptions& opt, const fs::path& cache_dir, const fs::path& work_dir) {
  ProjectSource s;
  if (!opt.git_url.empty()) {
    // The spec comes from the repository at that ref: no local checkout needed.
    GitCheckout co = fetch_git_source(GitSource{opt.git_url, opt.git_ref}, cache_dir, work_dir / "source",
                                      /*keep_git_dir=*/true);
    s.spec = load_build_spec(co.tree, opt.spec_file, opt.overrides, opt.build_args);
    s.git_url = opt.git_url;
    s.git_commit = co.commit;
    if (!s.spec.source.keep_git_dir) remove_tree(co.tree / ".git");
    s.tree = co.tree;
    s.project_root = co.tree;
  } else {
    s.spec = load_build_spec(opt.project_dir, opt.spec_file, opt.overrides, opt.build_args);
    if (!s.spec.source.git.empty()) {
      GitCheckout co = fetch_git_source(GitSource{s.spec.source.git, s.spec.source.ref}, cache_dir,
                                        work_dir / "source", s.spec.source.keep_git_dir);
      s.git_url = s.spec.source.git;
      s.git_commit = co.commit;
      s.tree = co.tree;
    } else {
      s.tree = fs::canonical(s.spec.file.parent_path() / s.spec.source.path);
    }
    s.project_root = s.tree;
  }
  s.ignore = IgnoreRules::load(s.tree / s.spec.source.ignore_file);
  return s;
}

/// Keeps a copy of what passes, up to a limit: the source tree's tar, hashed
/// for its key, is compressed from memory on a miss instead of walked again.
class BoundedCopy : public ByteSink {
 public:
  explicit BoundedCopy(std::size_t limit) : limit_(limit) {}
  /// Room for about `size` bytes up front: growing by doubling would copy
  /// and touch each page about twice.
  void expect(std::size_t size) { bytes_.reserve(std::min(size, limit_)); }
  void write(const void* data, std::size_t size) override {
    if (!complete_) return;
    if (bytes_.size() + size > limit_) {
      complete_ = false;
      std::string().swap(bytes_);
      return;
    }
    bytes_.append(static_cast<const char*>(data), size);
  }
  void finish() override {}
  /// Whether every byte was kept.
  bool complete() const { return complete_; }
  const std::string& bytes() const { return bytes_; }
  std::string take() { return std::move(bytes_); }

 private:
  std::size_t limit_;
  std::string bytes_;
  bool complete_ = true;
};

namespace {

/// A tree whose newest change is younger than this (before its stat walk
/// began) gets no memo: a file written again within one timestamp tick
/// keeps its ctime. Local file systems tick every few milliseconds; the
/// margin also covers a file server's clock a little behind ours.
constexpr std::int64_t kRacyMarginNs = 1'000'000'000;

std::int64_t realtime_ns() {
  struct timespec t;
  ::clock_gettime(CLOCK_REALTIME, &t);
  return std::int64_t(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

}  // namespace

SourceLayer::SourceLayer(const ProjectSource& source, std::int64_t mtime_clamp, const fs::path& memo_dir,
                         const BlobStore& store, const CompressionOptions& compression,
                         const std::function<std::shared_ptr<StreamedUpload>()>& on_edit)
    : tree_(source.tree), rules_(source.ignore), blob_path_([&store](const Digest& d) { return store.path_of(d); }) {
  tar_.mtime_clamp = mtime_clamp;
  tar_.dest = source.spec.source.dest;
  bool keep_git = source.spec.source.keep_git_dir;
  // A venv inside the source's destination (/app/.venv, uv's Docker layout)
  // is its own layer below the source: the source layer must neither carry
  // a host copy of it nor hide it.
  std::string dest = source.spec.source.dest;
  if (dest.empty() || dest.back() != '/') dest += '/';
  for (const auto& v : source.spec.venvs)
    if (v.path.rfind(dest, 0) == 0) venv_dirs_.push_back(v.path.substr(dest.size()));
  const IgnoreRules& rules = rules_;
  const std::vector<std::string>& venvs = venv_dirs_;
  auto left_out = [&venvs, keep_git](const std::string& rel) {
    if (!keep_git && (rel == ".git" || rel.rfind(".git/", 0) == 0)) return true;
    for (const auto& v : venvs)
      if (rel == v || rel.rfind(v + "/", 0) == 0) return true;
    return false;
  };
  tar_.include = [&rules, left_out](const std::string& rel, bool is_dir) {
    return !left_out(rel) && !rules.excluded(rel, is_dir);
  };
  tar_.descend_excluded = [&rules, left_out](const std::string& rel) {
    return !left_out(rel) && rules.may_reinclude_below(rel);
  };

  const std::int64_t walk_began = walk_began_ = realtime_ns();
  if (memo_dir.empty()) {  // --no-cache: hash only, as on a first build
    hash_tree();
    return;
  }
  // The walk's entries are kept: an edit's tar is written from them, and
  // the tree is not walked twice.
  auto walked = std::make_unique<WalkedTree>();
  const TreeStat stat = stat_directory_tree(tree_, tar_, walked.get());
  // Not named by a bare digest: its content does not hash to its name.
  const std::string memo_name = sha256_of(memo_identity(source)).hex();
  const fs::path memo = memo_dir / (memo_name + ".memo");
  blocks_file_ = memo_dir / (memo_name + ".blocks");
  // "<stat digest> <tar digest> trusted|racy"; none, or an unreadable one,
  // is a first build of this tree here.
  std::string last_stat, last_tar, trust;
  try {
    std::istringstream in(read_file(memo));
    in >> last_stat >> last_tar >> trust;
    Digest::parse(last_tar);
  } catch (const Error&) {
    last_stat.clear();
  }
  if (last_stat == stat.digest.str() && trust == "trusted") {
    tar_digest_ = last_tar;
    mark_used(memo);
    return;
  }
  walked_ = std::move(walked);
  if (!last_stat.empty() && last_stat != stat.digest.str()) {
    // Changed since its last build here: the layer is almost surely new, so
    // it is compressed in the same pass, into memory: the store gets it in
    // write(), once the build is past its checks (a build that fails
    // before leaves the cache as it was).
    compress_tree(compression, on_edit ? on_edit() : nullptr);
  } else {
    // A first build here (its layer may be in a registry cache) or one
    // changed a moment before the last: hashed, compressed only if missed.
    hash_tree();
  }
  const bool trusted = stat.newest_change_ns < walk_began - kRacyMarginNs;
  // Not synced: the memo is a hint, checked when read (a crash can leave it
  // empty or old, never wrong), and an edit build's layer waits for it.
  fs::create_directories(memo_dir);
  write_file_replacing(memo, stat.digest.str() + " " + tar_digest_ + (trusted ? " trusted\n" : " racy\n"));
}

void SourceLayer::compress_tree(const CompressionOptions& compression, std::shared_ptr<StreamedUpload> streamed) {
  BoundedCopy out(std::size_t{256} << 20);
  blocks_ = std::make_unique<GzipBlockReuse>();
  blocks_->load(blocks_file_, blob_path_);
  // The last layer's blocks are about its size; an edit seldom adds much.
  if (blocks_->loaded_bytes() > 0) out.expect(blocks_->loaded_bytes() + blocks_->loaded_bytes() / 8 + (64 << 10));
  // The bytes go to memory and, as they come, to the upload.
  class Tee : public ByteSink {
   public:
    Tee(ByteSink& a, StreamedUpload* b) : a_(a), b_(b) {}
    void write(const void* data, std::size_t size) override {
      a_.write(data, size);
      if (b_) b_->feed(data, size);
    }
    void finish() override { a_.finish(); }

   private:
    ByteSink& a_;
    StreamedUpload* b_;
  } tee(out, streamed.get());
  const bool gzip = compression.kind == Compression::kGzip;
  GzipResumable resumable;
  const GzipBlockReuse::Point* from = gzip ? resume_point(*blocks_, gzip_level(compression.level)) : nullptr;
  try {
    if (from != nullptr) {
      // The tree is the same up to `from`: the last layer's bytes up to
      // there are this one's, and the tar is written from a little before.
      blocks_->take_up_from(*from);
      made_ = resume_layer([this, from](ByteSink& sink) { write_tree(sink, from); }, from->start_offset, from->gzip,
                           blocks_->layer_bytes().substr(0, from->gzip.blob_offset), compression, tee,
                           GzipBlocking{true, blocks_.get(), &resumable});
      resumed_at_ = from->gzip.tar_offset;
    } else {
      made_ = compress_layer([this](ByteSink& sink) { write_tree(sink); }, compression, tee,
                             GzipBlocking{true, blocks_.get(), gzip ? &resumable : nullptr});
    }
  } catch (...) {
    if (streamed) streamed->abandon();
    throw;
  }
  if (streamed) streamed->end();
  streamed_ = std::move(streamed);
  if (gzip) blocks_->set_points(points_of(resumable, blocks_.get(), from), gzip_level(compression.level), walk_began_);
  reused_blocks_ = blocks_->reused() + (from != nullptr ? static_cast<std::size_t>(from->gzip.block) : 0);
  made_with_ = compression;
  tar_digest_ = made_->diff_id.str();
  // Too big to keep (over the copy's bound): write() makes it again.
  if (out.complete()) compressed_ = std::make_shared<const std::string>(out.take());
}

const GzipBlockReuse::Point* SourceLayer::resume_point(const GzipBlockReuse& last, int level) const {
  if (!walked_ || walked_written_ || last.points().empty() || last.points_level() != level) return nullptr;
  const auto& points = last.points();
  const auto& entries = walked_->entries;
  std::vector<std::uint64_t> counts;
  for (const auto& p : points) {
    if (p.entries > entries.size() || (!counts.empty() && p.entries < counts.back())) break;
    counts.push_back(p.entries);
  }
  const std::vector<Digest> digests = walked_prefix_digests(*walked_, counts);
  // The last point whose entries before it are those of the last build,
  // each older than that build's walk by the racy margin (a file written
  // again within one timestamp tick keeps its stat).
  const GzipBlockReuse::Point* best = nullptr;
  std::int64_t newest = 0;
  std::size_t seen = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    for (; seen < counts[i]; ++seen) newest = std::max(newest, newest_change_ns(entries[seen].st));
    if (digests[i] != points[i].entries_digest || newest >= last.points_walked_ns() - kRacyMarginNs) break;
    if (points[i].start_entry < points[i].entries) best = &points[i];
  }
  return best;
}

std::vector<GzipBlockReuse::Point> SourceLayer::points_of(const GzipResumable& made, const GzipBlockReuse* last,
                                                          const GzipBlockReuse::Point* from) const {
  std::vector<GzipBlockReuse::Point> points;
  if (from != nullptr)
    for (const auto& p : last->points())
      if (p.gzip.block <= from->gzip.block) points.push_back(p);
  if (!walked_ || offsets_.empty()) return points;
  // offsets_ covers the entries from first_offset_entry_ on, then the end.
  const auto headers_end = offsets_.end() - 1;
  const std::uint64_t entries_end = offsets_.back();
  std::vector<std::uint64_t> counts;
  const std::size_t kept = points.size();
  for (const GzipResumePoint& g : made.points) {
    // Past the last entry the tar ends: nothing to take up.
    if (g.tar_offset > entries_end) break;
    if (g.tar_offset < kGzipResumeDictSize) continue;
    const auto before = std::lower_bound(offsets_.begin(), headers_end, g.tar_offset);
    const auto start = std::upper_bound(offsets_.begin(), headers_end, g.tar_offset - kGzipResumeDictSize);
    if (start == offsets_.begin()) continue;  // no header early enough to write the dictionary from
    GzipBlockReuse::Point p;
    p.gzip = g;
    p.entries = first_offset_entry_ + static_cast<std::uint64_t>(before - offsets_.begin());
    p.start_entry = first_offset_entry_ + static_cast<std::uint64_t>(start - offsets_.begin() - 1);
    p.start_offset = *(start - 1);
    points.push_back(p);
    counts.push_back(p.entries);
  }
  const std::vector<Digest> digests = walked_prefix_digests(*walked_, counts);
  for (std::size_t i = 0; i < digests.size(); ++i) points[kept + i].entries_digest = digests[i];
  return points;
}

void SourceLayer::hash_tree() {
  copy_ = std::make_unique<BoundedCopy>(std::size_t{256} << 20);
  HashingSink probe(copy_.get());
  write_tree(probe);
  tar_digest_ = probe.digest().str();
}

void SourceLayer::write_tree(ByteSink& sink, const GzipBlockReuse::Point* from) {
  // A tar taken up from a point must come from the walk that matched it.
  if (from != nullptr && (!walked_ || walked_written_))
    throw Error("internal error: the source tree's walk is gone before its layer was made");
  if (walked_ && !walked_written_) {
    // Right after the stat walk: its entries, not a second walk.
    walked_written_ = true;
    offsets_.clear();
    first_offset_entry_ = from != nullptr ? from->start_entry : 0;
    WalkedTreeWrite how{from != nullptr ? std::optional<std::size_t>(from->start_entry) : std::nullopt, &offsets_};
    write_walked_tree(tree_, *walked_, tar_, sink, how);
    if (from != nullptr)
      for (auto& o : offsets_) o += from->start_offset;
  } else {
    write_directory_tar(tree_, tar_, sink);
  }
}

SourceLayer::~SourceLayer() = default;

/// What, besides the tree's stat, decides the tar: the tree's place, the
/// tar options and what the walk leaves out.
std::string SourceLayer::memo_identity(const ProjectSource& source) const {
  std::string id = "dockless source memo 1\n" + tree_.string() + "\n" + tar_.dest + "\n" +
                   std::to_string(tar_.mtime_clamp) + "\n" + (source.spec.source.keep_git_dir ? "git" : "no-git") + "\n";
  for (const auto& v : venv_dirs_) id += "venv " + v + "\n";
  // The ignore file may leave itself out of the tree, so its text goes in.
  std::string ignore = "none";
  try {
    ignore = sha256_of(read_file(tree_ / source.spec.source.ignore_file)).str();
  } catch (const Error&) {
    // No ignore file (IgnoreRules::load has read it if there is one).
  }
  id += "ignore " + ignore + "\n";
  return id;
}

std::optional<std::pair<LayerBlob, std::shared_ptr<const std::string>>> SourceLayer::made_in_memory(
    const CompressionOptions& compression) const {
  if (!made_ || !compressed_ || made_with_.kind != compression.kind || made_with_.level != compression.level)
    return std::nullopt;
  return std::make_pair(*made_, compressed_);
}

LayerBlob SourceLayer::write(const CompressionOptions& compression, const BlobStore& store) const {
  if (auto made = made_in_memory(compression)) {
    store.put(*made->second, made->first.descriptor.digest);
    // Kept here, not while the build waited for the layer.
    if (blocks_) blocks_->save(blocks_file_, made->first.descriptor.digest);
    return made->first;
  }
  // Without a memo (--no-cache) the blocks are cut the same way, and not kept.
  GzipBlockReuse reuse;
  if (!blocks_file_.empty()) reuse.load(blocks_file_, blob_path_);
  // The tar hashed from the walk is in memory: its resume points are kept.
  const bool from_walk = copy_ && copy_->complete() && !offsets_.empty();
  GzipResumable resumable;
  const bool points = from_walk && !blocks_file_.empty() && compression.kind == Compression::kGzip;
  LayerBlob layer = write_layer(
      [this](ByteSink& sink) {
        if (copy_ && copy_->complete()) {
          sink.write(copy_->bytes().data(), copy_->bytes().size());
          sink.finish();
        } else {
          write_directory_tar(tree_, tar_, sink);
        }
      },
      compression, store,
      GzipBlocking{true, blocks_file_.empty() ? nullptr : &reuse, points ? &resumable : nullptr});
  if (points) reuse.set_points(points_of(resumable, nullptr, nullptr), gzip_level(compression.level), walk_began_);
  if (!blocks_file_.empty()) reuse.save(blocks_file_, layer.descriptor.digest);
  return layer;
}

void SourceLayer::drop_copy() {
  copy_.reset();
  compressed_.reset();
  made_.reset();
  blocks_.reset();
  streamed_.reset();  // closes its session
}

}  // namespace dockless
