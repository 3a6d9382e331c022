// RegistryClient's blob operations over an in-memory registry: what a push
// sends (existence check, mount, monolithic or chunked upload) and how a
// pull resumes and refuses bytes that do not match their digest.
#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <string>

#include "base/error.h"
#include "oci/blob_store.h"
#include "oci/registry_client.h"
#include "tests/fake_registry.h"

using namespace dockless;
using namespace dockless::test;

namespace {

const std::string kBase = "https://reg.test";

/// Lets `script` add routes (which then answer first), and returns `http`.
FakeHttp& scripted(FakeHttp& http, const std::function<void(FakeHttp&)>& script) {
  if (script) script(http);
  return http;
}

/// A registry, a client of it, and a 10-byte blob in a file. `script_first`
/// adds routes that come before the registry's.
struct PushSetup : RegistryHarness {
  FakeRegistry registry;
  RegistryClient client{"reg.test", options(), keychain};
  std::string data = "0123456789";
  Descriptor blob;
  std::filesystem::path file = dir / "blob";

  explicit PushSetup(const std::function<void(FakeHttp&)>& script_first = nullptr)
      : registry(scripted(http, script_first)) {
    write_text(file, data);
    blob.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
    blob.digest = sha256_of(data);
    blob.size = static_cast<std::int64_t>(data.size());
  }
  std::string session_url(int n, std::size_t state) const {
    return kBase + "/v2/app/blobs/uploads/session" + std::to_string(n) + "?_state=" + std::to_string(state);
  }
};

/// A blob's descriptor (digest and size) for `data`.
Descriptor descriptor_of(const std::string& data) {
  Descriptor d;
  d.digest = sha256_of(data);
  d.size = static_cast<std::int64_t>(data.size());
  return d;
}

}  // namespace

TEST_CASE("a chunked upload PATCHes each range to the Location it was given", "[registry_client]") {
  PushSetup s;
  CHECK(s.client.push_blob("app", s.blob, s.file, "", 4) == BlobPushOutcome::kUploaded);

  auto patches = s.http.requests("PATCH", kBase);
  REQUIRE(patches.size() == 3);
  CHECK(patches[0].url == s.session_url(1, 0));
  CHECK(patches[1].url == s.session_url(1, 4));  // the registry's new Location, query kept
  CHECK(patches[2].url == s.session_url(1, 8));
  CHECK(patches[0].header("Content-Range") == "0-3");
  CHECK(patches[1].header("Content-Range") == "4-7");
  CHECK(patches[2].header("Content-Range") == "8-9");
  CHECK(patches[0].body + patches[1].body + patches[2].body == s.data);
  auto puts = s.http.requests("PUT", kBase);
  REQUIRE(puts.size() == 1);
  CHECK(puts[0].url == s.session_url(1, 10) + "&digest=" + s.blob.digest.str());
  CHECK(puts[0].body.empty());
  CHECK(s.registry.has_blob("app", s.blob.digest));
  CHECK(s.http.unmatched().empty());
}

TEST_CASE("a failed chunk asks the session what it holds and goes on from there", "[registry_client]") {
  PushSetup s([](FakeHttp& http) {  // the second chunk fails once
    http.on("PATCH", kBase + "/v2/app/blobs/uploads/session1?_state=4", FakeResponse{503, {}, "", {}}).times(1);
  });
  CHECK(s.client.push_blob("app", s.blob, s.file, "", 4) == BlobPushOutcome::kUploaded);
  CHECK(s.http.count("PATCH", kBase) == 4);
  auto status = s.http.requests("GET", kBase + "/v2/app/blobs/uploads/");
  REQUIRE(status.size() == 1);
  CHECK(status[0].url == s.session_url(1, 4));
  CHECK(s.sleeps.size() == 1);
  CHECK(s.registry.has_blob("app", s.blob.digest));
}

TEST_CASE("a monolithic upload is one PUT with the whole blob", "[registry_client]") {
  PushSetup s;
  CHECK(s.client.push_blob("app", s.blob, s.file, "", 0) == BlobPushOutcome::kUploaded);
  CHECK(s.http.count("PATCH", kBase) == 0);
  auto puts = s.http.requests("PUT", kBase);
  REQUIRE(puts.size() == 1);
  CHECK(puts[0].url == s.session_url(1, 0) + "&digest=" + s.blob.digest.str());
  CHECK(puts[0].body == s.data);
  CHECK(s.registry.has_blob("app", s.blob.digest));
}

TEST_CASE("a blob the repository has is not uploaded again", "[registry_client]") {
  PushSetup s;
  s.registry.add_blob("app", s.data);
  CHECK(s.client.push_blob("app", s.blob, s.file, "base", 0) == BlobPushOutcome::kSkipped);
  CHECK(s.http.count("HEAD", kBase + "/v2/app/blobs/" + s.blob.digest.str()) == 1);
  CHECK(s.http.count("POST", kBase) == 0);
  CHECK(s.http.count("PUT", kBase) == 0);
}

TEST_CASE("a cross-repository mount is tried first", "[registry_client]") {
  PushSetup s;
  s.registry.add_blob("base", s.data);
  const std::string mount_url =
      kBase + "/v2/app/blobs/uploads/?mount=" + s.blob.digest.str() + "&from=base";

  SECTION("mounted: nothing uploaded") {
    CHECK(s.client.push_blob("app", s.blob, s.file, "base", 0) == BlobPushOutcome::kMounted);
    CHECK(s.http.count("POST", mount_url) == 1);
    CHECK(s.http.count("PUT", kBase) == 0);
  }
  SECTION("refused (202): the session it opened takes the upload") {
    s.registry.allow_mounts = false;
    CHECK(s.client.push_blob("app", s.blob, s.file, "base", 0) == BlobPushOutcome::kUploaded);
    CHECK(s.http.count("POST", kBase) == 1);
    auto puts = s.http.requests("PUT", kBase);
    REQUIRE(puts.size() == 1);
    CHECK(puts[0].url == s.session_url(1, 0) + "&digest=" + s.blob.digest.str());
    CHECK(puts[0].body == s.data);
  }
  CHECK(s.registry.has_blob("app", s.blob.digest));
}

TEST_CASE("a pull cut off by a reset resumes with Range", "[registry_client]") {
  RegistryHarness h;
  const std::string data = std::string(5000, 'x') + std::string(5000, 'y');
  const Digest d = sha256_of(data);
  const std::string url = kBase + "/v2/app/blobs/" + d.str();
  // Added before the registry, so these answer first.
  h.http.on("GET", url, [&](const RecordedRequest& r) {
        FakeResponse a = serve_bytes(data, r);
        a.reset_after = 3000;
        return a;
      })
      .times(1);
  const bool ignores_range = GENERATE(false, true);
  if (ignores_range)  // the whole blob again, 200: what was kept is dropped
    h.http.on("GET", url, [&](const RecordedRequest&) { return serve_bytes(data, RecordedRequest{}); });
  FakeRegistry registry(h.http);
  registry.add_blob("app", data);
  RegistryClient client("reg.test", h.options(), h.keychain);
  BlobStore store(h.dir / "store");
  const Descriptor blob = descriptor_of(data);
  std::uint64_t last_progress = 0;

  client.fetch_blob("app", blob, store, [&](std::uint64_t done) { last_progress = done; });
  CHECK(store.read(d) == data);
  CHECK(last_progress == data.size());
  auto gets = h.http.requests("GET", url);
  REQUIRE(gets.size() == 2);
  CHECK_FALSE(gets[0].header("Range"));
  CHECK(gets[1].header("Range") == "bytes=3000-");
  CHECK(h.sleeps.size() == 1);
}

TEST_CASE("a pull whose answer was shorter than the blob goes on over a new connection", "[registry_client]") {
  // A body that ends early without a transport error: the server's length
  // was not the blob's, so what is left on that connection is not the start
  // of the next answer (a hostile registry's "short-length-blob").
  RegistryHarness h;
  const std::string data = std::string(5000, 'a') + std::string(5000, 'b');
  const Digest d = sha256_of(data);
  const std::string url = kBase + "/v2/app/blobs/" + d.str();
  h.http.on("GET", url, [&](const RecordedRequest&) {
        FakeResponse a;
        a.body = data.substr(0, 4000);
        return a;
      })
      .times(1);
  FakeRegistry registry(h.http);
  registry.add_blob("app", data);
  RegistryClient client("reg.test", h.options(), h.keychain);
  BlobStore store(h.dir / "store");
  const Descriptor blob = descriptor_of(data);

  client.fetch_blob("app", blob, store, nullptr);
  CHECK(store.read(d) == data);
  auto gets = h.http.requests("GET", url);
  REQUIRE(gets.size() == 2);
  CHECK_FALSE(gets[0].fresh_connection);
  CHECK(gets[1].fresh_connection);
  CHECK(gets[1].header("Range") == "bytes=4000-");
}

TEST_CASE("a blob whose bytes do not match its digest is refused and not stored", "[registry_client]") {
  RegistryHarness h;
  const std::string claimed = "the real layer";
  const std::string served = "a forged layer";  // same size
  Digest d = sha256_of(claimed);
  h.http.on("GET", kBase + "/v2/", FakeResponse{});
  h.http.on("GET", kBase + "/v2/app/blobs/" + d.str(), [&](const RecordedRequest& r) { return serve_bytes(served, r); });
  RegistryClient client("reg.test", h.options(), h.keychain);
  BlobStore store(h.dir / "store");
  Descriptor blob;
  blob.digest = d;
  blob.size = static_cast<std::int64_t>(claimed.size());

  try {
    client.fetch_blob("app", blob, store);
    FAIL("forged bytes were accepted");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains(d.str()));
    CHECK_THAT(e.what(), Catch::Matchers::Contains(sha256_of(served).str()));
  }
  CHECK_FALSE(store.contains(d));
  CHECK_FALSE(store.contains(sha256_of(served)));
  CHECK(std::filesystem::is_empty(store.blob_dir()));  // no temp file left either
}

TEST_CASE("a verified push of a file that does not match its digest never completes", "[registry_client]") {
  PushSetup s;
  write_text(s.file, "012345678X");  // same size, another digest
  try {
    s.client.push_blob("app", s.blob, s.file, "", 0, nullptr, /*verify=*/true);
    FAIL("a corrupt file was pushed");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains(sha256_of(std::string("012345678X")).str()));
  }
  CHECK_FALSE(s.registry.has_blob("app", s.blob.digest));
  // And an intact one goes up in one PUT, as without verification.
  write_text(s.file, s.data);
  CHECK(s.client.push_blob("app", s.blob, s.file, "", 0, nullptr, true) == BlobPushOutcome::kUploaded);
  CHECK(s.registry.has_blob("app", s.blob.digest));
}

TEST_CASE("a streamed pull hands each byte on once, across a reset, and checks the digest first",
          "[registry_client]") {
  RegistryHarness h;
  const std::string data = std::string(5000, 'x') + std::string(5000, 'y');
  const bool forged = GENERATE(false, true);
  const std::string served = forged ? std::string(5000, 'x') + std::string(5000, 'z') : data;
  const Digest d = sha256_of(data);
  const std::string url = kBase + "/v2/app/blobs/" + d.str();
  h.http.on("GET", url, [&](const RecordedRequest& r) {
        FakeResponse a = serve_bytes(served, r);
        a.reset_after = 3000;
        return a;
      })
      .times(1);
  // Then the registry ignores Range: the stream must skip what it sent.
  h.http.on("GET", url, [&](const RecordedRequest&) { return serve_bytes(served, RecordedRequest{}); });
  FakeRegistry registry(h.http);
  RegistryClient client("reg.test", h.options(), h.keychain);
  Descriptor blob;
  blob.digest = d;
  blob.size = static_cast<std::int64_t>(data.size());
  std::string got;
  auto sink = [&](const char* p, std::size_t n) { got.append(p, n); };
  if (!forged) {
    client.stream_blob("app", blob, sink);
    CHECK(got == data);
  } else {
    CHECK_THROWS_WITH(client.stream_blob("app", blob, sink),
                      Catch::Matchers::Contains(sha256_of(served).str()));
    CHECK(got.size() < data.size());  // the last bytes were held back
  }
  CHECK(h.http.count("GET", url) == 2);
}
