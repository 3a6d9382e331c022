// RegistryTransport over a scripted HTTP fake: the token flow, Basic auth,
// retries with their delays (recorded, not slept), and which requests carry
// credentials when a registry redirects.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "oci/registry_client.h"
#include "oci/registry_transport.h"
#include "tests/fake_http_client.h"
#include "tests/fake_registry.h"

using namespace dockless;
using namespace dockless::test;
using std::chrono::milliseconds;

namespace {

const std::string kBase = "https://reg.test";
const std::string kManifest = kBase + "/v2/app/manifests/1";
const std::string kBearerChallenge =
    R"(Bearer realm="https://auth.test/token",service="reg.test")";

FakeResponse status(long code, HttpHeaders headers = {}, std::string body = "") {
  FakeResponse r;
  r.status = code;
  r.headers = std::move(headers);
  r.body = std::move(body);
  return r;
}

/// RegistryHarness with a transport to reg.test.
struct Harness : RegistryHarness {
  using RegistryHarness::RegistryHarness;
  RegistryTransport transport(int max_attempts = 4) {
    return RegistryTransport("reg.test", options(max_attempts), keychain);
  }
};

std::function<HttpRequest(const std::string&)> get(const std::string& path) {
  return [path](const std::string& base) {
    HttpRequest r;
    r.url = base + path;
    return r;
  };
}

Credentials alice() { return Credentials{"alice", "s3cret", false, "--creds"}; }

}  // namespace

TEST_CASE("a 401 challenge fetches a token for the scope and retries with it", "[registry_transport]") {
  Harness h(alice());
  h.http.on("GET", kBase + "/v2/", status(200));
  h.http.on("GET", kManifest, status(200, {}, "manifest")).with_header("Authorization", "Bearer t1");
  h.http.on("GET", kManifest, status(401, {{"WWW-Authenticate", kBearerChallenge + R"(,scope="repository:app:pull")"}}));
  h.http.on("GET", "https://auth.test/token?*", status(200, {}, R"({"token":"t1","expires_in":300})"));
  RegistryTransport t = h.transport();

  HttpResponse r = t.send("get manifest", {"repository:app:pull"}, get("/v2/app/manifests/1"));
  CHECK(r.status == 200);
  CHECK(r.body == "manifest");
  auto tokens = h.http.requests("GET", "https://auth.test/token");
  REQUIRE(tokens.size() == 1);
  CHECK(tokens[0].url == "https://auth.test/token?service=reg.test&scope=repository%3Aapp%3Apull");
  CHECK(tokens[0].header("Authorization") == "Basic YWxpY2U6czNjcmV0");  // alice:s3cret

  // The token is reused: no second token request, and no second 401.
  CHECK(t.send("get manifest", {"repository:app:pull"}, get("/v2/app/manifests/1")).status == 200);
  CHECK(h.http.count("GET", "https://auth.test/token") == 1);
  CHECK(h.http.count("GET", kManifest) == 3);
  CHECK(h.sleeps.empty());
  CHECK(h.http.unmatched().empty());
}

TEST_CASE("a challenge at ping asks for a token before the first request", "[registry_transport]") {
  Harness h;
  h.http.on("GET", kBase + "/v2/", status(401, {{"WWW-Authenticate", kBearerChallenge}}));
  h.http.on("GET", "https://auth.test/token?*", status(200, {}, R"({"access_token":"anon"})"));
  h.http.on("GET", kManifest, status(200)).with_header("Authorization", "Bearer anon");
  RegistryTransport t = h.transport();

  CHECK(t.send("get", {"repository:app:pull", "repository:base:pull"}, get("/v2/app/manifests/1")).status == 200);
  auto tokens = h.http.requests("GET", "https://auth.test/token");
  REQUIRE(tokens.size() == 1);
  CHECK(tokens[0].url ==
        "https://auth.test/token?service=reg.test&scope=repository%3Aapp%3Apull&scope=repository%3Abase%3Apull");
  CHECK_FALSE(tokens[0].header("Authorization"));  // anonymous
  CHECK(h.http.count("GET", kManifest) == 1);
}

TEST_CASE("insufficient_scope refreshes the token once, then reports the denied scope", "[registry_transport]") {
  Harness h(alice());
  const std::string denied = kBearerChallenge + R"(,error="insufficient_scope",scope="repository:app:pull,push")";
  h.http.on("GET", kBase + "/v2/", status(401, {{"WWW-Authenticate", kBearerChallenge}}));
  h.http.on("GET", "https://auth.test/token?*", status(200, {}, R"({"token":"t"})"));
  h.http.on("PUT", kManifest, status(401, {{"WWW-Authenticate", denied}}));
  RegistryClient client("reg.test", h.options(), h.keychain);

  try {
    client.put_manifest("app", "1", "{}", "application/vnd.oci.image.manifest.v1+json");
    FAIL("the push was not refused");
  } catch (const RegistryError& e) {
    CHECK(e.status() == 401);
    CHECK_THAT(e.what(), Catch::Matchers::Contains("insufficient scope"));
    CHECK_THAT(e.what(), Catch::Matchers::Contains("repository:app:pull,push"));
  }
  CHECK(h.http.count("PUT", kManifest) == 2);  // once more with a fresh token, not forever
  CHECK(h.http.count("GET", "https://auth.test/token") == 2);
  CHECK(h.sleeps.empty());
}

TEST_CASE("Basic auth sends the keychain's credentials, anonymous sends none", "[registry_transport]") {
  const std::string auth_json = R"({"auths":{"reg.test":{"auth":"YWxpY2U6czNjcmV0"}}})";
  for (bool with_creds : {true, false}) {
    Harness h(std::nullopt, with_creds ? auth_json : "{}");
    h.http.on("GET", kBase + "/v2/", status(401, {{"WWW-Authenticate", R"(Basic realm="reg")"}}));
    h.http.on("GET", kManifest, status(200)).with_header("Authorization", "Basic YWxpY2U6czNjcmV0");
    h.http.on("GET", kManifest, status(401, {{"WWW-Authenticate", R"(Basic realm="reg")"}}));
    RegistryTransport t = h.transport();
    CHECK(t.send("get", {"repository:app:pull"}, get("/v2/app/manifests/1")).status ==
          (with_creds ? 200 : 401));
    CHECK(h.http.count("GET", kManifest) == 1);  // no pointless retry without credentials
    CHECK(h.http.count("GET", "https://auth.test") == 0);
  }
}

TEST_CASE("429 waits as long as Retry-After says, within max_delay", "[registry_transport]") {
  Harness h;
  h.http.on("GET", kBase + "/v2/", status(200));
  h.http.on("GET", kManifest, status(429, {{"Retry-After", "3"}})).times(1);
  h.http.on("GET", kManifest, status(429, {{"Retry-After", "120"}})).times(1);
  h.http.on("GET", kManifest, status(200));
  RegistryTransport t = h.transport();
  CHECK(t.send("get manifest app:1", {}, get("/v2/app/manifests/1")).status == 200);
  CHECK(h.sleeps == std::vector<milliseconds>{milliseconds(3000), milliseconds(30000)});
  REQUIRE(h.retry_notes.size() == 2);
  CHECK(h.retry_notes[0] ==
        "registry reg.test: get manifest app:1: 429 Too Many Requests; retrying in 3.0 s (try 2 of 4)");
}

TEST_CASE("5xx retries back off and are bounded by max_attempts", "[registry_transport]") {
  Harness h;
  h.http.on("GET", kBase + "/v2/", status(200));
  h.http.on("GET", kManifest, status(503));
  RegistryTransport t = h.transport(3);
  CHECK(t.send("get", {}, get("/v2/app/manifests/1")).status == 503);
  CHECK(h.http.count("GET", kManifest) == 3);
  CHECK(h.sleeps == std::vector<milliseconds>{milliseconds(1000), milliseconds(2000)});

  // retry=false: one try only.
  CHECK(t.send("get", {}, get("/v2/app/manifests/1"), false).status == 503);
  CHECK(h.http.count("GET", kManifest) == 4);
}

TEST_CASE("connection resets are retried, then reported", "[registry_transport]") {
  Harness h;
  h.http.on("GET", kBase + "/v2/", status(200));
  h.http.on("GET", kManifest, FakeResponse::reset()).times(2);
  h.http.on("GET", kManifest, status(200, {}, "ok"));
  h.http.on("GET", kBase + "/v2/app/manifests/gone", FakeResponse::reset());
  RegistryTransport t = h.transport(3);
  CHECK(t.send("get", {}, get("/v2/app/manifests/1")).body == "ok");
  CHECK(h.sleeps.size() == 2);

  CHECK_THROWS_MATCHES(t.send("get manifest app:gone", {}, get("/v2/app/manifests/gone")), TransportError,
                       Catch::Matchers::Message("registry reg.test: get manifest app:gone: Recv failure: "
                                                "Connection reset by peer"));
  CHECK(h.http.count("GET", kBase + "/v2/app/manifests/gone") == 3);
}

TEST_CASE("credentials follow a redirect on the same origin only", "[registry_transport]") {
  Harness h(alice());
  h.http.on("GET", kBase + "/v2/", status(401, {{"WWW-Authenticate", R"(Basic realm="reg")"}}));
  h.http.on("GET", kBase + "/v2/app/blobs/a", status(307, {{"Location", "https://cdn.test/a?sig=xyz"}}));
  h.http.on("GET", "https://cdn.test/a?sig=xyz", status(200, {}, "from cdn"));
  h.http.on("GET", kBase + "/v2/app/blobs/b", status(302, {{"Location", "b-moved?part=1"}}));
  h.http.on("GET", kBase + "/v2/app/blobs/b-moved?part=1", status(200, {}, "same origin"));
  RegistryTransport t = h.transport();

  CHECK(t.send("get", {}, get("/v2/app/blobs/a")).body == "from cdn");
  auto cdn = h.http.requests("GET", "https://cdn.test/");
  REQUIRE(cdn.size() == 1);
  CHECK_FALSE(cdn[0].header("Authorization"));
  CHECK(h.http.requests("GET", kBase + "/v2/app/blobs/a")[0].header("Authorization"));

  CHECK(t.send("get", {}, get("/v2/app/blobs/b")).body == "same origin");
  auto moved = h.http.requests("GET", kBase + "/v2/app/blobs/b-moved");
  REQUIRE(moved.size() == 1);
  CHECK(moved[0].header("Authorization") == "Basic YWxpY2U6czNjcmV0");
  CHECK(h.http.unmatched().empty());
}

TEST_CASE("a token server's failure is reported by its origin, without credentials", "[registry_transport]") {
  Harness h;
  h.http.on("GET", kBase + "/v2/",
            status(401, {{"WWW-Authenticate", R"(Bearer realm="https://user:pw@Auth.Test/token?x=1",service="reg.test")"}}));
  h.http.on("GET", "https://user:pw@Auth.Test/token?x=1&service=reg.test&scope=repository%3Aapp%3Apull",
            FakeResponse::reset());
  RegistryTransport t = h.transport(2);
  try {
    t.send("get", {"repository:app:pull"}, get("/v2/app/manifests/1"));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) ==
          "registry reg.test: token server https://auth.test: Recv failure: Connection reset by peer");
  }
  CHECK(h.http.count("GET", "https://user:pw@Auth.Test/token") == 2);
  CHECK(h.http.unmatched().empty());
}

TEST_CASE("a token request that times out is not retried", "[registry_transport]") {
  Harness h(alice());
  h.http.on("GET", kBase + "/v2/", status(401, {{"WWW-Authenticate", kBearerChallenge}}));
  h.http.on("GET", "https://auth.test/token?*", FakeResponse::timeout());
  RegistryTransport t = h.transport(4);
  try {
    t.send("get", {"repository:app:pull"}, get("/v2/app/manifests/1"));
    FAIL("no error");
  } catch (const Error& e) {
    std::string what = e.what();
    CHECK(what.rfind("registry reg.test: token server https://auth.test: timed out", 0) == 0);
    CHECK(what.find("s3cret") == std::string::npos);
  }
  CHECK(h.http.count("GET", "https://auth.test/token") == 1);
  CHECK(h.sleeps.empty());
}
