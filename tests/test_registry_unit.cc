// Registry pieces that need no server: challenge parsing, URL resolution,
// error descriptions, retry classification, image locations.
#include <catch2/catch.hpp>

#include "oci/auth_challenge.h"
#include "base/error.h"
#include "oci/http_client.h"
#include "oci/registry_transport.h"
#include "oci/url.h"
#include "src/transfer/image_location.h"

using namespace dockless;

TEST_CASE("Bearer challenges with quoted, escaped and several scopes", "[registry_unit]") {
  auto c = parse_auth_challenge(
      R"(Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push repository:c:pull")");
  REQUIRE(c);
  CHECK(c->scheme == "bearer");
  CHECK(c->param("realm") == "https://auth.example.com/token");
  CHECK(c->param("service") == "registry.example.com");
  CHECK(c->scopes() == std::vector<std::string>{"repository:a/b:pull,push", "repository:c:pull"});

  auto e = parse_auth_challenge(
      R"(Bearer realm="r",error="insufficient_scope",scope="repository:x:push")");
  REQUIRE(e);
  CHECK(e->param("error") == "insufficient_scope");

  auto q = parse_auth_challenge(R"(Bearer realm="a \"quoted\" realm", service=plain)");
  REQUIRE(q);
  CHECK(q->param("realm") == "a \"quoted\" realm");
  CHECK(q->param("service") == "plain");
}

TEST_CASE("Basic and unknown challenges", "[registry_unit]") {
  auto b = parse_auth_challenge(R"(Basic realm="Registry Realm")");
  REQUIRE(b);
  CHECK(b->scheme == "basic");
  CHECK(b->param("realm") == "Registry Realm");
  CHECK(b->scopes().empty());
  CHECK_FALSE(parse_auth_challenge("Negotiate abc"));
  CHECK_FALSE(parse_auth_challenge(""));
}

TEST_CASE("Location headers resolve against the request URL", "[registry_unit]") {
  const std::string base = "http://127.0.0.1:5000/v2/app/blobs/uploads/";
  CHECK(resolve_url(base, "http://other:1/x?y=1") == "http://other:1/x?y=1");
  CHECK(resolve_url(base, "/v2/app/blobs/uploads/abc?_state=s") ==
        "http://127.0.0.1:5000/v2/app/blobs/uploads/abc?_state=s");
  CHECK(resolve_url(base, "abc?_state=s") == "http://127.0.0.1:5000/v2/app/blobs/uploads/abc?_state=s");
  CHECK(resolve_url("https://h/v2/a/b", "//cdn.example.com/blob") == "https://cdn.example.com/blob");
  CHECK(url_origin("HTTPS://Registry.Example.com:443/v2/") == "https://registry.example.com:443");
  CHECK(url_origin("http://h/v2/x?y") == "http://h");
  CHECK(url_origin("not a url") == "");
}

TEST_CASE("retryable statuses are the transient ones", "[registry_unit]") {
  for (long s : {408L, 429L, 500L, 502L, 503L, 504L}) CHECK(is_retryable_status(s));
  for (long s : {200L, 201L, 202L, 400L, 401L, 403L, 404L, 405L, 416L}) CHECK_FALSE(is_retryable_status(s));
}

TEST_CASE("registry errors are described by code and message", "[registry_unit]") {
  HttpResponse r;
  r.status = 404;
  r.body = R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]})";
  CHECK(describe_registry_error(r) == "404 MANIFEST_UNKNOWN: manifest unknown");
  r.status = 503;
  r.body = "<html>oops</html>";
  CHECK(describe_registry_error(r) == "503 Service Unavailable");
  r.status = 401;
  r.body = R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})";
  r.headers = {{"WWW-Authenticate", R"(Bearer realm="r",error="insufficient_scope",scope="repository:denied/x:push,pull")"}};
  std::string d = describe_registry_error(r);
  CHECK_THAT(d, Catch::Matchers::Contains("insufficient scope"));
  CHECK_THAT(d, Catch::Matchers::Contains("repository:denied/x:push,pull"));
  r.body = std::string(300, '[');  // hostile body: still a description, no crash
  r.headers.clear();
  CHECK(describe_registry_error(r) == "401 Unauthorized");
}

TEST_CASE("image locations: layouts, archives and registry references", "[registry_unit]") {
  CHECK(ImageLocation::parse("oci:/tmp/x:tag").is_layout());
  CHECK(ImageLocation::parse("docker-archive:/tmp/a.tar:app:1").is_archive());
  auto r = ImageLocation::parse("docker://localhost:5000/app:1");
  REQUIRE(r.is_registry());
  CHECK(r.reference().registry == "localhost:5000");
  CHECK(ImageLocation::parse("localhost:5000/app:1").is_registry());
  CHECK(ImageLocation::parse("python").reference().str() == "docker.io/library/python:latest");
  CHECK_THROWS_AS(ImageLocation::parse("dir:/tmp/x"), UsageError);
  CHECK_THROWS_AS(ImageLocation::parse("oci-archive:/tmp/x.tar"), UsageError);
  CHECK_THROWS_AS(ImageLocation::parse("Not/Valid"), UsageError);
}
