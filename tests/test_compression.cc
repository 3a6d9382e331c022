// Tests for layers/compression: gzip output is checked by zlib (one member,
// CRC and ISIZE accepted) and by the system gzip, zstd output by libzstd.
#include "layers/compression.h"

#include <zlib.h>
#include <zstd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iterator>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "layers/stored_deflate.h"
#include "tests/test_support.h"

namespace dockless::detail {
// Defined in layers/compression.cc: makes the gzip worker fail on block
// `index` (-1 disables). Only the tests use it.
void gzip_fail_block_for_testing(std::int64_t index);
}  // namespace dockless::detail

namespace {

using dockless::Compression;
using dockless::CompressionOptions;
using dockless::Error;
using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t kMiB = std::size_t{1} << 20;

class VectorSink final : public dockless::ByteSink {
 public:
  void write(const void* data, std::size_t size) override {
    auto* p = static_cast<const std::uint8_t*>(data);
    bytes.insert(bytes.end(), p, p + size);
    threads.insert(std::this_thread::get_id());
  }
  void finish() override { ++finishes; }

  Bytes bytes;
  int finishes = 0;
  std::set<std::thread::id> threads;
};

// Throws on the n-th write (counting from 0).
class FailingSink final : public dockless::ByteSink {
 public:
  explicit FailingSink(int fail_at) : fail_at_(fail_at) {}
  void write(const void*, std::size_t) override {
    if (writes_++ == fail_at_) throw Error("disk full (test)");
  }
  void finish() override {}

 private:
  int fail_at_;
  int writes_ = 0;
};

// Mixed content like a layer tar: text, zero runs, random (already
// compressed) bytes and repeated records, in pieces of varying size.
Bytes mixed_data(std::size_t size, std::uint64_t seed = 42) {
  static const char* const kWords[] = {"import ", "numpy", "torch", " def ", "return ",
                                       "self.", "\n", "    ", "lib/python3.12/", "(x)", "= 0;"};
  std::mt19937_64 rng(seed);
  Bytes out;
  out.reserve(size);
  while (out.size() < size) {
    std::size_t piece = 1 + rng() % (200 * 1024);
    switch (rng() % 4) {
      case 0:
        for (std::size_t i = 0; i < piece; ) {
          const char* w = kWords[rng() % std::size(kWords)];
          for (; *w && i < piece; ++w, ++i) out.push_back(static_cast<std::uint8_t>(*w));
        }
        break;
      case 1: out.insert(out.end(), piece, 0); break;
      case 2:
        for (std::size_t i = 0; i < piece; ++i) out.push_back(static_cast<std::uint8_t>(rng()));
        break;
      default: {
        Bytes record(512);
        for (auto& b : record) b = static_cast<std::uint8_t>(rng() % 16);
        for (std::size_t i = 0; i < piece; ++i) out.push_back(record[i % record.size()]);
      }
    }
  }
  out.resize(size);
  return out;
}

Bytes random_bytes(std::size_t size, std::uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  Bytes out(size);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng());
  return out;
}

// "" when equal; otherwise a short description (Catch2 would print whole
// megabytes for a failed vector comparison).
std::string diff(const Bytes& a, const Bytes& b) {
  if (a == b) return "";
  auto m = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  return "sizes " + std::to_string(a.size()) + " and " + std::to_string(b.size()) +
         ", first difference at byte " + std::to_string(m.first - a.begin());
}

// Feeds `data` with write sizes taken in turn from `chunks` (empty: at once).
Bytes compress(const CompressionOptions& options, const Bytes& data,
               const std::vector<std::size_t>& chunks = {}) {
  VectorSink sink;
  auto c = dockless::make_compressor(options, sink);
  std::size_t pos = 0;
  for (std::size_t i = 0; pos < data.size(); ++i) {
    std::size_t n = chunks.empty() ? data.size() : std::min(chunks[i % chunks.size()], data.size() - pos);
    c->write(data.data() + pos, n);
    pos += n;
  }
  c->finish();
  REQUIRE(sink.finishes == 1);
  return sink.bytes;
}

CompressionOptions gzip(int threads = 2, int level = 0) {
  return {Compression::kGzip, level, threads};
}

CompressionOptions zstd(int threads = 2, int level = 0) {
  return {Compression::kZstd, level, threads};
}

// Inflates one gzip member and requires that it ends exactly at the end of
// `gz`: a second member or trailing bytes would fail here.
Bytes gunzip_one_member(const Bytes& gz) {
  z_stream zs{};
  REQUIRE(inflateInit2(&zs, 15 + 16) == Z_OK);
  Bytes out;
  std::uint8_t buf[1 << 16];
  zs.next_in = const_cast<Bytef*>(gz.data());
  zs.avail_in = static_cast<uInt>(gz.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = buf;
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.insert(out.end(), buf, buf + (sizeof buf - zs.avail_out));
  }
  std::string msg = zs.msg ? zs.msg : "";
  uInt left = zs.avail_in;
  inflateEnd(&zs);
  INFO("inflate: " << rc << " " << msg);
  REQUIRE(rc == Z_STREAM_END);  // Z_DATA_ERROR here would mean a bad CRC or ISIZE
  REQUIRE(left == 0);
  return out;
}

Bytes unzstd(const Bytes& z) {
  ZSTD_DStream* ds = ZSTD_createDStream();
  REQUIRE(ds != nullptr);
  Bytes out;
  Bytes buf(ZSTD_DStreamOutSize());
  ZSTD_inBuffer in{z.data(), z.size(), 0};
  std::size_t rc = 1;
  while (in.pos < in.size) {
    ZSTD_outBuffer o{buf.data(), buf.size(), 0};
    rc = ZSTD_decompressStream(ds, &o, &in);
    if (ZSTD_isError(rc)) break;
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(o.pos));
  }
  ZSTD_freeDStream(ds);
  INFO("zstd: " << (ZSTD_isError(rc) ? ZSTD_getErrorName(rc) : "ok"));
  REQUIRE(rc == 0);  // 0: a frame ended exactly here, checksum verified
  return out;
}

// Runs f on another thread; a hang becomes a failure instead of a stuck test
// run. f must not use Catch2 assertions (they are not thread-safe).
template <typename F>
auto within_deadline(F f, std::chrono::seconds limit = std::chrono::seconds(120)) {
  auto fut = std::async(std::launch::async, std::move(f));
  if (fut.wait_for(limit) != std::future_status::ready) {
    std::fprintf(stderr, "test_compression: operation hung for %lld s\n",
                 static_cast<long long>(limit.count()));
    std::abort();  // the future's destructor would wait forever
  }
  return fut.get();
}

bool have_program(const char* name) {
  return std::system((std::string("command -v ") + name + " >/dev/null 2>&1").c_str()) == 0;
}

void write_file(const std::filesystem::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}

Bytes read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

// Resets the failure seam even when an assertion throws.
struct FailBlock {
  explicit FailBlock(std::int64_t i) { dockless::detail::gzip_fail_block_for_testing(i); }
  ~FailBlock() { dockless::detail::gzip_fail_block_for_testing(-1); }
};

}  // namespace

TEST_CASE("compression names parse and print", "[compression]") {
  CHECK(dockless::parse_compression("gzip") == Compression::kGzip);
  CHECK(dockless::parse_compression("zstd") == Compression::kZstd);
  CHECK(dockless::parse_compression("none") == Compression::kNone);
  for (auto c : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    CHECK(dockless::parse_compression(dockless::compression_name(c)) == c);
  }
  CHECK_THROWS_AS(dockless::parse_compression("xz"), Error);
  CHECK_THROWS_WITH(dockless::parse_compression("GZIP"), Catch::Contains("GZIP"));
  CHECK_THROWS_AS(dockless::parse_compression(""), Error);
}

TEST_CASE("invalid levels and thread counts are rejected", "[compression]") {
  VectorSink sink;
  CHECK_THROWS_WITH(dockless::make_compressor(gzip(1, 4), sink),
                    Catch::Contains("level 4") && Catch::Contains("1-3"));
  CHECK_THROWS_WITH(dockless::make_compressor(gzip(1, -1), sink),
                    Catch::Contains("level -1") && Catch::Contains("1-3"));
  CHECK_THROWS_WITH(dockless::make_compressor(zstd(1, 20), sink),
                    Catch::Contains("level 20") && Catch::Contains("1-19"));
  CHECK_THROWS_AS(dockless::make_compressor(zstd(1, -3), sink), Error);
  CHECK_THROWS_AS(dockless::make_compressor(gzip(-1), sink), Error);
  for (int level : {0, 1, 2, 3}) CHECK_NOTHROW(dockless::make_compressor(gzip(1, level), sink));
  for (int level : {0, 1, 19}) CHECK_NOTHROW(dockless::make_compressor(zstd(1, level), sink));
  CHECK(sink.bytes.empty());
}

TEST_CASE("none passes bytes through", "[compression]") {
  Bytes data = mixed_data(300000);
  CHECK(diff(compress({Compression::kNone, 0, 0}, data, {1, 4096, 77777}), data) == "");
  CHECK(compress({Compression::kNone, 0, 0}, {}).empty());
}

TEST_CASE("gzip writes a fixed header and round-trips edge sizes", "[compression]") {
  const Bytes header = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, kMiB - 1, kMiB, kMiB + 1, 2 * kMiB,
                           3 * kMiB + 12345}) {
    for (int threads : {1, 3}) {
      INFO("size " << size << " threads " << threads);
      Bytes data = mixed_data(size, size);
      Bytes gz = compress(gzip(threads), data);
      REQUIRE(gz.size() >= 18);
      CHECK(diff(Bytes(gz.begin(), gz.begin() + 10), header) == "");
      CHECK(diff(gunzip_one_member(gz), data) == "");
    }
  }
}

TEST_CASE("gzip of nothing is a valid empty member", "[compression]") {
  Bytes gz = compress(gzip(), {});
  CHECK(gunzip_one_member(gz).empty());
  // ISIZE and CRC of nothing are both zero.
  CHECK(diff(Bytes(gz.end() - 8, gz.end()), Bytes(8, 0)) == "");
}

TEST_CASE("gzip output is one member and independent of threads and write sizes", "[compression]") {
  const Bytes data = mixed_data(10 * kMiB + 4321);
  const Bytes reference = compress(gzip(1), data);
  REQUIRE(diff(gunzip_one_member(reference), data) == "");
  CHECK(reference.size() < data.size() * 3 / 4);  // the mix is ~half random

  for (int threads : {2, 4, 0}) {
    INFO("threads " << threads);
    CHECK(diff(compress(gzip(threads), data), reference) == "");
  }
  const std::vector<std::vector<std::size_t>> chunkings = {
      {1}, {7}, {65536}, {3 * kMiB}, {1, 7, 65536, 3 * kMiB}, {kMiB - 1, 2}};
  for (const auto& chunks : chunkings) {
    INFO("first write size " << chunks.front() << ", " << chunks.size() << " sizes");
    CHECK(diff(compress(gzip(3), data, chunks), reference) == "");
  }
}

TEST_CASE("gzip levels 1-3 round-trip and are deterministic", "[compression]") {
  const Bytes data = mixed_data(3 * kMiB + 99, 5);
  std::vector<std::size_t> sizes;
  for (int level : {1, 2, 3}) {
    INFO("level " << level);
    Bytes gz = compress(gzip(1, level), data);
    CHECK(diff(gunzip_one_member(gz), data) == "");
    CHECK(diff(compress(gzip(4, level), data, {65536}), gz) == "");
    sizes.push_back(gz.size());
  }
  CHECK(sizes[2] < sizes[0]);  // the level reaches ISA-L
  CHECK(diff(compress(gzip(2, 0), data), compress(gzip(2, 2), data)) == "");  // default is level 2
}

TEST_CASE("gzip blocks use the previous 32 KiB as dictionary", "[compression]") {
  // Block 2 repeats the end of block 1: with the dictionary it costs a few
  // hundred bytes, without it 30 KiB of literals.
  Bytes data = random_bytes(kMiB);
  data.insert(data.end(), data.end() - 30 * 1024, data.end());
  Bytes gz = compress(gzip(2), data);
  CHECK(diff(gunzip_one_member(gz), data) == "");
  CHECK(gz.size() < kMiB + 8 * 1024);
}

TEST_CASE("bytes that do not compress go as stored blocks; bytes that do are deflated", "[compression]") {
  SECTION("random bytes: the layer is their size plus deflate's and gzip's headers, and gunzips back") {
    const Bytes data = random_bytes(5 * kMiB, 11);
    for (int level : {1, 2, 3}) {
      INFO("level " << level);
      Bytes gz = compress(gzip(2, level), data);
      CHECK(diff(gunzip_one_member(gz), data) == "");
      // Each 1 MiB block is 17 stored blocks of 5 header bytes; 18 bytes of gzip header and trailer.
      CHECK(gz.size() == data.size() + 5 * 17 * 5 + 18);
      CHECK(diff(compress(gzip(1, level), data, {4097}), gz) == "");  // the same whatever the threads
    }
  }
  SECTION("random bytes repeated within deflate's window: still deflated (the trial finds the matches)") {
    const Bytes chunk = random_bytes(16 * 1024, 12);
    Bytes data;
    for (int i = 0; i < 192; ++i) data.insert(data.end(), chunk.begin(), chunk.end());  // 3 MiB
    Bytes gz = compress(gzip(2), data);
    CHECK(diff(gunzip_one_member(gz), data) == "");
    CHECK(gz.size() < data.size() / 2);
  }
  SECTION("text, machine-code-like and mixed bytes are not taken for random") {
    Bytes text = mixed_data(kMiB, 3);
    CHECK_FALSE(dockless::bytes_look_random(text.data(), text.size()));
    Bytes skewed(kMiB);
    std::mt19937_64 rng(5);
    for (auto& b : skewed) b = static_cast<std::uint8_t>(rng() % 200);  // 7.6 bits a byte
    CHECK_FALSE(dockless::bytes_look_random(skewed.data(), skewed.size()));
    Bytes random = random_bytes(kMiB, 4);
    CHECK(dockless::bytes_look_random(random.data(), random.size()));
    CHECK_FALSE(dockless::bytes_look_random(random.data(), dockless::kStoredMinBlock - 1));  // too short to judge
  }
  SECTION("stored blocks alone are a valid raw deflate stream, at their announced size") {
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{65535}, std::size_t{65536}, 3 * kMiB + 7}) {
      INFO("n " << n);
      const Bytes data = random_bytes(n, n);
      Bytes raw(dockless::stored_deflate_size(n));
      CHECK(dockless::write_stored_deflate(data.data(), n, /*final_block=*/true, raw.data()) == raw.size());
      z_stream zs{};
      REQUIRE(inflateInit2(&zs, -15) == Z_OK);
      Bytes out(n + 1);
      zs.next_in = raw.data();
      zs.avail_in = static_cast<uInt>(raw.size());
      zs.next_out = out.data();
      zs.avail_out = static_cast<uInt>(out.size());
      const int rc = inflate(&zs, Z_FINISH);
      out.resize(zs.total_out);
      inflateEnd(&zs);
      CHECK(rc == Z_STREAM_END);
      CHECK(diff(out, data) == "");
    }
  }
}

TEST_CASE("gzip writes downstream only from the calling thread", "[compression]") {
  const Bytes data = mixed_data(6 * kMiB);
  VectorSink sink;
  auto c = dockless::make_compressor(gzip(4), sink);
  c->write(data.data(), data.size());
  c->finish();
  CHECK(sink.threads == std::set<std::thread::id>{std::this_thread::get_id()});
  CHECK(sink.finishes == 1);
  CHECK_THROWS_AS(c->write("x", 1), Error);  // used after finish
}

TEST_CASE("gzip output passes the system gzip -t and gzip -dc", "[compression]") {
  // A missing tool fails the case: a skipped check must not count as a pass.
  if (!have_program("gzip")) FAIL("gzip is not installed (scripts/setup.sh installs it)");
  dockless::test::TempDir dir;
  for (std::size_t size : {std::size_t{0}, kMiB, 5 * kMiB + 3}) {
    INFO("size " << size);
    Bytes data = mixed_data(size, size + 1);
    write_file(dir / "layer.gz", compress(gzip(2), data, {65536}));
    std::string gz = (dir / "layer.gz").string();
    std::string out = (dir / "layer").string();
    CHECK(std::system(("gzip -t '" + gz + "'").c_str()) == 0);
    REQUIRE(std::system(("gzip -dc '" + gz + "' > '" + out + "'").c_str()) == 0);
    CHECK(diff(read_file(out), data) == "");
  }
}

TEST_CASE("a downstream error reaches the caller without a hang", "[compression]") {
  const Bytes data = mixed_data(10 * kMiB);
  for (auto options : {gzip(1), gzip(4), zstd(2)}) {
    for (int fail_at : {0, 3}) {
      INFO(dockless::compression_name(options.kind) << " threads " << options.threads
                                                    << " fail at write " << fail_at);
      std::string what = within_deadline([&] {
        FailingSink sink(fail_at);
        auto c = dockless::make_compressor(options, sink);
        try {
          for (std::size_t pos = 0; pos < data.size(); pos += 65536) {
            c->write(data.data() + pos, std::min<std::size_t>(65536, data.size() - pos));
          }
          c->finish();
        } catch (const Error& e) {
          // Once failed, the sink refuses to go on.
          try {
            c->finish();
          } catch (const Error&) {
            return std::string(e.what());
          }
          return std::string("finish() after an error did not throw");
        }
        return std::string("no error");
      });
      CHECK(what == "disk full (test)");
    }
  }
}

TEST_CASE("a gzip worker failure reaches the caller as Error", "[compression]") {
  const Bytes data = mixed_data(10 * kMiB);
  for (std::int64_t block : {0, 4, 9}) {  // 9 is the last, sent by finish()
    for (int threads : {1, 4}) {
      INFO("failing block " << block << " threads " << threads);
      FailBlock fail(block);
      std::string what = within_deadline([&] {
        VectorSink sink;
        auto c = dockless::make_compressor(gzip(threads), sink);
        try {
          c->write(data.data(), data.size());
          c->finish();
        } catch (const Error& e) {
          return std::string(e.what());
        }
        return std::string("no error");
      });
      CHECK_THAT(what, Catch::Contains("gzip") && Catch::Contains("injected failure in block " +
                                                                  std::to_string(block)));
    }
  }
}

TEST_CASE("destroying a compressor without finish() does not hang", "[compression]") {
  const Bytes data = mixed_data(10 * kMiB);
  for (auto options : {gzip(1), gzip(4), zstd(2)}) {
    INFO(dockless::compression_name(options.kind) << " threads " << options.threads);
    int finishes = within_deadline([&] {
      VectorSink sink;
      {
        auto idle = dockless::make_compressor(options, sink);  // never written
      }
      {
        auto c = dockless::make_compressor(options, sink);
        c->write(data.data(), data.size());
      }
      return sink.finishes;
    });
    CHECK(finishes == 0);
  }
}

TEST_CASE("zstd round-trips with a checksum, independent of threads and write sizes",
          "[compression]") {
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, kMiB, 10 * kMiB + 17}) {
    INFO("size " << size);
    const Bytes data = mixed_data(size, size + 3);
    const Bytes reference = compress(zstd(1), data);
    REQUIRE(reference.size() >= 5);
    CHECK(diff(unzstd(reference), data) == "");
    // Frame header descriptor (after the 4-byte magic): bit 2 = checksum.
    CHECK((reference[4] & 0x04) != 0);
    for (int threads : {2, 4}) {
      INFO("threads " << threads);
      CHECK(diff(compress(zstd(threads), data), reference) == "");
    }
    CHECK(diff(compress(zstd(4), data, {7, 65536, 3 * kMiB}), reference) == "");
  }
}

TEST_CASE("zstd levels change the output and round-trip", "[compression]") {
  const Bytes data = mixed_data(2 * kMiB, 9);
  Bytes l1 = compress(zstd(2, 1), data);
  Bytes l19 = compress(zstd(2, 19), data);
  CHECK(diff(unzstd(l1), data) == "");
  CHECK(diff(unzstd(l19), data) == "");
  CHECK(l19.size() < l1.size());
  CHECK(diff(compress(zstd(2, 0), data), compress(zstd(2, 3), data)) == "");  // default is level 3
}

TEST_CASE("zstd output passes the system zstd -t", "[compression]") {
  // A missing tool fails the case: a skipped check must not count as a pass.
  if (!have_program("zstd")) FAIL("zstd is not installed (scripts/setup.sh installs it)");
  dockless::test::TempDir dir;
  write_file(dir / "layer.zst", compress(zstd(2), mixed_data(3 * kMiB)));
  CHECK(std::system(("zstd -q -t '" + (dir / "layer.zst").string() + "'").c_str()) == 0);
}
