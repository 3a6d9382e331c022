// Tests for base/growing_file, as a blob being stored uses it
// (BlobWriter::follow): a reader gets the blob's bytes while they are
// written, in order, and learns whether the blob ended whole.
#include "base/growing_file.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "base/error.h"
#include "oci/blob_store.h"
#include "oci/digest.h"
#include "tests/test_support.h"

using dockless::BlobStore;
using dockless::BlobWriter;
using dockless::GrowingFile;
using dockless::test::TempDir;

namespace {
std::string read_all(GrowingFile& f) {
  std::string out;
  char buf[1000];
  while (std::size_t n = f.read(buf, sizeof buf)) out.append(buf, n);
  return out;
}
}  // namespace

TEST_CASE("a blob's follower reads it as it is written, and ends where the blob does", "[growing_file]") {
  TempDir dir;
  BlobStore store(dir.path());
  std::string sent;
  for (int i = 0; i < 20000; ++i) sent += std::to_string(i) + ",";
  const std::size_t half = sent.size() / 2;
  auto file = std::make_shared<GrowingFile>();
  std::string got;
  std::atomic<std::size_t> read_so_far{0};
  dockless::Digest digest;
  bool read_before_whole = false;
  {
    BlobWriter blob(store);
    blob.follow(file);
    std::thread reader([&] {
      char buf[1000];
      while (std::size_t n = file->read(buf, sizeof buf)) {
        got.append(buf, n);
        read_so_far = got.size();
      }
    });
    blob.write(sent.data(), half);
    // The reader gets the first half while the blob is still being written.
    for (int i = 0; i < 5000 && read_so_far < half; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    read_before_whole = read_so_far == half && !file->whole();
    for (std::size_t at = half; at < sent.size(); at += 4093)
      blob.write(sent.data() + at, std::min<std::size_t>(4093, sent.size() - at));
    digest = blob.commit();
    reader.join();
  }
  CHECK(read_before_whole);
  CHECK(got == sent);
  CHECK(file->whole());
  CHECK(file->size() == sent.size());
  CHECK(digest == dockless::sha256_of(sent));
  CHECK(store.read(digest) == sent);
}

TEST_CASE("a follower of a blob that is never committed, or starts over, stops with an error", "[growing_file]") {
  TempDir dir;
  BlobStore store(dir.path());
  SECTION("the writer fails: a waiting read throws") {
    auto file = std::make_shared<GrowingFile>();
    std::string error;
    std::thread reader;
    {
      BlobWriter blob(store);
      blob.follow(file);
      blob.write("abc", 3);
      reader = std::thread([&] {
        try {
          read_all(*file);
        } catch (const dockless::Error& e) {
          error = e.what();
        }
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the reader waits for more
    }  // destroyed uncommitted
    reader.join();
    CHECK(error.find("abandoned") != std::string::npos);
    CHECK_FALSE(file->whole());
  }
  SECTION("reset(): what the follower read is no longer the blob") {
    auto file = std::make_shared<GrowingFile>();
    BlobWriter blob(store);
    blob.follow(file);
    blob.write("abc", 3);
    blob.reset();
    char buf[8];
    CHECK_THROWS_AS(file->read(buf, sizeof buf), dockless::Error);
  }
  SECTION("a reader that stops (abandon) leaves the blob to be stored") {
    auto file = std::make_shared<GrowingFile>();
    BlobWriter blob(store);
    blob.follow(file);
    file->abandon();
    blob.write("abcdef", 6);
    CHECK(store.read(blob.commit()) == "abcdef");
  }
}
