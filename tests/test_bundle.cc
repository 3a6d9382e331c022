// bundle / unbundle and the wheelhouse against in-memory registries and a
// fake file server: the lock's files are checked against its hashes (a
// mismatch is never stored), the wheelhouse manifest is the fixed format
// and reproducible, a bundle's entries say where they came from and go, and
// unbundle pushes everything under a prefix, a second time uploading nothing.
#include <catch2/catch.hpp>

#include <string>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/manifest.h"
#include "oci/oci_layout.h"
#include "src/transfer/bundle.h"
#include "src/transfer/wheelhouse.h"
#include "tests/fake_registry.h"

using namespace dockless;
using namespace dockless::test;
namespace fs = std::filesystem;

namespace {

const std::string kWheel = std::string(3000, 'w');
const std::string kSdist = std::string(2000, 's');

std::string lock_text() {
  return R"(version = 1
requires-python = ">=3.11"

[[package]]
name = "a"
version = "1.0"
source = { registry = "https://files.test/simple" }
sdist = { url = "https://files.test/f/a-1.0.tar.gz", hash = ")" +
         sha256_of(kSdist).str() + R"(", size = 2000 }
wheels = [
    { url = "https://files.test/f/a-1.0-py3-none-any.whl", hash = ")" +
         sha256_of(kWheel).str() + R"(", size = 3000 },
]

[[package]]
name = "proj"
version = "0.1.0"
source = { editable = "." }
)";
}

FakeResponse respond(long status, std::string body, HttpHeaders headers = {}) {
  FakeResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("locked_files lists the lock's files with URLs, sorted by name", "[bundle]") {
  std::vector<LockedFile> files = locked_files(lock_text(), "uv.lock");
  REQUIRE(files.size() == 2);
  CHECK(files[0].name == "a-1.0-py3-none-any.whl");
  CHECK(files[0].wheel);
  CHECK(files[0].digest == sha256_of(kWheel));
  CHECK(files[1].name == "a-1.0.tar.gz");
  CHECK_FALSE(files[1].wheel);
  CHECK(files[1].size == 2000);
  CHECK_THAT(error_of([] { locked_files("[[package]]\nwheels = [{ url = \"https://x/a.whl\" }]\n", "L"); }),
             Catch::Contains("has no hash"));
  CHECK_THAT(error_of([] { locked_files("nope = [", "L"); }), Catch::Contains("not valid TOML"));
}

TEST_CASE("a downloaded file that does not match the lock is never stored", "[bundle]") {
  RegistryHarness h;
  h.http.on("GET", "https://files.test/f/a-1.0-py3-none-any.whl",
            respond(302, "", {{"Location", "/moved/a.whl"}}));
  h.http.on("GET", "https://files.test/moved/a.whl", respond(200, kWheel));
  h.http.on("GET", "https://files.test/f/a-1.0.tar.gz", respond(200, std::string(2000, 'X')));
  BlobStore store(h.dir / "store");
  std::vector<LockedFile> files = locked_files(lock_text(), "uv.lock");
  CHECK(download_locked_file(files[0], store, h.options()) == 3000);  // through the redirect
  CHECK(store.contains(sha256_of(kWheel)));
  CHECK(download_locked_file(files[0], store, h.options()) == 0);  // already there
  CHECK_THAT(error_of([&] { download_locked_file(files[1], store, h.options()); }),
             Catch::Contains("does not match uv.lock"));
  CHECK_FALSE(store.contains(sha256_of(std::string(2000, 'X'))));
  CHECK_FALSE(store.contains(files[1].digest));
}

TEST_CASE("the wheelhouse manifest is the fixed format, the same for the same lock", "[bundle]") {
  TempDir dir;
  BlobStore store(dir.path());
  store.put(kWheel);
  store.put(kSdist);
  std::vector<LockedFile> files = locked_files(lock_text(), "uv.lock");
  std::string bytes = wheelhouse_manifest(files, sha256_of(lock_text()).hex(), store);
  CHECK(bytes == wheelhouse_manifest(files, sha256_of(lock_text()).hex(), store));
  Manifest m = Manifest::parse(bytes);
  CHECK(m.artifact_type == "application/vnd.dockless.wheelhouse.v1");
  CHECK(m.config.digest.str() == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  CHECK(m.config.size == 2);
  REQUIRE(m.layers.size() == 2);
  CHECK(m.layers[0].media_type == "application/vnd.dockless.python.wheel");
  CHECK(m.layers[0].annotations.at("org.opencontainers.image.title") == "a-1.0-py3-none-any.whl");
  CHECK(m.layers[0].annotations.at("dev.dockless.url") == "https://files.test/f/a-1.0-py3-none-any.whl");
  CHECK(m.layers[1].media_type == "application/vnd.dockless.python.sdist");
  CHECK(m.layers[1].digest == sha256_of(kSdist));
  CHECK(m.annotations.at("dev.dockless.lock.sha256") == sha256_of(lock_text()).hex());
}

TEST_CASE("bundle then unbundle under a prefix; a second unbundle uploads nothing", "[bundle]") {
  RegistryHarness h;
  h.http.on("GET", "https://files.test/f/a-1.0-py3-none-any.whl", respond(200, kWheel));
  h.http.on("GET", "https://files.test/f/a-1.0.tar.gz", respond(200, kSdist));
  FakeRegistry reg(h.http);
  std::string cfg = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})";
  std::string layer = std::string(5000, 'l');
  reg.add_blob("team/base", cfg);
  reg.add_blob("team/base", layer);
  auto desc = [](const std::string& mt, const std::string& b) {
    return R"({"mediaType":")" + mt + R"(","digest":")" + sha256_of(b).str() + R"(","size":)" +
           std::to_string(b.size()) + "}";
  };
  std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
                         desc("application/vnd.oci.image.config.v1+json", cfg) + R"(,"layers":[)" +
                         desc("application/vnd.oci.image.layer.v1.tar+gzip", layer) + "]}";
  Digest image = reg.add_manifest("team/base", "12", manifest, "application/vnd.oci.image.manifest.v1+json");
  fs::path proj = h.dir / "proj";
  fs::create_directories(proj);
  write_file_atomic(proj / "uv.lock", lock_text());

  BundleOptions b;
  b.transfer.registry = h.options();
  b.transfer.keychain.authfile = (h.dir / "auth.json").string();
  b.transfer.cache_dir = h.dir / "cache";
  b.transfer.all_platforms = true;
  b.images = {"reg.test/team/base:12"};
  b.wheels_project = proj;
  b.output = h.dir / "bundle";
  BundleSummary s = run_bundle(b);
  CHECK(s.entries == 2);
  OciLayout layout = OciLayout::open(b.output);
  Descriptor top = layout.resolve("team/base:12");
  CHECK(top.digest == image);
  CHECK(top.annotations.at("io.containerd.image.name") == "reg.test/team/base:12");
  CHECK(top.annotations.at("dev.dockless.bundle.kind") == "image");
  CHECK(layout.resolve("wheels/proj:latest").annotations.at("dev.dockless.bundle.kind") == "wheelhouse");

  UnbundleOptions u{b.transfer, b.output, "reg.test/mirror", false};
  UnbundleSummary first = run_unbundle(u);
  CHECK(first.uploaded == 5);  // config, layer; wheel, sdist, empty config
  CHECK(reg.manifest("mirror/team/base", "12") == manifest);
  CHECK(reg.has_blob("mirror/wheels/proj", sha256_of(kWheel)));
  UnbundleSummary second = run_unbundle(u);
  CHECK(second.uploaded == 0);
  CHECK(second.present == 5);

  // A tar from a work dir that an interrupted bundle of other things left:
  // only what this run named goes in.
  BundleOptions t = b;
  fs::copy(b.output, h.dir / "t.tar.partial", fs::copy_options::recursive);
  t.images.clear();
  t.output = h.dir / "t.tar";
  CHECK(run_bundle(t).entries == 1);
  CHECK_FALSE(fs::exists(h.dir / "t.tar.partial"));
  const std::string tar_bytes = read_file(t.output);
  CHECK(tar_bytes.find(kWheel) != std::string::npos);
  CHECK(tar_bytes.find(layer) == std::string::npos);  // the old entry's blob stayed out
  UnbundleSummary only_wheels = run_unbundle({b.transfer, t.output, "reg.test/tar", false});
  CHECK(only_wheels.entries == 1);
  CHECK(only_wheels.blobs == 3);
  CHECK_FALSE(reg.manifest("tar/team/base", "12"));

  CHECK_THROWS_AS(run_unbundle({b.transfer, b.output, "not-a-registry", false}), UsageError);
  fs::remove(b.output / "blobs" / "sha256" / sha256_of(layer).hex());
  CHECK_THAT(error_of([&] { run_unbundle(u); }), Catch::Contains("is missing"));
}
