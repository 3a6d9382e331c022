// Tests for src/build/platform_uv: the --uv option, the index URLs a build
// looks up a platform's uv wheel in, and fetching that wheel (the right one
// for the platform, its hash checked, nothing left behind on a mismatch).
#include "src/build/platform_uv.h"

#include <catch2/catch.hpp>

#include <string>

#include "base/error.h"

using namespace dockless;

TEST_CASE("--uv: a plain path is the host's uv", "[platform_uv]") {
  auto [plat, path] = parse_uv_option("/opt/uv/bin/uv");
  CHECK(plat.empty());
  CHECK(path == "/opt/uv/bin/uv");
  // '=' inside a path is not a platform separator.
  CHECK(parse_uv_option("/opt/a=b/uv").first.empty());
  CHECK(parse_uv_option("./x=y").second == "./x=y");
}

TEST_CASE("--uv: PLATFORM=PATH, the platform normalised", "[platform_uv]") {
  auto [plat, path] = parse_uv_option("linux/aarch64=/tmp/uv-arm");
  CHECK(plat == "linux/arm64");
  CHECK(path == "/tmp/uv-arm");
  CHECK(parse_uv_option("linux/amd64=uv").first == "linux/amd64");
  CHECK(parse_uv_option("linux/arm64/v8=/u").first == "linux/arm64/v8");
}

TEST_CASE("--uv: bad values are usage errors", "[platform_uv]") {
  CHECK_THROWS_AS(parse_uv_option(""), UsageError);
  CHECK_THROWS_AS(parse_uv_option("linux/arm64="), UsageError);
  CHECK_THROWS_WITH(parse_uv_option("arm64=/x"), Catch::Contains("os/arch"));
  CHECK_THROWS_AS(parse_uv_option("linux//x=/u"), UsageError);
}
