// Tests for layers/layer_writer: a directory becomes a compressed blob in one
// pass. The stored file is re-hashed and decompressed here (zlib, libzstd) to
// check the descriptor's digest and size and the diffID independently.
#include "layers/layer_writer.h"

#include <zlib.h>
#include <zstd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "layers/compression.h"
#include "layers/tar_writer.h"
#include "oci/blob_store.h"
#include "oci/digest.h"
#include "base/error.h"
#include "oci/media_types.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;

namespace {

using dockless::BlobStore;
using dockless::ByteSink;
using dockless::Compression;
using dockless::CompressionOptions;
using dockless::Digest;
using dockless::Error;
using dockless::LayerBlob;
using dockless::sha256_of;
using dockless::TarOptions;
using dockless::test::TempDir;
using dockless::test::write_text;

class StringSink final : public ByteSink {
 public:
  void write(const void* data, std::size_t size) override {
    bytes.append(static_cast<const char*>(data), size);
  }
  void finish() override {}
  std::string bytes;
};

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// gunzip with zlib; every member, as `gzip -d` does.
std::string gunzip(const std::string& in) {
  z_stream z{};
  REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[1 << 16];
  int rc = Z_OK;
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      REQUIRE(inflateReset(&z) == Z_OK);
      continue;
    }
    INFO("zlib: " << (z.msg ? z.msg : "") << " rc " << rc);
    REQUIRE(rc == Z_OK);
  }
  inflateEnd(&z);
  return out;
}

std::string unzstd(const std::string& in) {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  REQUIRE(d != nullptr);
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  std::string out;
  std::vector<char> buf(ZSTD_DStreamOutSize());
  std::size_t rc = 1;
  while (ib.pos < ib.size) {
    ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
    rc = ZSTD_decompressStream(d, &ob, &ib);
    INFO("zstd: " << ZSTD_getErrorName(rc));
    REQUIRE_FALSE(ZSTD_isError(rc));
    out.append(buf.data(), ob.pos);
  }
  ZSTD_freeDCtx(d);
  CHECK(rc == 0);  // the last frame is complete
  return out;
}

std::string decompress(Compression kind, const std::string& blob) {
  switch (kind) {
    case Compression::kGzip: return gunzip(blob);
    case Compression::kZstd: return unzstd(blob);
    case Compression::kNone: return blob;
  }
  return blob;
}

// Semi-compressible bytes (text-like with noise), deterministic.
std::string payload(std::size_t size, unsigned seed) {
  static const char* const kWords[] = {"import ", "numpy", "torch", " def ", "return ", "\n", "    ",
                                       "lib/python3.12/", "self.", "= 0;"};
  std::string s;
  s.reserve(size);
  unsigned x = seed * 2654435761u + 7;
  while (s.size() < size) {
    x = x * 1103515245u + 12345u;
    if ((x >> 28) < 3) s.push_back(static_cast<char>(x >> 16));
    else s += kWords[(x >> 16) % 10];
  }
  s.resize(size);
  return s;
}

// A venv-like tree, ~3.5 MiB so gzip spans several 1 MiB blocks.
void make_tree(const fs::path& root) {
  write_text(root / "bin" / "python", "#!/bin/sh\nexec python3 \"$@\"\n");
  write_text(root / "pyvenv.cfg", "home = /usr/bin\n");
  write_text(root / "lib" / "python3.12" / "site-packages" / "big" / "core.so", payload(3 << 20, 1));
  write_text(root / "lib" / "python3.12" / "site-packages" / "big" / "__init__.py", payload(500000, 2));
  fs::create_symlink("python", root / "bin" / "python3");
  for (int i = 0; i < 20; ++i)
    write_text(root / "lib" / "python3.12" / "site-packages" / ("m" + std::to_string(i) + ".py"),
               payload(1000 + static_cast<std::size_t>(i) * 37, 10u + static_cast<unsigned>(i)));
}

LayerBlob layer_of(const fs::path& dir, const CompressionOptions& c, const BlobStore& store,
                   const TarOptions& tar = {}) {
  return dockless::write_layer(
      [&](ByteSink& sink) { dockless::write_directory_tar(dir, tar, sink); }, c, store);
}

std::string plain_tar(const fs::path& dir, const TarOptions& tar = {}) {
  StringSink s;
  dockless::write_directory_tar(dir, tar, s);
  return s.bytes;
}

CompressionOptions opts(Compression kind, int threads = 0) {
  CompressionOptions c;
  c.kind = kind;
  c.threads = threads;
  return c;
}

}  // namespace

TEST_CASE("layer media types are the OCI ones", "[layer_writer]") {
  CHECK(dockless::layer_media_type(Compression::kGzip) == "application/vnd.oci.image.layer.v1.tar+gzip");
  CHECK(dockless::layer_media_type(Compression::kZstd) == "application/vnd.oci.image.layer.v1.tar+zstd");
  CHECK(dockless::layer_media_type(Compression::kNone) == "application/vnd.oci.image.layer.v1.tar");
  for (Compression c : {Compression::kGzip, Compression::kZstd, Compression::kNone})
    CHECK(dockless::media_type::is_layer(dockless::layer_media_type(c)));
}

TEST_CASE("write_layer stores a blob whose digest, size and diffID check out",
          "[layer_writer]") {
  TempDir tmp;
  make_tree(tmp / "venv");
  TarOptions tar;
  tar.dest = "/opt/venv";
  const std::string expected_tar = plain_tar(tmp / "venv", tar);

  for (Compression kind : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    DYNAMIC_SECTION("compression " << dockless::compression_name(kind)) {
      BlobStore store(tmp / ("store-" + std::string(dockless::compression_name(kind))));
      const LayerBlob layer = layer_of(tmp / "venv", opts(kind), store, tar);
      const Digest& digest = layer.descriptor.digest;

      // The descriptor describes the stored file exactly.
      REQUIRE(store.contains(digest));
      const std::string blob = file_bytes(store.path_of(digest));
      CHECK(sha256_of(blob) == digest);
      CHECK(static_cast<std::int64_t>(blob.size()) == layer.descriptor.size);
      CHECK(store.size_of(digest) == blob.size());
      CHECK(layer.descriptor.media_type == dockless::layer_media_type(kind));
      CHECK(entries(store.blob_dir()) == std::vector<std::string>{digest.hex()});

      // The diffID is the digest of the uncompressed tar, which is exactly
      // what the tar writer produces.
      const std::string tar_bytes = decompress(kind, blob);
      CHECK(sha256_of(tar_bytes) == layer.diff_id);
      CHECK(layer.uncompressed_size == tar_bytes.size());
      CHECK(tar_bytes == expected_tar);
      CHECK(sha256_of(expected_tar) == layer.diff_id);

      if (kind == Compression::kNone) {
        CHECK(digest == layer.diff_id);
      } else {
        CHECK(digest != layer.diff_id);
        CHECK(blob.size() < tar_bytes.size());
      }
      if (kind == Compression::kGzip) {
        // Reproducible gzip header: magic, deflate, mtime 0, OS 3 (Unix).
        REQUIRE(blob.size() > 18);
        CHECK(static_cast<unsigned char>(blob[0]) == 0x1f);
        CHECK(static_cast<unsigned char>(blob[1]) == 0x8b);
        CHECK(blob.substr(4, 4) == std::string(4, '\0'));
        CHECK(static_cast<unsigned char>(blob[9]) == 3);
      }
    }
  }
}

TEST_CASE("the same directory twice gives the same layer digest and diffID", "[layer_writer]") {
  TempDir tmp;
  make_tree(tmp / "venv");
  for (Compression kind : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    DYNAMIC_SECTION("compression " << dockless::compression_name(kind)) {
      BlobStore a(tmp / "a");
      BlobStore b(tmp / "b");
      const LayerBlob first = layer_of(tmp / "venv", opts(kind), a);
      const LayerBlob again = layer_of(tmp / "venv", opts(kind), a);  // same store: overwrites
      const LayerBlob other = layer_of(tmp / "venv", opts(kind), b);
      CHECK(first.descriptor.digest == again.descriptor.digest);
      CHECK(first.descriptor.digest == other.descriptor.digest);
      CHECK(first.diff_id == again.diff_id);
      CHECK(first.diff_id == other.diff_id);
      CHECK(first.descriptor.size == other.descriptor.size);
      CHECK(a.read(first.descriptor.digest) == b.read(other.descriptor.digest));
      CHECK(entries(a.blob_dir()).size() == 1);
    }
  }
}

TEST_CASE("the layer digest does not depend on the number of compression threads",
          "[layer_writer]") {
  TempDir tmp;
  make_tree(tmp / "venv");
  for (Compression kind : {Compression::kGzip, Compression::kZstd}) {
    DYNAMIC_SECTION("compression " << dockless::compression_name(kind)) {
      BlobStore store(tmp / "store");
      const LayerBlob one = layer_of(tmp / "venv", opts(kind, 1), store);
      const LayerBlob two = layer_of(tmp / "venv", opts(kind, 2), store);
      const LayerBlob four = layer_of(tmp / "venv", opts(kind, 4), store);
      const LayerBlob dflt = layer_of(tmp / "venv", opts(kind, 0), store);
      CHECK(one.descriptor.digest == two.descriptor.digest);
      CHECK(one.descriptor.digest == four.descriptor.digest);
      CHECK(one.descriptor.digest == dflt.descriptor.digest);
      CHECK(one.diff_id == two.diff_id);
      CHECK(decompress(kind, store.read(one.descriptor.digest)) == plain_tar(tmp / "venv"));
    }
  }
}

TEST_CASE("a producer that throws midway leaves no blob and no temp file", "[layer_writer]") {
  TempDir tmp;
  make_tree(tmp / "venv");
  for (Compression kind : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    DYNAMIC_SECTION("compression " << dockless::compression_name(kind)) {
      BlobStore store(tmp / "store");
      SECTION("a producer writing 3 MiB then failing") {
        const std::string chunk = payload(1 << 20, 5);
        CHECK_THROWS_WITH(dockless::write_layer(
                              [&](ByteSink& sink) {
                                for (int i = 0; i < 3; ++i) sink.write(chunk.data(), chunk.size());
                                throw Error("uv crashed (test)");
                              },
                              opts(kind, 2), store),
                          Catch::Matchers::Contains("uv crashed (test)"));
      }
      SECTION("the tar writer failing on a file midway") {
        TarOptions tar;
        tar.include = [](const std::string& rel, bool) {
          if (rel == "lib/python3.12/site-packages/m5.py") throw Error("walk failed (test)");
          return true;
        };
        CHECK_THROWS_WITH(layer_of(tmp / "venv", opts(kind, 2), store, tar),
                          Catch::Matchers::Contains("walk failed (test)"));
      }
      SECTION("a producer that throws before writing anything") {
        CHECK_THROWS_AS(dockless::write_layer([](ByteSink&) { throw std::runtime_error("early"); },
                                              opts(kind), store),
                        std::runtime_error);
      }
      CHECK(entries(store.blob_dir()).empty());
      // The store still works afterwards.
      const LayerBlob ok = layer_of(tmp / "venv", opts(kind), store);
      CHECK(entries(store.blob_dir()) == std::vector<std::string>{ok.descriptor.digest.hex()});
    }
  }
}

TEST_CASE("an empty directory is a valid layer", "[layer_writer]") {
  TempDir tmp;
  fs::create_directories(tmp / "empty");
  for (Compression kind : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    DYNAMIC_SECTION("compression " << dockless::compression_name(kind)) {
      BlobStore store(tmp / "store");
      const LayerBlob layer = layer_of(tmp / "empty", opts(kind), store);
      const std::string blob = store.read(layer.descriptor.digest);
      const std::string tar_bytes = decompress(kind, blob);
      CHECK(tar_bytes == plain_tar(tmp / "empty"));
      CHECK(sha256_of(tar_bytes) == layer.diff_id);
      CHECK(layer.uncompressed_size == tar_bytes.size());
      CHECK(layer.descriptor.size == static_cast<std::int64_t>(blob.size()));
    }
  }
}

namespace {

/// A producer of `tar`'s bytes from `start` on, in uneven pieces (as a tar
/// writer's are).
std::function<void(ByteSink&)> bytes_from(const std::string& tar, std::uint64_t start) {
  return [&tar, start](ByteSink& sink) {
    std::size_t pos = static_cast<std::size_t>(start), piece = 5000;
    while (pos < tar.size()) {
      std::size_t n = std::min(piece, tar.size() - pos);
      sink.write(tar.data() + pos, n);
      pos += n;
      piece = piece * 3 % 70001 + 1;
    }
    sink.finish();
  };
}

}  // namespace

TEST_CASE("a content-defined gzip layer taken up from any of its points is the layer made from the start",
          "[layer_writer]") {
  using dockless::GzipBlocking;
  using dockless::GzipResumable;
  using dockless::GzipResumePoint;
  const std::string tar = payload(3 << 20, 7);
  CompressionOptions gz;
  gz.kind = Compression::kGzip;
  gz.threads = 2;

  // Made from the start, with and without the compressor's own hashes.
  StringSink plain_out;
  LayerBlob plain = dockless::compress_layer(bytes_from(tar, 0), gz, plain_out, GzipBlocking{true, nullptr});
  // A layer of `stream` with its points: from the start, or from point p
  // of `first` (the producer starting at `start`).
  auto make = [&gz](const std::string& stream, GzipResumable& points, StringSink& out) {
    return dockless::compress_layer(bytes_from(stream, 0), gz, out, GzipBlocking{true, nullptr, &points});
  };
  GzipResumable first;
  StringSink first_out;
  LayerBlob made = make(tar, first, first_out);
  auto resume = [&gz, &first_out](const std::string& stream, const GzipResumePoint& p, std::uint64_t start,
                                  GzipResumable& points, StringSink& out) {
    return dockless::resume_layer(bytes_from(stream, start), start, p,
                                  std::string_view(first_out.bytes.data(), p.blob_offset), gz, out,
                                  GzipBlocking{true, nullptr, &points});
  };
  CHECK(first_out.bytes == plain_out.bytes);
  CHECK(made.descriptor.digest == plain.descriptor.digest);
  CHECK(made.descriptor.digest == sha256_of(first_out.bytes));
  CHECK(made.descriptor.size == static_cast<std::int64_t>(first_out.bytes.size()));
  CHECK(made.diff_id == sha256_of(tar));
  CHECK(made.uncompressed_size == tar.size());
  CHECK(gunzip(first_out.bytes) == tar);
  // ~190 KiB blocks: a point at each boundary after the first block.
  REQUIRE(first.points.size() >= 8);
  for (std::size_t i = 0; i < first.points.size(); ++i) {
    const GzipResumePoint& p = first.points[i];
    CHECK(p.block == static_cast<std::int64_t>(i) + 1);
    CHECK(p.tar_hash.bytes == p.tar_offset / 64 * 64);
    CHECK(p.blob_hash.bytes == p.blob_offset / 64 * 64);
    CHECK(p.crc == crc32(0, reinterpret_cast<const Bytef*>(tar.data()), static_cast<uInt>(p.tar_offset)));
  }

  for (std::size_t i = 0; i < first.points.size(); i += 3) {
    const GzipResumePoint& p = first.points[i];
    INFO("resumed at block " << p.block);
    // The producer starts anywhere at or before the dictionary.
    const std::uint64_t start = p.tar_offset - dockless::kGzipResumeDictSize - (i % 2 == 0 ? 0 : 1234);

    GzipResumable again;
    StringSink out;
    LayerBlob resumed = resume(tar, p, start, again, out);
    CHECK(out.bytes == first_out.bytes);
    CHECK(resumed.descriptor.digest == made.descriptor.digest);
    CHECK(resumed.descriptor.size == made.descriptor.size);
    CHECK(resumed.diff_id == made.diff_id);
    CHECK(resumed.uncompressed_size == made.uncompressed_size);
    // The points from there on are the first version's.
    CHECK(std::vector<GzipResumePoint>(first.points.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                                       first.points.end()) == again.points);

    // An edit after the point: the same layer as one made from the start.
    std::string edited = tar;
    edited.insert(std::min<std::size_t>(edited.size(), p.tar_offset + 70000), "an edit\n");
    GzipResumable fresh_points;
    StringSink fresh_out;
    LayerBlob fresh = make(edited, fresh_points, fresh_out);
    GzipResumable edit_points;
    StringSink edit_out;
    LayerBlob edit = resume(edited, p, start, edit_points, edit_out);
    CHECK(edit_out.bytes == fresh_out.bytes);
    CHECK(edit.descriptor.digest == fresh.descriptor.digest);
    CHECK(edit.diff_id == sha256_of(edited));
    CHECK(edit.uncompressed_size == edited.size());
    CHECK(std::vector<GzipResumePoint>(fresh_points.points.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                                       fresh_points.points.end()) == edit_points.points);
  }

  // A tar that ends before the point is an error, not a layer.
  const GzipResumePoint& last = first.points.back();
  const std::string cut_short = tar.substr(0, last.tar_offset - 10);
  GzipResumable r;
  StringSink out;
  CHECK_THROWS_AS(resume(cut_short, last, 0, r, out), Error);
}
