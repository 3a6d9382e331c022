// Copying what is not an image (artifacts, nested indexes, referrers)
// through run_copy against in-memory registries and OCI layouts: digests
// stay the same, every blob arrives, and referrers follow with --referrers
// (through the referrers API or the sha256-<hex> tag schema).
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/image_index.h"
#include "oci/oci_layout.h"
#include "oci/referrers.h"
#include "src/transfer/transfer.h"
#include "tests/fake_registry.h"

using namespace dockless;
using namespace dockless::test;
namespace fs = std::filesystem;

namespace {

const std::string kManifestType = "application/vnd.oci.image.manifest.v1+json";
const std::string kIndexType = "application/vnd.oci.image.index.v1+json";

std::string desc_json(const std::string& media_type, const std::string& bytes,
                      const std::string& extra = "") {
  return R"({"mediaType":")" + media_type + R"(","digest":")" + sha256_of(bytes).str() +
         R"(","size":)" + std::to_string(bytes.size()) + extra + "}";
}

/// One manifest and its blobs, made to be published.
struct Doc {
  std::string bytes, media_type;
  std::vector<std::string> blobs;
  Digest digest() const { return sha256_of(bytes); }
};

Doc artifact(const std::string& artifact_type, const std::string& payload,
             const std::string& subject = "") {
  Doc d;
  d.media_type = kManifestType;
  std::string config = "{}";
  d.blobs = {config, payload};
  d.bytes = R"({"schemaVersion":2,"mediaType":")" + kManifestType + R"(","artifactType":")" +
            artifact_type + R"(","config":)" +
            desc_json("application/vnd.oci.empty.v1+json", config) + R"(,"layers":[)" +
            desc_json("application/octet-stream", payload) + "]" +
            (subject.empty() ? "" : R"(,"subject":)" + subject) + "}";
  return d;
}

Doc image(const std::string& arch, const std::string& layer) {
  Doc d;
  d.media_type = kManifestType;
  std::string config = R"({"architecture":")" + arch +
                       R"(","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})";
  d.blobs = {config, layer};
  d.bytes = R"({"schemaVersion":2,"mediaType":")" + kManifestType + R"(","config":)" +
            desc_json("application/vnd.oci.image.config.v1+json", config) + R"(,"layers":[)" +
            desc_json("application/vnd.oci.image.layer.v1.tar+gzip", layer) + "]}";
  return d;
}

Doc index_of(const std::vector<std::pair<const Doc*, std::string>>& children) {
  Doc d;
  d.media_type = kIndexType;
  std::string list;
  for (const auto& [c, extra] : children)
    list += (list.empty() ? "" : ",") + desc_json(c->media_type, c->bytes, extra);
  d.bytes = R"({"schemaVersion":2,"mediaType":")" + kIndexType + R"(","manifests":[)" + list + "]}";
  return d;
}

void publish(FakeRegistry& r, const std::string& repo, const Doc& d, const std::string& tag = "") {
  for (const auto& b : d.blobs) r.add_blob(repo, b);
  r.add_manifest(repo, tag.empty() ? d.digest().str() : tag, d.bytes, d.media_type);
}

struct Setup : RegistryHarness {
  FakeRegistry registry{http};
  TransferOptions options() {
    TransferOptions o;
    o.registry = RegistryHarness::options();
    o.keychain.authfile = (dir / "auth.json").string();
    o.cache_dir = dir / "cache";
    o.all_platforms = true;
    return o;
  }
  Digest copy(const std::string& src, const std::string& dst, bool referrers = false) {
    TransferOptions o = options();
    o.referrers = referrers;
    return run_copy(ImageLocation::parse(src), ImageLocation::parse(dst), o);
  }
  bool has_all(const std::string& repo, const Doc& d) {
    for (const auto& b : d.blobs)
      if (!registry.has_blob(repo, sha256_of(b))) return false;
    return registry.manifest(repo, d.digest().str()) == d.bytes;
  }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("an artifact goes registry -> registry -> layout -> registry with its digest",
          "[artifact_copy]") {
  Setup s;
  Doc cache = artifact("application/vnd.dockless.build-cache.v1+json", std::string(5000, 'c'));
  publish(s.registry, "cache", cache, "v1");

  CHECK(s.copy("reg.test/cache:v1", "reg.test/copy:v1") == cache.digest());
  CHECK(s.has_all("copy", cache));
  CHECK(s.registry.manifest("copy", "v1") == cache.bytes);

  fs::path dir = s.dir / "layout";
  CHECK(s.copy("reg.test/cache:v1", "oci:" + dir.string() + ":c") == cache.digest());
  OciLayout layout = OciLayout::open(dir);
  Descriptor top = layout.resolve("c");
  CHECK(top.digest == cache.digest());
  CHECK_FALSE(top.platform);  // an artifact has none
  CHECK(layout.blobs().read(top.digest) == cache.bytes);

  CHECK(s.copy("oci:" + dir.string() + ":c", "reg.test/back:1") == cache.digest());
  CHECK(s.has_all("back", cache));
}

TEST_CASE("a nested index is copied whole: every child manifest and blob", "[artifact_copy]") {
  Setup s;
  Doc amd = image("amd64", std::string(3000, 'a')), arm = image("arm64", std::string(3000, 'b'));
  Doc sbom = artifact("application/spdx+json", R"({"spdx":1})");
  Doc inner = index_of({{&amd, R"(,"platform":{"architecture":"amd64","os":"linux"})"},
                        {&arm, R"(,"platform":{"architecture":"arm64","os":"linux"})"}});
  Doc outer = index_of({{&inner, ""}, {&sbom, ""}});
  for (const Doc* d : {&amd, &arm, &sbom, &inner}) publish(s.registry, "multi", *d);
  publish(s.registry, "multi", outer, "1");

  CHECK(s.copy("reg.test/multi:1", "reg.test/multi2:1") == outer.digest());
  for (const Doc* d : {&amd, &arm, &sbom, &inner, &outer}) CHECK(s.has_all("multi2", *d));

  fs::path dir = s.dir / "nested";
  CHECK(s.copy("reg.test/multi:1", "oci:" + dir.string()) == outer.digest());
  OciLayout layout = OciLayout::open(dir);
  for (const Doc* d : {&amd, &arm, &sbom, &inner, &outer}) {
    CHECK(layout.blobs().contains(d->digest()));
    for (const auto& b : d->blobs) CHECK(layout.blobs().contains(sha256_of(b)));
  }
  // --platform (all_platforms off) picks one manifest of an index.
  s.registry.add_manifest("multi", "inner", inner.bytes, inner.media_type);
  TransferOptions o = s.options();
  o.all_platforms = false;
  o.platform = Platform{"linux", "arm64", ""};
  CHECK(run_copy(ImageLocation::parse("reg.test/multi:inner"), ImageLocation::parse("reg.test/one:1"), o) ==
        arm.digest());
  CHECK(s.has_all("one", arm));
  CHECK_FALSE(s.registry.has_blob("one", sha256_of(amd.blobs[1])));
}

namespace {

/// An image with an SBOM and a signature of it, and a signature of the SBOM.
struct Signed {
  Doc img = image("amd64", std::string(4000, 'i'));
  std::string subject = desc_json(kManifestType, img.bytes);
  Doc sbom = artifact("application/spdx+json", R"({"sbom":true})", subject);
  Doc sig = artifact("application/vnd.dev.cosign.signature", "sig-of-image", subject);
  Doc sbom_sig = artifact("application/vnd.dev.cosign.signature", "sig-of-sbom",
                          desc_json(kManifestType, sbom.bytes));

  /// Publishes all, listing referrers with the tag schema (a registry
  /// without the API, as distribution 2.8).
  void publish_tag_schema(FakeRegistry& r, const std::string& repo) {
    publish(r, repo, img, "1");
    for (const Doc* d : {&sbom, &sig, &sbom_sig}) publish(r, repo, *d);
    std::optional<std::string> list;
    for (const Doc* d : {&sbom, &sig}) list = add_referrer(list, referrer_descriptor(d->bytes, d->media_type));
    r.add_manifest(repo, referrers_tag(img.digest()), *list, kIndexType);
    r.add_manifest(repo, referrers_tag(sbom.digest()),
                   *add_referrer(std::nullopt, referrer_descriptor(sbom_sig.bytes, kManifestType)), kIndexType);
  }
};

std::vector<std::string> listed(const std::string& index_bytes) {
  std::vector<std::string> out;
  for (const auto& m : ImageIndex::parse(index_bytes).manifests) out.push_back(m.digest.str());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("--referrers follows the tag schema and keeps it at a registry without the API",
          "[artifact_copy]") {
  Setup s;
  Signed g;
  g.publish_tag_schema(s.registry, "app");

  SECTION("without --referrers only the image moves") {
    CHECK(s.copy("reg.test/app:1", "reg.test/plain:1") == g.img.digest());
    CHECK_FALSE(s.registry.manifest("plain", g.sbom.digest().str()));
  }
  SECTION("registry -> registry") {
    CHECK(s.copy("reg.test/app:1", "reg.test/dst:1", true) == g.img.digest());
    for (const Doc* d : {&g.img, &g.sbom, &g.sig, &g.sbom_sig}) CHECK(s.has_all("dst", *d));
    auto list = s.registry.manifest("dst", referrers_tag(g.img.digest()));
    REQUIRE(list);
    CHECK(listed(*list) == sorted({g.sbom.digest().str(), g.sig.digest().str()}));
    auto of_sbom = s.registry.manifest("dst", referrers_tag(g.sbom.digest()));
    REQUIRE(of_sbom);
    CHECK(listed(*of_sbom) == std::vector<std::string>{g.sbom_sig.digest().str()});
    // A second run changes nothing (the tag index is not duplicated).
    CHECK(s.copy("reg.test/app:1", "reg.test/dst:1", true) == g.img.digest());
    CHECK(listed(*s.registry.manifest("dst", referrers_tag(g.img.digest()))).size() == 2);
  }
  SECTION("registry -> layout -> registry with the referrers API") {
    fs::path dir = s.dir / "signed";
    CHECK(s.copy("reg.test/app:1", "oci:" + dir.string() + ":1", true) == g.img.digest());
    ImageIndex idx = OciLayout::open(dir).read_index();
    CHECK(idx.manifests.size() == 4);  // the image (tagged) and 3 untagged referrers
    for (const auto& m : idx.manifests)
      if (m.digest != g.img.digest()) {
        CHECK(m.ref_name().empty());
        CHECK_FALSE(m.artifact_type.empty());
      }
    // A second copy into the layout lists each referrer once.
    CHECK(s.copy("reg.test/app:1", "oci:" + dir.string() + ":1", true) == g.img.digest());
    CHECK(OciLayout::open(dir).read_index().manifests.size() == 4);
    // oci:DIR without a tag still names the image, not a referrer.
    s.registry.referrers_api = true;
    CHECK(s.copy("oci:" + dir.string(), "reg.test/api:1", true) == g.img.digest());
    for (const Doc* d : {&g.img, &g.sbom, &g.sig, &g.sbom_sig}) CHECK(s.has_all("api", *d));
    CHECK_FALSE(s.registry.manifest("api", referrers_tag(g.img.digest())));  // the API indexes them
    // And back out through the API.
    CHECK(s.copy("reg.test/api:1", "reg.test/api2:1", true) == g.img.digest());
    for (const Doc* d : {&g.img, &g.sbom, &g.sig, &g.sbom_sig}) CHECK(s.has_all("api2", *d));
  }
}

TEST_CASE("bad content is refused with one line", "[artifact_copy]") {
  Setup s;
  Signed g;
  SECTION("a referrer whose subject is another manifest") {
    publish(s.registry, "app", g.img, "1");
    publish(s.registry, "app", g.sbom_sig);  // its subject is the SBOM, not the image
    s.registry.add_manifest("app", referrers_tag(g.img.digest()),
                            *add_referrer(std::nullopt, referrer_descriptor(g.sbom_sig.bytes, kManifestType)),
                            kIndexType);
    std::string msg = error_of([&] { s.copy("reg.test/app:1", "reg.test/dst:1", true); });
    CHECK_THAT(msg, Catch::Contains("its subject is " + g.sbom.digest().str()));
  }
  SECTION("a layout blob that fails its digest") {
    Doc a = artifact("application/x-thing", std::string(2000, 'x'));
    publish(s.registry, "a", a, "1");
    fs::path dir = s.dir / "bad";
    s.copy("reg.test/a:1", "oci:" + dir.string() + ":1");
    fs::path blob = dir / "blobs/sha256" / sha256_of(a.blobs[1]).hex();
    fs::remove(blob);
    write_text(blob, std::string(2000, 'y'));
    std::string msg = error_of([&] { s.copy("oci:" + dir.string() + ":1", "reg.test/out:1"); });
    CHECK_THAT(msg, Catch::Contains("is corrupt"));
    CHECK_FALSE(s.registry.manifest("out", "1"));
  }
  SECTION("a manifest over 4 MiB") {
    std::string big = R"({"schemaVersion":2,"config":{"mediaType":"a/b","digest":")" +
                      sha256_of("x").str() + R"(","size":1},"layers":[],"annotations":{"x":")" +
                      std::string(5 << 20, 'z') + R"("}})";
    s.registry.add_manifest("big", "1", big, kManifestType);
    CHECK_THAT(error_of([&] { s.copy("reg.test/big:1", "reg.test/out:1"); }),
               Catch::Contains("larger than 4194304"));
  }
  SECTION("a docker-archive of an artifact") {
    Doc a = artifact("application/x-thing", "payload");
    publish(s.registry, "a", a, "1");
    fs::path tar = s.dir / "a.tar";
    CHECK_THAT(error_of([&] { s.copy("reg.test/a:1", "docker-archive:" + tar.string()); }),
               Catch::Contains("is an artifact, not an image"));
    CHECK_FALSE(fs::exists(tar));
  }
}
