// The copy engine (ImageTransfer) and a build's BlobPusher against an
// in-memory registry: what they leave alone, what they mount, and that
// parallel downloads all land verified.
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "oci/blob_store.h"
#include "oci/streamed_upload.h"
#include "src/transfer/blob_pusher.h"
#include "src/transfer/transfer.h"
#include "tests/fake_registry.h"

using namespace dockless;
using namespace dockless::test;

namespace {

const std::string kBase = "https://reg.test";

Descriptor describe(const std::string& media_type, const std::string& bytes) {
  Descriptor d;
  d.media_type = media_type;
  d.digest = sha256_of(bytes);
  d.size = static_cast<std::int64_t>(bytes.size());
  return d;
}

std::string descriptor_json(const Descriptor& d) {
  return R"({"mediaType":")" + d.media_type + R"(","digest":")" + d.digest.str() +
         R"(","size":)" + std::to_string(d.size) + "}";
}

/// A small image (a config and three layers) of the registry's repo "app",
/// tagged 1, and a transfer whose HTTP is the fake.
struct TransferSetup : RegistryHarness {
  std::vector<std::string> blobs = {
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})",
      std::string(3000, '1'), std::string(4000, '2'), std::string(5000, '3')};
  std::vector<Descriptor> descriptors;
  std::string manifest;
  Digest manifest_digest;

  TransferSetup() {
    descriptors.push_back(describe("application/vnd.oci.image.config.v1+json", blobs[0]));
    std::string layers;
    for (std::size_t i = 1; i < blobs.size(); ++i) {
      descriptors.push_back(describe("application/vnd.oci.image.layer.v1.tar+gzip", blobs[i]));
      layers += (i > 1 ? "," : "") + descriptor_json(descriptors.back());
    }
    manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
               descriptor_json(descriptors[0]) + R"(,"layers":[)" + layers + "]}";
    manifest_digest = sha256_of(manifest);
  }
  /// Puts the image in `registry`'s repo "app".
  void publish(FakeRegistry& registry) {
    for (const auto& b : blobs) registry.add_blob("app", b);
    registry.add_manifest("app", "1", manifest, "application/vnd.oci.image.manifest.v1+json");
  }
  TransferOptions transfer_options() {
    TransferOptions o;
    o.registry = options();
    o.keychain.authfile = (dir / "auth.json").string();  // anonymous
    o.jobs = 4;
    o.cache_dir = dir / "cache";
    return o;
  }
  std::string blob_url(const std::string& repo, std::size_t i) const {
    return kBase + "/v2/" + repo + "/blobs/" + descriptors[i].digest.str();
  }
  /// Puts the image's config and layers (not its manifest) in `store`.
  void stock(const BlobStore& store) const {
    for (const auto& b : blobs) store.put(b);
  }
};

/// A gzip layer of `bytes`, put in `store` as a build puts a layer it made.
Descriptor put_layer(const BlobStore& store, const std::string& bytes) {
  store.put(bytes);
  return describe("application/vnd.oci.image.layer.v1.tar+gzip", bytes);
}

}  // namespace

TEST_CASE("a pull skips blobs the store has and fetches the others in parallel", "[transfer]") {
  TransferSetup s;
  // Each blob download waits (up to 2 s) until another one is under way.
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  FakeRegistry* registry_ptr = nullptr;
  s.http.on("GET", kBase + "/v2/app/blobs/*", [&](const RecordedRequest& r) {
    {
      std::unique_lock<std::mutex> lock(mu);
      ++started;
      cv.notify_all();
      cv.wait_for(lock, std::chrono::seconds(2), [&] { return started >= 2; });
    }
    return registry_ptr->answer(r);
  });
  FakeRegistry registry(s.http);
  registry_ptr = &registry;
  s.publish(registry);
  BlobStore store(s.dir / "store");
  store.put(s.blobs[2]);  // layer 2 is here already

  ImageTransfer transfer(s.transfer_options());
  LocalImage image = transfer.load(ImageLocation::parse("reg.test/app:1"), store);

  CHECK(image.top.digest == s.manifest_digest);
  CHECK(image.source_registry == "reg.test");
  CHECK(image.source_repo == "app");
  for (std::size_t i = 0; i < s.blobs.size(); ++i) CHECK(store.read(s.descriptors[i].digest) == s.blobs[i]);
  CHECK(s.http.count("GET", s.blob_url("app", 2)) == 0);
  CHECK(s.http.count("GET", kBase + "/v2/app/blobs/") == 3);
  CHECK(s.http.max_in_flight() >= 2);
  CHECK(s.http.unmatched().empty());
}

TEST_CASE("a push within one registry mounts from the source repository", "[transfer]") {
  TransferSetup s;
  FakeRegistry registry(s.http);
  s.publish(registry);
  registry.add_blob("copy", s.blobs[3]);  // the destination has this layer already
  BlobStore store(s.dir / "store");
  s.stock(store);
  store.put(s.manifest);

  ImageTransfer transfer(s.transfer_options());
  LocalImage image{&store, describe("application/vnd.oci.image.manifest.v1+json", s.manifest),
                   "reg.test", "app", {}, {}, {}};
  Digest pushed = transfer.store(image, ImageLocation::parse("reg.test/copy:1"), "");

  CHECK(pushed == s.manifest_digest);
  CHECK(registry.manifest("copy", "1") == s.manifest);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(registry.has_blob("copy", s.descriptors[i].digest));
    CHECK(s.http.count("POST", kBase + "/v2/copy/blobs/uploads/?mount=" + s.descriptors[i].digest.str() +
                                   "&from=app") == 1);
  }
  CHECK(s.http.count("POST", kBase + "/v2/copy/blobs/uploads/?mount=" + s.descriptors[3].digest.str()) == 0);
  CHECK(s.http.count("PUT", kBase + "/v2/copy/blobs/") == 0);  // nothing uploaded
  CHECK(s.http.count("PATCH", kBase) == 0);
}

TEST_CASE("a copy within one registry leaves layers there and mounts them", "[transfer]") {
  TransferSetup s;
  FakeRegistry registry(s.http);
  s.publish(registry);

  Digest top = run_copy(ImageLocation::parse("reg.test/app:1"), ImageLocation::parse("reg.test/copy:2"),
                        s.transfer_options());

  CHECK(top == s.manifest_digest);
  CHECK(registry.manifest("copy", "2") == s.manifest);
  for (std::size_t i = 1; i < s.blobs.size(); ++i) {
    CHECK(registry.has_blob("copy", s.descriptors[i].digest));
    CHECK(s.http.count("GET", s.blob_url("app", i)) == 0);  // no layer came down
  }
  CHECK(s.http.count("GET", s.blob_url("app", 0)) == 1);  // the config did
  CHECK(s.http.unmatched().empty());
}

TEST_CASE("a push to a tag that holds the image already sends no blob", "[transfer]") {
  TransferSetup s;
  FakeRegistry registry(s.http);
  s.publish(registry);
  BlobStore store(s.dir / "store");
  s.stock(store);
  store.put(s.manifest);

  ImageTransfer transfer(s.transfer_options());
  LocalImage image{&store, describe("application/vnd.oci.image.manifest.v1+json", s.manifest), "", "", {}, {}, {}};
  CHECK(transfer.store(image, ImageLocation::parse("reg.test/app:1"), "") == s.manifest_digest);
  CHECK(s.http.count("HEAD", kBase + "/v2/app/blobs/") == 0);  // the tag's manifest listed them
  CHECK(s.http.count("POST", kBase) == 0);
  CHECK(s.http.count("PUT", kBase) == 0);
}

TEST_CASE("a copy to another registry streams the layers across without storing them", "[transfer]") {
  TransferSetup s;
  FakeRegistry source(s.http);
  FakeRegistry dest(s.http, "https://other.test");
  s.publish(source);

  Digest copied = run_copy(ImageLocation::parse("reg.test/app:1"),
                           ImageLocation::parse("other.test/copy:2"), s.transfer_options());

  CHECK(copied == s.manifest_digest);
  CHECK(dest.manifest("copy", "2") == s.manifest);
  BlobStore cache(s.dir / "cache");
  CHECK(cache.contains(s.descriptors[0].digest));  // the config is read here
  for (std::size_t i = 1; i < s.blobs.size(); ++i) {
    CHECK(dest.has_blob("copy", s.descriptors[i].digest));
    CHECK_FALSE(cache.contains(s.descriptors[i].digest));  // a layer never lands here
    CHECK(s.http.count("GET", s.blob_url("app", i)) == 1);
  }
  CHECK(s.http.unmatched().empty());
}

TEST_CASE("a pull into an OCI layout that fails leaves the layout as it was", "[transfer]") {
  TransferSetup s;
  // Layer 3's bytes do not match its digest; the manifest and config came first.
  bool lying = true;
  FakeRegistry* registry_ptr = nullptr;
  s.http.on("GET", s.blob_url("app", 3), [&](const RecordedRequest& r) {
    if (!lying) return registry_ptr->answer(r);
    FakeResponse lie;
    lie.body = std::string(5000, 'x');
    return lie;
  });
  FakeRegistry registry(s.http);
  registry_ptr = &registry;
  s.publish(registry);
  const auto layout = s.dir / "out";
  const auto src = ImageLocation::parse("reg.test/app:1");
  const auto dst = ImageLocation::parse("oci:" + layout.string() + ":x");

  CHECK_THROWS_AS(run_copy(src, dst, s.transfer_options()), Error);
  // No manifest or config blob of the failed image, no index.json entry.
  CHECK_FALSE(std::filesystem::exists(layout));

  // The next pull (the registry honest again) stores the image whole.
  lying = false;
  Digest pulled = run_copy(src, dst, s.transfer_options());
  CHECK(pulled == s.manifest_digest);
  BlobStore blobs(layout);
  CHECK(blobs.read(s.manifest_digest) == s.manifest);
  for (std::size_t i = 0; i < s.blobs.size(); ++i) CHECK(blobs.read(s.descriptors[i].digest) == s.blobs[i]);
}

TEST_CASE("a build's pusher asks no HEAD for blobs of the image its tag names, and uploads the rest",
          "[transfer]") {
  TransferSetup s;
  FakeRegistry registry(s.http);
  s.publish(registry);  // app:1 holds the config and three layers
  BlobStore store(s.dir / "store");
  s.stock(store);
  store.put(s.manifest);
  const Descriptor edited_layer = put_layer(store, std::string(6000, '4'));  // a rebuild's one new layer

  ImageTransfer transfer(s.transfer_options());
  std::set<std::string> pushed;
  {
    BlobPusher pusher(transfer, {Reference::parse("reg.test/app:1")}, store, 2, std::chrono::steady_clock::now());
    for (std::size_t i = 1; i < s.descriptors.size(); ++i) pusher.add(PushItem{s.descriptors[i], "old", &store, "", "", false, nullptr, nullptr});
    pusher.add(PushItem{edited_layer, "new", &store, "", "", false, nullptr, nullptr});
    pushed = pusher.finish();
  }
  CHECK(pushed.size() == 4);
  CHECK(s.http.count("HEAD", kBase + "/v2/app/manifests/1") == 1);
  CHECK(s.http.count("GET", kBase + "/v2/app/manifests/") == 0);  // the tag's manifest came from the store
  for (std::size_t i = 1; i < s.descriptors.size(); ++i) CHECK(s.http.count("HEAD", s.blob_url("app", i)) == 0);
  CHECK(s.http.count("HEAD", kBase + "/v2/app/blobs/" + edited_layer.digest.str()) == 1);
  CHECK(registry.has_blob("app", edited_layer.digest));
}

TEST_CASE("a build's pusher to a new tag checks every blob", "[transfer]") {
  TransferSetup s;
  FakeRegistry registry(s.http);
  s.publish(registry);
  BlobStore store(s.dir / "store");
  s.stock(store);

  ImageTransfer transfer(s.transfer_options());
  {
    BlobPusher pusher(transfer, {Reference::parse("reg.test/app:2")}, store, 2, std::chrono::steady_clock::now());
    for (std::size_t i = 1; i < s.descriptors.size(); ++i) pusher.add(PushItem{s.descriptors[i], "l", &store, "", "", false, nullptr, nullptr});
    CHECK(pusher.finish().size() == 3);
  }
  for (std::size_t i = 1; i < s.descriptors.size(); ++i) CHECK(s.http.count("HEAD", s.blob_url("app", i)) == 1);
  CHECK(s.http.count("POST", kBase) == 0);  // all were there: nothing uploaded
}

/// A registry holding app:1 (TransferSetup's image) and a store with its blobs: a rebuild's pusher.
struct PusherSetup : TransferSetup {
  FakeRegistry registry{http};
  BlobStore store{dir / "store"};
  PusherSetup() {
    publish(registry);
    stock(store);
  }
};

TEST_CASE("a build's pusher uploads a blob it holds in memory into a session opened ahead, and closes unused ones",
          "[transfer]") {
  PusherSetup s;
  FakeRegistry& registry = s.registry;
  BlobStore& store = s.store;
  auto bytes = std::make_shared<const std::string>(std::string(5000, '7'));  // an edit's source layer, not stored yet
  const Descriptor layer = describe("application/vnd.oci.image.layer.v1.tar+gzip", *bytes);

  ImageTransfer transfer(s.transfer_options());
  {
    // Two threads, each opening one session before the layer is queued:
    // the layer's upload finds one of them, the other is left over.
    BlobPusher pusher(transfer, {Reference::parse("reg.test/app:1")}, store, 2, std::chrono::steady_clock::now());
    pusher.open_sessions(2);
    pusher.add(PushItem{layer, "source", &store, "", "", /*fresh=*/true, bytes, nullptr});
    CHECK(pusher.finish().count(layer.digest.str()) == 1);
  }
  CHECK_FALSE(store.contains(layer.digest));
  CHECK(registry.has_blob("app", layer.digest));
  CHECK(s.http.count("HEAD", kBase + "/v2/app/blobs/" + layer.digest.str()) == 0);
  CHECK(s.http.count("POST", kBase + "/v2/app/blobs/uploads/") == 2);  // the two sessions, none more
  CHECK(s.http.count("DELETE", kBase + "/v2/app/blobs/uploads/") == 1);  // the unused one, closed
}

TEST_CASE("a streamed upload sends a blob as it is made and makes it a blob only when committed", "[transfer]") {
  TransferSetup s;
  FakeRegistry registry(s.http);
  ImageTransfer transfer(s.transfer_options());
  dockless::RegistryClient& client = transfer.client("reg.test");
  const std::string bytes = std::string(3000, 'a') + std::string(4000, 'b');
  const Descriptor blob = describe("application/vnd.oci.image.layer.v1.tar+gzip", bytes);
  const std::string sessions = kBase + "/v2/app/blobs/uploads/";

  SECTION("fed in pieces, committed: one PATCH, then a PUT with no body") {
    {
      dockless::StreamedUpload up(client, "app");
      up.feed(bytes.data(), 3000);
      up.feed(bytes.data() + 3000, 4000);
      up.end();
      CHECK_FALSE(registry.has_blob("app", blob.digest));  // still a session
      CHECK(up.commit(blob));
    }
    CHECK(registry.has_blob("app", blob.digest));
    CHECK(s.http.count("PATCH", sessions) == 1);
    CHECK(s.http.count("DELETE", sessions) == 0);
  }
  SECTION("following a blob as it is stored: sent while written, committed once it is whole") {
    BlobStore store(s.dir / "store");
    auto file = std::make_shared<dockless::GrowingFile>();
    {
      dockless::StreamedUpload up(client, "app", file);
      dockless::BlobWriter writer(store);
      writer.follow(file);
      writer.write(bytes.data(), 3000);
      writer.write(bytes.data() + 3000, 4000);
      CHECK(writer.commit() == blob.digest);
      CHECK_FALSE(registry.has_blob("app", blob.digest));  // still a session
      CHECK(up.commit(blob));
    }
    CHECK(registry.has_blob("app", blob.digest));
    CHECK(s.http.count("PATCH", sessions) == 1);
    CHECK(s.http.count("DELETE", sessions) == 0);
  }
  SECTION("following a blob whose writer fails: no blob, the session closed") {
    BlobStore store(s.dir / "store");
    auto file = std::make_shared<dockless::GrowingFile>();
    {
      dockless::StreamedUpload up(client, "app", file);
      {
        dockless::BlobWriter writer(store);
        writer.follow(file);
        writer.write(bytes.data(), 3000);
      }  // never committed
      CHECK_FALSE(up.commit(blob));
    }
    CHECK_FALSE(registry.has_blob("app", blob.digest));
    CHECK(s.http.count("DELETE", sessions) == 1);
  }
  SECTION("a descriptor the bytes do not match is not committed") {
    dockless::StreamedUpload up(client, "app");
    up.feed(bytes.data(), 3000);
    up.end();
    CHECK_FALSE(up.commit(blob));  // 3000 bytes sent, the blob has 7000
  }
  SECTION("abandoned (the producer failed), or fed past its bound: no blob, the session closed") {
    {
      dockless::StreamedUpload up(client, "app");
      up.feed(bytes.data(), 3000);
      up.abandon();
      CHECK_FALSE(up.commit(blob));
    }
    {
      dockless::StreamedUpload up(client, "app", /*bound=*/1000);
      up.feed(bytes.data(), 3000);  // more than the registry has taken: given up, not waited for
      up.end();
      CHECK_FALSE(up.commit(blob));
    }
    CHECK_FALSE(registry.has_blob("app", blob.digest));
    CHECK(s.http.count("DELETE", sessions) == 2);
  }
}

TEST_CASE("a build's pusher commits a blob streamed to its destination instead of sending it again",
          "[transfer]") {
  PusherSetup s;
  FakeRegistry& registry = s.registry;
  BlobStore& store = s.store;
  auto bytes = std::make_shared<const std::string>(std::string(9000, '8'));
  const Descriptor layer = describe("application/vnd.oci.image.layer.v1.tar+gzip", *bytes);

  ImageTransfer transfer(s.transfer_options());
  auto streamed = std::make_shared<dockless::StreamedUpload>(transfer.client("reg.test"), "app");
  streamed->feed(bytes->data(), bytes->size());
  streamed->end();
  {
    BlobPusher pusher(transfer, {Reference::parse("reg.test/app:1")}, store, 2, std::chrono::steady_clock::now());
    pusher.add(PushItem{layer, "source", &store, "", "", /*fresh=*/true, bytes, streamed});
    CHECK(pusher.finish().count(layer.digest.str()) == 1);
  }
  CHECK(registry.has_blob("app", layer.digest));
  CHECK(s.http.count("POST", kBase + "/v2/app/blobs/uploads/") == 1);  // the stream's session only
  CHECK(s.http.count("PATCH", kBase + "/v2/app/blobs/uploads/") == 1);
  CHECK(s.http.count("PUT", kBase + "/v2/app/blobs/uploads/") == 1);
}

TEST_CASE("a build's pusher uploads a small blob it just made without a HEAD, and the push reads the tag once",
          "[transfer]") {
  TransferSetup s;
  FakeRegistry registry(s.http);
  s.publish(registry);  // app:1 holds the config and three layers
  BlobStore store(s.dir / "store");
  s.stock(store);
  const Descriptor made_layer = put_layer(store, std::string(6000, '5'));  // an edit's new source layer
  const std::string old = std::string(7000, '6');  // a cached layer the registry already has elsewhere
  const Descriptor old_layer = put_layer(store, old);
  registry.add_blob("app", old);

  ImageTransfer transfer(s.transfer_options());
  std::map<std::string, TagContents> tags;
  {
    BlobPusher pusher(transfer, {Reference::parse("reg.test/app:1")}, store, 2, std::chrono::steady_clock::now());
    pusher.add(PushItem{made_layer, "source", &store, "", "", /*fresh=*/true, nullptr, nullptr});
    pusher.add(PushItem{old_layer, "cached", &store, "", "", false, nullptr, nullptr});
    CHECK(pusher.finish().size() == 2);
    tags = pusher.tags_read();
  }
  const std::string made_url = kBase + "/v2/app/blobs/" + made_layer.digest.str();
  CHECK(s.http.count("HEAD", made_url) == 0);  // fresh: straight to the upload
  CHECK(registry.has_blob("app", made_layer.digest));
  CHECK(s.http.count("HEAD", kBase + "/v2/app/blobs/" + old_layer.digest.str()) == 1);  // not fresh: asked first
  REQUIRE(tags.count("reg.test/app:1") == 1);
  CHECK(tags.at("reg.test/app:1").digest == s.manifest_digest);

  // The final push of an image to that tag, given what the pusher read, asks for the tag no more.
  const std::size_t heads = s.http.count("HEAD", kBase + "/v2/app/manifests/1");
  store.put(s.manifest);
  LocalImage image{&store, describe("application/vnd.oci.image.manifest.v1+json", s.manifest), "", "", {}, {}, tags};
  for (const auto& d : s.descriptors) image.pushed.insert(d.digest.str());
  CHECK(transfer.store(image, ImageLocation::parse("reg.test/app:1"), "") == s.manifest_digest);
  CHECK(s.http.count("HEAD", kBase + "/v2/app/manifests/1") == heads);
}
