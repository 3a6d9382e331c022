// The SBOM's parts that need no image: dpkg's status file, uv.lock's hashes,
// PEP 503 names, the serial number, and the CycloneDX document's shape
// (components sorted and deduplicated, timestamp only under SOURCE_DATE_EPOCH).
#include "src/build/sbom.h"
#include "src/build/python_dist.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "base/error.h"
#include "oci/json_util.h"

using namespace dockless;

TEST_CASE("dpkg status: installed packages only, sorted", "[sbom]") {
  std::string status =
      "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\n"
      "Description: compression\n continuation: not a field\n\n"
      "Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\n"
      "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u4\n";
  auto debs = parse_dpkg_status(status);
  REQUIRE(debs.size() == 2);
  CHECK(debs[0].name == "libc6");
  CHECK(debs[0].version == "2.36-9+deb12u4");
  CHECK(debs[1].name == "zlib1g");
  CHECK(debs[1].version == "1:1.2.13.dfsg-1");
  CHECK(debs[1].arch == "amd64");
}

TEST_CASE("uv.lock: sha256 of the sdist and wheels per normalized name@version", "[sbom]") {
  std::string lock = R"(version = 1
[[package]]
name = "Foo.Bar"
version = "1.0"
sdist = { url = "http://x/foo.tar.gz", hash = "sha256:BB" }
wheels = [{ url = "http://x/foo.whl", hash = "sha256:aa" }]

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }
)";
  auto h = lock_hashes(lock, "uv.lock");
  CHECK(h.at("foo-bar@1.0") == std::vector<std::string>{"aa", "bb"});
  CHECK(h.at("app@0.1.0").empty());
  CHECK_THROWS_AS(lock_hashes("[[package]\n", "uv.lock"), Error);
  CHECK(normalize_python_name("Foo__Bar.baz") == "foo-bar-baz");
}

TEST_CASE("the serial number is a version 5 UUID made from the image digest", "[sbom]") {
  Digest d = Digest::parse("sha256:" + std::string(64, 'f'));
  CHECK(sbom_serial_number(d) == "urn:uuid:ffffffff-ffff-5fff-bfff-ffffffffffff");
}

TEST_CASE("CycloneDX document: sorted components, purls, no timestamp without SOURCE_DATE_EPOCH", "[sbom]") {
  SbomInputs in;
  in.image = Digest::parse("sha256:" + std::string(64, 'a'));
  in.python.push_back({"Zeta_pkg", "2.0", {"main", "worker"}, true});
  in.python.push_back({"alpha", "1.0", {"main"}, false});
  in.lock_hashes["zeta-pkg@2.0"] = {std::string(64, '1')};
  in.debs.push_back({"libc6", "2.36-9+deb12u4", "amd64"});
  in.uv_version = "0.9.1";
  ::unsetenv("SOURCE_DATE_EPOCH");
  auto doc = json::parse(cyclonedx_json(in), "sbom");
  CHECK(std::string(doc["specVersion"].GetString()) == "1.5");
  CHECK_FALSE(doc["metadata"].HasMember("timestamp"));
  const auto& c = doc["components"];
  REQUIRE(c.Size() == 4);
  CHECK(std::string(c[0]["purl"].GetString()) == "pkg:pypi/uv@0.9.1");  // bom-ref dockless:uv
  CHECK(std::string(c[1]["purl"].GetString()) == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64");
  CHECK(std::string(c[2]["purl"].GetString()) == "pkg:pypi/alpha@1.0");
  CHECK_FALSE(c[2].HasMember("hashes"));
  CHECK(std::string(c[3]["purl"].GetString()) == "pkg:pypi/zeta-pkg@2.0");
  CHECK(c[3]["hashes"].Size() == 1);
  CHECK(c[3]["properties"].Size() == 3);  // two venvs and the uv cache
  ::setenv("SOURCE_DATE_EPOCH", "0", 1);
  auto dated = json::parse(cyclonedx_json(in), "sbom");
  ::unsetenv("SOURCE_DATE_EPOCH");
  CHECK(std::string(dated["metadata"]["timestamp"].GetString()) == "1970-01-01T00:00:00Z");
}
