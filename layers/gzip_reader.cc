#include "layers/gzip_reader.h"

#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/error.h"

namespace dockless {

namespace {

constexpr std::size_t kChunkSize = 1 << 20;
constexpr std::size_t kChunks = 4;  // in flight: ~3 MiB ahead of the reader

std::string isal_error(int rc) {
  switch (rc) {
    case ISAL_INVALID_BLOCK: return "invalid deflate block";
    case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK: return "a back-reference before the start of the data";
    case ISAL_INVALID_WRAPPER: return "not a gzip header";
    case ISAL_UNSUPPORTED_METHOD: return "not deflate-compressed";
    case ISAL_INCORRECT_CHECKSUM: return "CRC or length check failed";
    default: return "inflate error " + std::to_string(rc);
  }
}

}  // namespace

bool is_gzip_file(const std::filesystem::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  unsigned char magic[2] = {0, 0};
  ssize_t n = ::pread(fd, magic, 2, 0);
  ::close(fd);
  return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

GzipReader::GzipReader(const std::filesystem::path& file) : file_(file.string()) {
  fd_ = ::open(file_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw_errno("cannot open " + file_);
  for (std::size_t i = 0; i < kChunks; ++i)
    free_.push_back(Chunk{std::make_unique_for_overwrite<unsigned char[]>(kChunkSize), 0});
  worker_ = std::thread([this] { inflate_all(); });
}

GzipReader::GzipReader(std::shared_ptr<GrowingFile> file, std::string name)
    : file_(std::move(name)), growing_(std::move(file)) {
  for (std::size_t i = 0; i < kChunks; ++i)
    free_.push_back(Chunk{std::make_unique_for_overwrite<unsigned char[]>(kChunkSize), 0});
  worker_ = std::thread([this] { inflate_all(); });
}

GzipReader::~GzipReader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (growing_) growing_->abandon();  // a worker waiting for bytes stops (no-op once whole)
  worker_.join();
  if (fd_ >= 0) ::close(fd_);
}

std::size_t GzipReader::read_input(unsigned char* buf, std::size_t cap) {
  if (growing_) return growing_->read(reinterpret_cast<char*>(buf), cap);
  for (;;) {
    ssize_t n = ::read(fd_, buf, cap);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) throw_errno("cannot read " + file_);
  }
}

bool GzipReader::take_free(Chunk& out) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return stopping_ || !free_.empty(); });
  if (stopping_) return false;
  out = std::move(free_.front());
  free_.pop_front();
  return true;
}

void GzipReader::give_full(Chunk chunk) {
  std::lock_guard<std::mutex> lock(mu_);
  full_.push_back(std::move(chunk));
  changed_.notify_all();
}

void GzipReader::inflate_all() {
  std::string error;
  try {
    auto in = std::make_unique_for_overwrite<unsigned char[]>(kChunkSize);
    auto state = std::make_unique<inflate_state>();
    isal_inflate_init(state.get());
    state->crc_flag = ISAL_GZIP;
    bool eof = false;
    bool in_member = true;  // a member started (the file's first byte is one)
    Chunk out;
    while (true) {
      if (!take_free(out)) return;
      state->next_out = out.bytes.get();
      state->avail_out = static_cast<std::uint32_t>(kChunkSize);
      while (state->avail_out > 0) {
        if (state->avail_in == 0 && !eof) {
          std::size_t n = read_input(in.get(), kChunkSize);
          eof = n == 0;
          state->next_in = in.get();
          state->avail_in = static_cast<std::uint32_t>(n);
        }
        if (!in_member) {
          // Between members: another starts only with the magic; anything
          // else ends the stream (trailing bytes are ignored).
          if (state->avail_in == 0 && eof) break;
          if (state->avail_in < 2 && !eof) {
            // Keep the partial magic: move it to the front, read more.
            std::memmove(in.get(), state->next_in, state->avail_in);
            std::size_t n = read_input(in.get() + state->avail_in, kChunkSize - state->avail_in);
            eof = n == 0;
            state->next_in = in.get();
            state->avail_in += static_cast<std::uint32_t>(n);
            continue;
          }
          if (state->avail_in < 2 || state->next_in[0] != 0x1f || state->next_in[1] != 0x8b) {
            eof = true;
            state->avail_in = 0;
            break;
          }
          isal_inflate_reset(state.get());
          state->crc_flag = ISAL_GZIP;
          in_member = true;
        }
        const std::uint32_t before_in = state->avail_in, before_out = state->avail_out;
        int rc = isal_inflate(state.get());
        if (rc != ISAL_DECOMP_OK) throw Error("corrupt gzip data: " + isal_error(rc));
        if (state->block_state == ISAL_BLOCK_FINISH) {
          in_member = false;
          continue;
        }
        if (state->avail_in == 0 && eof) throw Error("truncated gzip data");
        if (state->avail_in == before_in && state->avail_out == before_out && state->avail_in > 0)
          throw Error("corrupt gzip data: no progress");
      }
      out.size = kChunkSize - state->avail_out;
      const bool last = out.size < kChunkSize || (!in_member && eof && state->avail_in == 0);
      if (out.size > 0) give_full(std::move(out));
      else {
        std::lock_guard<std::mutex> lock(mu_);
        free_.push_back(std::move(out));
      }
      if (last) break;
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::lock_guard<std::mutex> lock(mu_);
  ended_ = true;
  error_ = std::move(error);
  changed_.notify_all();
}

std::string_view GzipReader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  if (reading_.bytes) {
    free_.push_back(std::move(reading_));
    reading_ = Chunk{};
    changed_.notify_all();
  }
  changed_.wait(lock, [&] { return !full_.empty() || ended_; });
  if (!full_.empty()) {
    reading_ = std::move(full_.front());
    full_.pop_front();
    return {reinterpret_cast<const char*>(reading_.bytes.get()), reading_.size};
  }
  if (!error_.empty()) throw Error(error_);
  return {};
}

}  // namespace dockless
