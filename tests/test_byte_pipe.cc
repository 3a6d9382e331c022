// Tests for base/byte_pipe: what goes in comes out in order across threads,
// a try_write takes all or nothing, and either end can stop the other.
#include "base/byte_pipe.h"

#include <catch2/catch.hpp>

#include <string>
#include <thread>

#include "base/error.h"

using dockless::BytePipe;

namespace {
std::string drain(BytePipe& pipe) {
  std::string out;
  char buf[7];
  while (std::size_t n = pipe.read(buf, sizeof buf)) out.append(buf, n);
  return out;
}
}  // namespace

TEST_CASE("a byte pipe carries a stream larger than itself, in order", "[byte_pipe]") {
  BytePipe pipe(64);
  std::string sent;
  for (int i = 0; i < 2000; ++i) sent += std::to_string(i) + ",";
  std::thread writer([&] {
    for (std::size_t at = 0; at < sent.size(); at += 13) pipe.write(sent.data() + at, std::min<std::size_t>(13, sent.size() - at));
    pipe.close(nullptr);
  });
  CHECK(drain(pipe) == sent);
  writer.join();
}

TEST_CASE("try_write takes all of its bytes or none, and never waits", "[byte_pipe]") {
  BytePipe pipe(10);
  CHECK(pipe.try_write("abcdef", 6));
  CHECK_FALSE(pipe.try_write("ghijk", 5));  // 4 free: nothing taken
  CHECK(pipe.try_write("ghij", 4));
  char buf[16];
  CHECK(std::string(buf, pipe.read(buf, sizeof buf)) == "abcdefghij");
  CHECK(pipe.try_write("klm", 3));  // wraps around the buffer's end
  pipe.close(nullptr);
  CHECK_FALSE(pipe.try_write("n", 1));  // closed: no more bytes
  CHECK(drain(pipe) == "klm");
}

TEST_CASE("a byte pipe's reader gets the writer's error, its writer the reader's leaving", "[byte_pipe]") {
  SECTION("closed with an error: read after the last byte throws it") {
    BytePipe pipe(10);
    pipe.write("ab", 2);
    pipe.close(std::make_exception_ptr(dockless::Error("download failed")));
    char buf[4];
    CHECK(pipe.read(buf, sizeof buf) == 2);
    CHECK_THROWS_WITH(pipe.read(buf, sizeof buf), "download failed");
  }
  SECTION("cancelled: a blocked write throws, try_write refuses") {
    BytePipe pipe(4);
    pipe.write("abcd", 4);
    std::thread reader([&] { pipe.cancel(); });
    CHECK_THROWS_AS(pipe.write("e", 1), dockless::Error);
    reader.join();
    CHECK_FALSE(pipe.try_write("e", 1));
  }
}
