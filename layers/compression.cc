#include "layers/compression.h"

#include <isa-l.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "base/error.h"
#include "layers/gzip_block_reuse.h"
#include "layers/stored_deflate.h"

namespace dockless {

namespace detail {
// Test seam (declared again in tests/test_compression.cc, nowhere else): makes
// the gzip worker that compresses block `index` throw, so the tests can prove
// that a worker failure reaches the caller. -1 (the default) disables it.
void gzip_fail_block_for_testing(std::int64_t index);
}  // namespace detail

namespace {

// Fixed block size: the bytes never depend on the thread count or on how the
// caller chunks its writes, so layer digests are reproducible everywhere.
constexpr std::size_t kBlockSize = std::size_t{1} << 20;
// Deflate's window: the most history a block can refer back to.
constexpr std::size_t kDictSize = std::size_t{32} << 10;
static_assert(kDictSize == kGzipResumeDictSize, "a resumed layer is primed with one deflate window");

// Content-defined blocks: a gear hash (each byte shifts the hash left and
// adds the byte's random word, so only the last 64 bytes count) ends a block
// where its top 17 bits are zero, after at least kMinCutBlock bytes; at most
// kBlockSize. The table is part of the format: fixed, from splitmix64.
constexpr std::size_t kMinCutBlock = std::size_t{64} << 10;
constexpr std::size_t kGearWindow = 64;
constexpr std::uint64_t kCutMask = ~std::uint64_t{0} << (64 - 17);
constexpr std::array<std::uint64_t, 256> make_gear_table() {
  std::array<std::uint64_t, 256> t{};
  std::uint64_t x = 0x646f636b6c657373;  // "dockless"
  for (auto& v : t) {
    x += 0x9e3779b97f4a7c15;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    v = z ^ (z >> 31);
  }
  return t;
}
constexpr std::array<std::uint64_t, 256> kGear = make_gear_table();

// ISA-L level 2: on tars of /usr it costs ~5% more CPU than level 1 for ~1.3%
// smaller layers (paid once per build, saved on every push and pull), while
// level 3 costs ~40% more for another ~1.5%.
constexpr int kDefaultGzipLevel = 2;
constexpr int kDefaultZstdLevel = 3;

std::atomic<std::int64_t> g_fail_block{-1};

class PassThrough final : public ByteSink {
 public:
  explicit PassThrough(ByteSink& downstream) : down_(downstream) {}
  void write(const void* data, std::size_t size) override { down_.write(data, size); }
  void finish() override { down_.finish(); }

 private:
  ByteSink& down_;
};

// ---------------------------------------------------------------------------
// gzip: ISA-L deflate of independent 1 MiB blocks, joined into one member.

struct GzipBlock {
  // [dictionary | data]: the dictionary is the previous block's last 32 KiB,
  // copied in so that a worker never reads another block's buffer.
  std::unique_ptr<std::uint8_t[]> in =
      std::make_unique_for_overwrite<std::uint8_t[]>(kDictSize + kBlockSize);
  std::size_t dict_len = 0;
  std::size_t data_len = 0;
  bool last = false;
  std::int64_t index = 0;

  // Filled by the worker.
  std::unique_ptr<std::uint8_t[]> out;
  std::size_t out_cap = 0;
  std::size_t out_len = 0;
  std::uint32_t crc = 0;
  std::string key;  // GzipBlockReuse's, when reusing
  // With GzipResumable: where the block ends in the tar, and the tar's hash
  // at the last 64-byte boundary before that (the next point's).
  std::uint64_t tar_end = 0;
  Sha256::State tar_state;
  std::exception_ptr error;
  bool done = false;  // guarded by GzipCompressor::mu_

  const std::uint8_t* data() const { return in.get() + dict_len; }

  /// At least `cap` bytes of output room, keeping the first out_len.
  void reserve_out(std::size_t cap) {
    if (out_cap >= cap) return;
    auto bigger = std::make_unique_for_overwrite<std::uint8_t[]>(cap);
    if (out_len > 0) std::memcpy(bigger.get(), out.get(), out_len);
    out = std::move(bigger);
    out_cap = cap;
  }
};

// One per worker thread: the stream state and the level's hash/token buffer
// are large, so they are allocated once and reused for every block.
class IsalDeflater {
 public:
  explicit IsalDeflater(int level) : level_(level), stream_(std::make_unique<isal_zstream>()) {
    switch (level) {
      case 1: level_buf_size_ = ISAL_DEF_LVL1_DEFAULT; break;
      case 2: level_buf_size_ = ISAL_DEF_LVL2_DEFAULT; break;
      default: level_buf_size_ = ISAL_DEF_LVL3_DEFAULT; break;
    }
    level_buf_ = std::make_unique_for_overwrite<std::uint8_t[]>(level_buf_size_);
  }

  void compress(GzipBlock& b) {
    if (b.index == g_fail_block.load(std::memory_order_relaxed)) {
      throw std::runtime_error("injected failure in block " + std::to_string(b.index));
    }
    if (bytes_look_random(b.data(), b.data_len) && !trial_shrinks(b.data(), b.data_len)) {
      b.out_len = 0;
      b.reserve_out(stored_deflate_size(b.data_len));
      b.out_len = write_stored_deflate(b.data(), b.data_len, b.last, b.out.get());
      b.crc = crc32_gzip_refl(0, b.data(), b.data_len);
      return;
    }
    isal_zstream& s = *stream_;
    isal_deflate_init(&s);
    s.level = static_cast<std::uint32_t>(level_);
    s.level_buf = level_buf_.get();
    s.level_buf_size = level_buf_size_;
    s.gzip_flag = IGZIP_DEFLATE;  // raw deflate: header and trailer are ours
    // A non-final block ends byte-aligned with an empty stored block, so the
    // next block's bits can simply be appended (what pigz does with zlib).
    s.flush = b.last ? NO_FLUSH : SYNC_FLUSH;
    s.end_of_stream = b.last ? 1 : 0;
    if (b.dict_len > 0) {
      int rc = isal_deflate_set_dict(&s, b.in.get(), static_cast<std::uint32_t>(b.dict_len));
      if (rc != COMP_OK) throw Error("gzip: ISA-L refused the block dictionary (code " + std::to_string(rc) + ")");
    }
    s.next_in = b.in.get() + b.dict_len;
    s.avail_in = static_cast<std::uint32_t>(b.data_len);

    // ISA-L's bytes depend on how much output room each call gets, so the
    // room follows a fixed schedule, whatever a recycled buffer's capacity.
    // Stored-block fallback keeps the output near the input size; the
    // schedule still grows rather than trust that bound.
    std::size_t limit = kBlockSize + kBlockSize / 8 + 4096;
    b.out_len = 0;
    for (;;) {
      if (limit - b.out_len < 1024) limit += limit / 2;
      b.reserve_out(limit);
      s.next_out = b.out.get() + b.out_len;
      s.avail_out = static_cast<std::uint32_t>(limit - b.out_len);
      const std::uint32_t in_before = s.avail_in;
      int rc = isal_deflate(&s);
      if (rc != COMP_OK) throw Error("gzip: ISA-L deflate failed (code " + std::to_string(rc) + ")");
      const std::size_t out_before = b.out_len;
      b.out_len = static_cast<std::size_t>(s.next_out - b.out.get());
      // ISA-L has flushed everything once it stops with room left in the
      // output buffer; the final block must also reach its end state.
      bool flushed = s.avail_in == 0 && s.avail_out > 0;
      if (flushed && (!b.last || s.internal_state.state == ZSTATE_END)) break;
      // Never spin: a call that neither reads nor writes would repeat forever.
      if (s.avail_in == in_before && b.out_len == out_before) {
        throw Error("gzip: ISA-L deflate made no progress");
      }
    }
    b.crc = crc32_gzip_refl(0, b.data(), b.data_len);
  }

 private:
  /// Whether deflate shrinks a 32 KiB slice from the middle of p[0, n) by
  /// more than 1/64: byte values spread like random ones can still repeat
  /// (a random chunk written twice), which only deflate's matches find.
  bool trial_shrinks(const std::uint8_t* p, std::size_t n) {
    constexpr std::size_t kTrial = std::size_t{32} << 10;
    const std::uint8_t* slice = p + (n - kTrial) / 2;
    isal_zstream& s = *stream_;
    isal_deflate_init(&s);
    s.level = static_cast<std::uint32_t>(level_);
    s.level_buf = level_buf_.get();
    s.level_buf_size = level_buf_size_;
    s.gzip_flag = IGZIP_DEFLATE;
    s.flush = NO_FLUSH;
    s.end_of_stream = 1;
    s.next_in = const_cast<std::uint8_t*>(slice);
    s.avail_in = static_cast<std::uint32_t>(kTrial);
    trial_out_.resize(kTrial);
    s.next_out = trial_out_.data();
    s.avail_out = static_cast<std::uint32_t>(trial_out_.size());
    // Out of room means it did not shrink; any other failure is the block's to find.
    if (isal_deflate(&s) != COMP_OK) return true;
    if (s.avail_in > 0 || s.internal_state.state != ZSTATE_END) return false;
    return s.total_out < kTrial - kTrial / 64;
  }

  int level_;
  std::vector<std::uint8_t> trial_out_;
  std::unique_ptr<isal_zstream> stream_;
  std::uint32_t level_buf_size_ = 0;
  std::unique_ptr<std::uint8_t[]> level_buf_;
};

/// Feeds p[0, n) to h; returns h's state at the last 64-byte boundary at
/// or before the end of these bytes (a GzipResumePoint's hash).
Sha256::State hash_noting_state(Sha256& h, const std::uint8_t* p, std::size_t n) {
  const std::uint64_t aligned = (h.size() + n) / 64 * 64;
  const std::size_t before = aligned > h.size() ? static_cast<std::size_t>(aligned - h.size()) : 0;
  h.update(p, before);
  Sha256::State state = h.block_state();
  h.update(p + before, n - before);
  return state;
}

[[noreturn]] void rethrow_as_error(const std::exception_ptr& e, const char* what) {
  try {
    std::rethrow_exception(e);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& ex) {
    throw Error(std::string(what) + ": " + ex.what());
  } catch (...) {
    throw Error(std::string(what) + ": unknown error");
  }
}

// The calling thread fills blocks and writes finished ones downstream in
// order; workers only compress. Downstream is therefore only ever touched by
// the caller's thread and needs no locking.
class GzipCompressor final : public ByteSink {
 public:
  GzipCompressor(int level, unsigned threads, ByteSink& downstream, GzipBlocking blocking)
      : down_(downstream), level_(level), max_threads_(threads),
        max_in_flight_(2 * static_cast<std::size_t>(threads)), blocking_(blocking),
        cur_(std::make_unique<GzipBlock>()) {
    GzipResumable* r = blocking_.resumable;
    if (r == nullptr) return;
    if (!blocking_.content_defined) throw Error("gzip: resume points need content-defined blocks");
    tar_hash_.emplace();
    blob_hash_.emplace();
    r->points.clear();
    if (r->from == nullptr) return;
    // Start as if the blocks before the point had just been written.
    const GzipResumePoint& at = *r->from;
    const std::uint64_t tar_tail = at.tar_offset - at.tar_hash.bytes;
    if (at.block < 1 || r->dict.size() != kDictSize || at.tar_offset < kDictSize || tar_tail >= 64 ||
        at.tar_hash.bytes > at.tar_offset || at.blob_hash.bytes > at.blob_offset ||
        r->blob_tail.size() != at.blob_offset - at.blob_hash.bytes)
      throw Error("gzip: inconsistent resume point");
    tar_hash_.emplace(at.tar_hash);
    tar_hash_->update(r->dict.substr(kDictSize - tar_tail));
    blob_hash_.emplace(at.blob_hash);
    blob_hash_->update(r->blob_tail);
    std::memcpy(cur_->in.get(), r->dict.data(), kDictSize);
    cur_->dict_len = kDictSize;
    crc_ = at.crc;
    total_in_ = at.tar_offset;
    next_index_ = at.block;
    header_written_ = true;
  }

  ~GzipCompressor() override {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    // Blocks still queued are dropped: after stop_ no worker takes new work,
    // and in_flight_ (which owns them) outlives the joins.
    for (auto& t : workers_) t.join();
  }

  GzipCompressor(const GzipCompressor&) = delete;
  GzipCompressor& operator=(const GzipCompressor&) = delete;

  void write(const void* data, std::size_t size) override {
    check_usable();
    try {
      auto* p = static_cast<const std::uint8_t*>(data);
      while (size > 0) {
        // An ended block is sent only once more data arrives, so the last
        // block is always the one that carries end-of-stream (no empty
        // final block).
        if (cur_ended_) dispatch(false);
        std::size_t n = std::min(size, kBlockSize - cur_->data_len);
        if (blocking_.content_defined) n = bytes_to_cut(p, n);
        std::memcpy(cur_->in.get() + cur_->dict_len + cur_->data_len, p, n);
        cur_->data_len += n;
        total_in_ += n;
        p += n;
        size -= n;
        if (cur_->data_len == kBlockSize) cur_ended_ = true;
      }
    } catch (...) {
      failed_ = true;
      throw;
    }
  }

  void finish() override {
    check_usable();
    finished_ = true;
    try {
      dispatch(true);
      drain(0);
      // Trailer: CRC-32 and length mod 2^32, little-endian (RFC 1952).
      std::uint8_t trailer[8];
      put_le32(trailer, crc_);
      put_le32(trailer + 4, static_cast<std::uint32_t>(total_in_));
      down_.write(trailer, sizeof trailer);
      if (GzipResumable* r = blocking_.resumable) {
        blob_hash_->update(trailer, sizeof trailer);
        r->tar_size = tar_hash_->size();
        r->tar_digest = tar_hash_->finish();
        r->blob_size = blob_hash_->size();
        r->blob_digest = blob_hash_->finish();
      }
      down_.finish();
    } catch (...) {
      failed_ = true;
      throw;
    }
  }

 private:
  static void put_le32(std::uint8_t* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
  }

  /// How many of the next n bytes belong to the current block: all of them,
  /// or up to the content-defined cut among them (then cur_ended_).
  std::size_t bytes_to_cut(const std::uint8_t* p, std::size_t n) {
    const std::size_t at = cur_->data_len;
    // Bytes before the last window ahead of the minimum cannot decide a cut.
    std::size_t i = at + kGearWindow < kMinCutBlock ? std::min(n, kMinCutBlock - kGearWindow - at) : 0;
    for (; i < n; ++i) {
      gear_ = (gear_ << 1) + kGear[p[i]];
      if ((gear_ & kCutMask) == 0 && at + i + 1 >= kMinCutBlock) {
        cur_ended_ = true;
        return i + 1;
      }
    }
    return n;
  }

  void check_usable() const {
    if (failed_) throw Error("gzip compressor used after an earlier error");
    if (finished_) throw Error("gzip compressor used after finish()");
  }

  std::unique_ptr<GzipBlock> take_block() {
    if (free_.empty()) return std::make_unique<GzipBlock>();
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
  }

  // Hands cur_ to the workers and starts the next block with its dictionary.
  void dispatch(bool last) {
    std::unique_ptr<GzipBlock> next;
    if (!last) {
      next = take_block();
      // Only full blocks are dispatched before the last, so the tail exists.
      std::memcpy(next->in.get(), cur_->data() + cur_->data_len - kDictSize, kDictSize);
      next->dict_len = kDictSize;
      next->data_len = 0;
    }
    // Threads start lazily: a small layer costs one thread, not a pool.
    if (workers_.size() < max_threads_ && workers_.size() < in_flight_.size() + 1) {
      try {
        workers_.emplace_back([this] { worker_loop(); });
      } catch (const std::system_error& e) {
        if (workers_.empty()) throw Error(std::string("gzip: cannot start a worker thread: ") + e.what());
        max_threads_ = workers_.size();  // run with what we have
      }
    }
    cur_->last = last;
    cur_->index = next_index_++;
    if (tar_hash_) {
      // Here, in order and on the caller's thread, like a HashingSink.
      cur_->tar_end = total_in_;
      if (last) tar_hash_->update(cur_->data(), cur_->data_len);
      else cur_->tar_state = hash_noting_state(*tar_hash_, cur_->data(), cur_->data_len);
    }
    cur_->error = nullptr;
    cur_->done = false;
    GzipBlock* raw = cur_.get();
    in_flight_.push_back(std::move(cur_));
    {
      std::lock_guard lk(mu_);
      queue_.push_back(raw);
    }
    work_cv_.notify_one();
    cur_ = std::move(next);
    cur_ended_ = false;
    gear_ = 0;
    // Bounds memory: at most max_in_flight_ blocks wait for a worker or for
    // their turn to be written.
    drain(max_in_flight_ - 1);
  }

  // Writes finished blocks downstream in order; waits while more than `keep`
  // blocks are in flight.
  void drain(std::size_t keep) {
    while (!in_flight_.empty()) {
      GzipBlock& b = *in_flight_.front();
      {
        std::unique_lock lk(mu_);
        if (in_flight_.size() > keep) {
          done_cv_.wait(lk, [&] { return b.done; });
        } else if (!b.done) {
          return;
        }
      }
      std::unique_ptr<GzipBlock> owned = std::move(in_flight_.front());
      in_flight_.pop_front();
      if (b.error) rethrow_as_error(b.error, "gzip compression failed");
      if (!header_written_) {
        // mtime 0, no flags, XFL 0, OS 3 (Unix): fixed bytes, reproducible.
        static constexpr std::uint8_t kHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
        down_.write(kHeader, sizeof kHeader);
        if (blob_hash_) blob_hash_->update(kHeader, sizeof kHeader);
        header_written_ = true;
      }
      down_.write(b.out.get(), b.out_len);
      if (blocking_.reuse != nullptr) blocking_.reuse->record(b.key, b.crc, b.out.get(), b.out_len);
      crc_ = static_cast<std::uint32_t>(crc32_combine(crc_, b.crc, static_cast<z_off_t>(b.data_len)));
      if (blob_hash_) note_point(b);
      free_.push_back(std::move(owned));
    }
  }

  /// Hashes a written block's bytes and, after any but the last, notes the
  /// point where the next block starts.
  void note_point(const GzipBlock& b) {
    if (b.last) {
      blob_hash_->update(b.out.get(), b.out_len);
      return;
    }
    GzipResumePoint p;
    p.block = b.index + 1;
    p.tar_offset = b.tar_end;
    p.crc = crc_;
    p.tar_hash = b.tar_state;
    p.blob_hash = hash_noting_state(*blob_hash_, b.out.get(), b.out_len);
    p.blob_offset = blob_hash_->size();
    blocking_.resumable->points.push_back(p);
  }

  /// Takes the block's output from blocking_.reuse when it has this very
  /// input; keys the block for record() either way.
  bool reuse_block(GzipBlock& b) const {
    if (blocking_.reuse == nullptr) return false;
    auto view = [](const std::uint8_t* p, std::size_t n) { return std::string_view(reinterpret_cast<const char*>(p), n); };
    b.key = GzipBlockReuse::key_of(level_, b.last, view(b.in.get(), b.dict_len), view(b.data(), b.data_len));
    const GzipBlockReuse::Block* hit = blocking_.reuse->find(b.key);
    if (hit == nullptr) return false;
    b.out_len = 0;
    b.reserve_out(hit->deflated.size());
    std::memcpy(b.out.get(), hit->deflated.data(), hit->deflated.size());
    b.out_len = hit->deflated.size();
    b.crc = hit->crc;
    return true;
  }

  void worker_loop() {
    std::unique_ptr<IsalDeflater> deflater;
    for (;;) {
      GzipBlock* b = nullptr;
      {
        std::unique_lock lk(mu_);
        work_cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        b = queue_.front();
        queue_.pop_front();
      }
      std::exception_ptr err;
      try {
        if (!reuse_block(*b)) {
          if (!deflater) deflater = std::make_unique<IsalDeflater>(level_);
          deflater->compress(*b);
        }
      } catch (...) {
        err = std::current_exception();
      }
      {
        std::lock_guard lk(mu_);
        b->error = err;
        b->done = true;
      }
      done_cv_.notify_one();  // the only waiter is the writing thread
    }
  }

  ByteSink& down_;
  const int level_;
  std::size_t max_threads_;
  const std::size_t max_in_flight_;
  const GzipBlocking blocking_;

  // Touched only by the calling thread.
  std::unique_ptr<GzipBlock> cur_;
  bool cur_ended_ = false;   // cur_ is complete: dispatched when more data comes
  std::uint64_t gear_ = 0;   // content-defined cuts: the rolling hash in cur_
  std::deque<std::unique_ptr<GzipBlock>> in_flight_;  // dispatch order
  std::vector<std::unique_ptr<GzipBlock>> free_;      // recycled buffers
  std::vector<std::thread> workers_;
  std::uint32_t crc_ = 0;
  std::uint64_t total_in_ = 0;
  std::int64_t next_index_ = 0;
  // With GzipResumable: the tar's and the blob's hashes.
  std::optional<Sha256> tar_hash_, blob_hash_;
  bool header_written_ = false;
  bool finished_ = false;
  bool failed_ = false;

  // Shared with the workers.
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<GzipBlock*> queue_;
  bool stop_ = false;
};

// ---------------------------------------------------------------------------
// zstd: libzstd's streaming API with its own worker threads.

class ZstdCompressor final : public ByteSink {
 public:
  ZstdCompressor(int level, unsigned threads, ByteSink& downstream)
      : down_(downstream), cctx_(ZSTD_createCCtx()), out_(ZSTD_CStreamOutSize()) {
    if (cctx_ == nullptr) throw Error("zstd: cannot allocate a compression context");
    set(ZSTD_c_compressionLevel, level);
    set(ZSTD_c_checksumFlag, 1);
    // Always >= 1 worker: libzstd's output is the same for any worker count
    // >= 1, but differs between 0 (single-threaded mode) and 1.
    set(ZSTD_c_nbWorkers, static_cast<int>(std::max(1u, threads)));
  }

  ~ZstdCompressor() override { ZSTD_freeCCtx(cctx_); }
  ZstdCompressor(const ZstdCompressor&) = delete;
  ZstdCompressor& operator=(const ZstdCompressor&) = delete;

  void write(const void* data, std::size_t size) override {
    check_usable();
    if (size == 0) return;
    ZSTD_inBuffer in{data, size, 0};
    while (in.pos < in.size) step(in, ZSTD_e_continue);
  }

  void finish() override {
    check_usable();
    finished_ = true;
    ZSTD_inBuffer in{nullptr, 0, 0};
    while (step(in, ZSTD_e_end) != 0) {
    }
    guard([&] { down_.finish(); });
  }

 private:
  void check_usable() const {
    if (failed_) throw Error("zstd compressor used after an earlier error");
    if (finished_) throw Error("zstd compressor used after finish()");
  }

  template <typename F>
  void guard(F&& f) {
    try {
      f();
    } catch (...) {
      failed_ = true;
      throw;
    }
  }

  void check(std::size_t rc, const char* what) {
    if (ZSTD_isError(rc)) {
      failed_ = true;
      throw Error(std::string("zstd: ") + what + ": " + ZSTD_getErrorName(rc));
    }
  }

  void set(ZSTD_cParameter p, int value) {
    check(ZSTD_CCtx_setParameter(cctx_, p, value), "cannot set a compression parameter");
  }

  // One call into libzstd; whatever it produced goes downstream at once.
  std::size_t step(ZSTD_inBuffer& in, ZSTD_EndDirective mode) {
    ZSTD_outBuffer out{out_.data(), out_.size(), 0};
    std::size_t remaining = ZSTD_compressStream2(cctx_, &out, &in, mode);
    check(remaining, "compression failed");
    if (out.pos > 0) guard([&] { down_.write(out_.data(), out.pos); });
    return remaining;
  }

  ByteSink& down_;
  ZSTD_CCtx* cctx_;
  std::vector<std::uint8_t> out_;
  bool finished_ = false;
  bool failed_ = false;
};

int checked_level(const char* kind, int level, int def, int lo, int hi) {
  if (level == 0) return def;
  if (level < lo || level > hi) {
    throw Error(std::string(kind) + " compression level " + std::to_string(level) +
                " is out of range: valid levels are " + std::to_string(lo) + "-" +
                std::to_string(hi) + " (0 for the default, " + std::to_string(def) + ")");
  }
  return level;
}

}  // namespace

void detail::gzip_fail_block_for_testing(std::int64_t index) { g_fail_block.store(index); }

int gzip_level(int level) { return checked_level("gzip", level, kDefaultGzipLevel, 1, 3); }

Compression parse_compression(std::string_view name) {
  if (name == "gzip") return Compression::kGzip;
  if (name == "zstd") return Compression::kZstd;
  if (name == "none") return Compression::kNone;
  throw Error("unknown compression \"" + std::string(name) + "\": expected gzip, zstd or none");
}

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
  }
  return "unknown";
}

std::unique_ptr<ByteSink> make_compressor(const CompressionOptions& options, ByteSink& downstream,
                                          GzipBlocking blocking) {
  if (options.threads < 0) {
    throw Error("compression threads must be 0 (one per CPU) or more, got " +
                std::to_string(options.threads));
  }
  unsigned threads = options.threads > 0 ? static_cast<unsigned>(options.threads)
                                         : std::max(1u, std::thread::hardware_concurrency());
  switch (options.kind) {
    case Compression::kNone:
      // The level means nothing here; a global --level must not break "none".
      return std::make_unique<PassThrough>(downstream);
    case Compression::kGzip:
      return std::make_unique<GzipCompressor>(
          gzip_level(options.level), threads, downstream, blocking);
    case Compression::kZstd:
      return std::make_unique<ZstdCompressor>(
          checked_level("zstd", options.level, kDefaultZstdLevel, 1, 19), threads, downstream);
  }
  throw Error("unknown compression kind");
}

}  // namespace dockless
