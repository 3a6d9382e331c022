// URL helpers over libcurl's URL API: where a registry's Location sends us,
// which origin may see credentials, and how query values are escaped.
#include <catch2/catch.hpp>

#include "oci/url.h"

using namespace dockless;

TEST_CASE("Locations resolve against the upload URL, their query kept", "[url]") {
  const std::string base = "https://reg.test:5000/v2/team/app/blobs/uploads/?mount=x";
  // distribution with http.relativeurls: true answers absolute paths.
  CHECK(resolve_url(base, "/v2/team/app/blobs/uploads/u1?_state=a%2Bb%3D%3D") ==
        "https://reg.test:5000/v2/team/app/blobs/uploads/u1?_state=a%2Bb%3D%3D");
  CHECK(resolve_url(base, "u1?_state=s") == "https://reg.test:5000/v2/team/app/blobs/uploads/u1?_state=s");
  CHECK(resolve_url(base, "../other?x=1") == "https://reg.test:5000/v2/team/app/blobs/other?x=1");
  CHECK(resolve_url(base, "https://storage.test/bucket/b?X-Sig=abc") == "https://storage.test/bucket/b?X-Sig=abc");
  CHECK(resolve_url(base, "//cdn.test/b") == "https://cdn.test/b");
  CHECK(resolve_url("not a url", "/v2/x") == "/v2/x");  // nothing to resolve against: as it came
}

TEST_CASE("an origin is scheme, host and port, never credentials", "[url]") {
  CHECK(url_origin("https://alice:s3cret@Auth.Test:8443/token?service=x") == "https://auth.test:8443");
  CHECK(url_origin("http://reg.test/v2/") == "http://reg.test");
  CHECK(url_origin("https://reg.test/v2/") != url_origin("https://reg.test:5000/v2/"));
  CHECK(url_origin("http://[::1]:5000/v2/") == "http://[::1]:5000");
  CHECK(url_origin("") == "");
  CHECK(url_origin("reg.test/v2/") == "");  // no scheme: not a URL
}

TEST_CASE("query parameters are added with ? or &, the query there kept", "[url]") {
  CHECK(with_query("https://reg.test/v2/a/blobs/uploads/u1", "digest=sha256:ab") ==
        "https://reg.test/v2/a/blobs/uploads/u1?digest=sha256:ab");
  CHECK(with_query("https://reg.test/v2/a/blobs/uploads/u1?_state=a%2Bb%3D", "digest=sha256:ab") ==
        "https://reg.test/v2/a/blobs/uploads/u1?_state=a%2Bb%3D&digest=sha256:ab");
  CHECK(with_query("https://auth.test/token?account=me", "service=reg&scope=x") ==
        "https://auth.test/token?account=me&service=reg&scope=x");
}

TEST_CASE("url_escape keeps only unreserved characters", "[url]") {
  CHECK(url_escape("repository:team/app:pull,push") == "repository%3Ateam%2Fapp%3Apull%2Cpush");
  CHECK(url_escape("AZaz09-._~") == "AZaz09-._~");
  CHECK(url_escape("a b&c=d+e") == "a%20b%26c%3Dd%2Be");
  CHECK(url_escape("\xC3\xA9") == "%C3%A9");
  CHECK(url_escape("") == "");
}

TEST_CASE("Url copies are independent", "[url]") {
  std::optional<Url> a = Url::parse("https://Reg.Test:5000/v2/");
  REQUIRE(a);
  CHECK(a->host_port() == "reg.test:5000");
  Url b = *a;
  REQUIRE(b.resolve("/v2/x"));
  CHECK(b.str() == "https://Reg.Test:5000/v2/x");
  CHECK(a->str() == "https://Reg.Test:5000/v2/");
  CHECK_FALSE(Url::parse("::"));
}

TEST_CASE("escapes keep their case when a query grows", "[url]") {
  CHECK(with_query("https://auth.test/token", "scope=" + url_escape("repository:a:pull")) ==
        "https://auth.test/token?scope=repository%3Aa%3Apull");
  CHECK(with_query("https://auth.test/token?a=%2B", "b=%3A") == "https://auth.test/token?a=%2B&b=%3A");
}
