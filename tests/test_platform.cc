// Platform parsing, docker's architecture aliases, and index-entry matching.
#include "oci/platform.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "base/error.h"

using dockless::Error;
using dockless::Platform;

namespace {

struct ParseCase {
  std::string input;
  std::string os;
  std::string architecture;
  std::string variant;
};

struct InvalidCase {
  std::string input;
  std::string fragment;
};

const std::vector<ParseCase> kParseCases = {
    {"linux/amd64", "linux", "amd64", ""},
    {"linux/x86_64", "linux", "amd64", ""},
    {"linux/x86-64", "linux", "amd64", ""},
    {"Linux/AMD64", "linux", "amd64", ""},
    {"linux/arm64", "linux", "arm64", ""},
    {"linux/aarch64", "linux", "arm64", ""},
    {"linux/arm64/v8", "linux", "arm64", "v8"},
    {"linux/arm64/8", "linux", "arm64", "v8"},
    {"linux/aarch64/v9", "linux", "arm64", "v9"},
    {"linux/armhf", "linux", "arm", "v7"},
    {"linux/armel", "linux", "arm", "v6"},
    {"linux/arm", "linux", "arm", "v7"},  // docker's default arm variant
    {"linux/arm/v6", "linux", "arm", "v6"},
    {"linux/arm/7", "linux", "arm", "v7"},
    {"linux/armv7l", "linux", "arm", "v7"},
    {"linux/i386", "linux", "386", ""},
    {"linux/i686", "linux", "386", ""},
    {"linux/386", "linux", "386", ""},
    {"linux/ppc64le", "linux", "ppc64le", ""},
    {"linux/s390x", "linux", "s390x", ""},
    {"linux/riscv64", "linux", "riscv64", ""},
    {"windows/amd64", "windows", "amd64", ""},
};

const std::vector<InvalidCase> kInvalidCases = {
    {"", "empty"},
    {"linux", "missing architecture"},
    {"linux/", "architecture is empty"},
    {"/amd64", "os is empty"},
    {"linux//v7", "architecture is empty"},
    {"linux/arm/", "variant is empty"},
    {"linux/arm/v7/extra", "too many"},
    {"linux/amd 64", "architecture \"amd 64\" may contain only"},
    {"lin:ux/amd64", "os \"lin:ux\" may contain only"},
};

}  // namespace

TEST_CASE("platforms parse with docker's aliases normalised", "[platform]") {
  for (const ParseCase& c : kParseCases) {
    CAPTURE(c.input);
    Platform p = Platform::parse(c.input);
    CHECK(p.os == c.os);
    CHECK(p.architecture == c.architecture);
    CHECK(p.variant == c.variant);
  }
}

TEST_CASE("malformed platforms throw one line naming the input", "[platform]") {
  for (const InvalidCase& c : kInvalidCases) {
    CAPTURE(c.input);
    try {
      Platform::parse(c.input);
      FAIL("parse accepted an invalid platform");
    } catch (const Error& e) {
      std::string message = e.what();
      CAPTURE(message);
      CHECK(message.find(c.fragment) != std::string::npos);
      CHECK(message.find("invalid platform \"" + c.input + "\"") != std::string::npos);
      CHECK(message.find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("str() joins the parts and parses back", "[platform]") {
  CHECK(Platform::parse("linux/x86_64").str() == "linux/amd64");
  CHECK(Platform::parse("linux/armhf").str() == "linux/arm/v7");
  CHECK(Platform::parse("linux/arm64/v8").str() == "linux/arm64/v8");
  CHECK(Platform{"linux", "arm64", ""}.str() == "linux/arm64");
  for (const ParseCase& c : kParseCases) {
    CAPTURE(c.input);
    Platform p = Platform::parse(c.input);
    CHECK(Platform::parse(p.str()) == p);
  }
}

TEST_CASE("host() reports a normalised linux platform", "[platform]") {
  Platform host = Platform::host();
  CHECK(host.os == "linux");
  CHECK_FALSE(host.architecture.empty());
  // The machine name must already be in its GOARCH spelling.
  CHECK(Platform::parse(host.str()) == host);
  CHECK(host.matches(host));
#if defined(__x86_64__)
  CHECK(host == Platform{"linux", "amd64", ""});
#elif defined(__aarch64__)
  CHECK(host == Platform{"linux", "arm64", ""});
#endif
}

TEST_CASE("matches() compares os, architecture and variant", "[platform]") {
  const Platform amd64 = Platform::parse("linux/amd64");
  CHECK(amd64.matches(Platform{"linux", "amd64", ""}));
  CHECK_FALSE(amd64.matches(Platform{"linux", "arm64", ""}));
  CHECK_FALSE(amd64.matches(Platform{"windows", "amd64", ""}));
  // Index entries may carry unnormalised spellings.
  CHECK(amd64.matches(Platform{"Linux", "x86_64", ""}));

  SECTION("an empty variant on either side matches any variant") {
    CHECK(Platform{"linux", "arm", ""}.matches(Platform{"linux", "arm", "v6"}));
    CHECK(Platform{"linux", "arm", "v7"}.matches(Platform{"linux", "arm", ""}));
    CHECK(Platform{"linux", "arm", "v7"}.matches(Platform{"linux", "arm", "v7"}));
    CHECK_FALSE(Platform{"linux", "arm", "v7"}.matches(Platform{"linux", "arm", "v6"}));
    CHECK(Platform{"linux", "amd64", "v3"}.matches(Platform{"linux", "amd64", ""}));
  }

  SECTION("arm64 treats an empty variant as v8") {
    const Platform arm64 = Platform::parse("linux/arm64");
    CHECK(arm64.matches(Platform{"linux", "arm64", ""}));
    CHECK(arm64.matches(Platform{"linux", "arm64", "v8"}));
    CHECK_FALSE(arm64.matches(Platform{"linux", "arm64", "v9"}));
    CHECK(Platform::parse("linux/arm64/v8").matches(Platform{"linux", "arm64", ""}));
    CHECK_FALSE(Platform::parse("linux/arm64/v9").matches(Platform{"linux", "arm64", ""}));
    CHECK(Platform::parse("linux/aarch64").matches(Platform{"linux", "arm64", "v8"}));
  }

  SECTION("a parsed bare arm request means v7") {
    const Platform arm = Platform::parse("linux/arm");
    CHECK(arm.matches(Platform{"linux", "arm", "v7"}));
    CHECK_FALSE(arm.matches(Platform{"linux", "arm", "v6"}));
    CHECK(Platform::parse("linux/armhf").matches(Platform{"linux", "arm", "v7"}));
    CHECK(Platform::parse("linux/armel").matches(Platform{"linux", "arm", "v6"}));
  }
}
