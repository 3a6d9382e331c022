// Multi-platform builds: the platform list, the index of per-platform
// manifests, per-platform cache refs, and what a foreign target needs:
// sdist-only detection from uv.lock, binfmt_misc handlers, glibc ->
// --python-platform, and the twin's interpreter check.
#include <catch2/catch.hpp>

#include <filesystem>

#include "base/error.h"
#include "oci/media_types.h"
#include "src/build/foreign_platform.h"
#include "src/build/multi_platform.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using namespace dockless;
using dockless::test::TempDir;
using dockless::test::write_text;

TEST_CASE("requested_platforms: --platform list, image.platforms, image.platform, host", "[multi_platform]") {
  auto ps = requested_platforms("linux/amd64, linux/arm64", "", {});
  REQUIRE(ps.size() == 2);
  CHECK(ps[0].str() == "linux/amd64");
  CHECK(ps[1].str() == "linux/arm64");
  // The option wins over the spec.
  CHECK(requested_platforms("linux/arm64", "", {"linux/amd64", "linux/s390x"}).size() == 1);
  auto spec = requested_platforms("", "", {"linux/arm64", "linux/amd64"});
  REQUIRE(spec.size() == 2);
  CHECK(spec[0].str() == "linux/arm64");
  CHECK(requested_platforms("", "linux/arm64", {}).front().str() == "linux/arm64");
  CHECK(requested_platforms("", "", {}).front() == Platform::host());
  CHECK_THROWS_AS(requested_platforms("linux/amd64,,linux/arm64", "", {}), UsageError);
  CHECK_THROWS_AS(requested_platforms("linux/amd64,", "", {}), UsageError);
  CHECK_THROWS_AS(requested_platforms("linux/amd64,linux/x86_64", "", {}), UsageError);  // an alias twice
  CHECK_THROWS_AS(requested_platforms("linux", "", {}), UsageError);
}

TEST_CASE("platform_index: each manifest's descriptor with its platform, in order", "[multi_platform]") {
  Descriptor a, b;
  a.media_type = b.media_type = std::string(media_type::kOciManifest);
  a.digest = sha256_of("a");
  a.size = 10;
  b.digest = sha256_of("b");
  b.size = 20;
  ImageIndex index = platform_index({{Platform::parse("linux/amd64"), a}, {Platform::parse("linux/arm64"), b}});
  std::string json = index.to_json();
  ImageIndex back = ImageIndex::parse(json);
  CHECK(back.media_type == media_type::kOciIndex);
  REQUIRE(back.manifests.size() == 2);
  CHECK(back.manifests[0].digest == a.digest);
  CHECK(back.manifests[0].size == 10);
  REQUIRE(back.manifests[1].platform);
  CHECK(back.manifests[1].platform->architecture == "arm64");
  CHECK(back.manifests[1].digest == b.digest);
  CHECK(json.find("\"os\":\"linux\"") != std::string::npos);
  // The same manifests give the same bytes.
  CHECK(platform_index({{Platform::parse("linux/amd64"), a}, {Platform::parse("linux/arm64"), b}}).to_json() == json);
}

TEST_CASE("platform_cache_ref: one cache artifact per platform", "[multi_platform]") {
  CHECK(platform_cache_ref("localhost:5000/cache:main", Platform::parse("linux/arm64")) ==
        "localhost:5000/cache:main-linux-arm64");
  CHECK(platform_cache_ref("localhost:5000/cache", Platform::parse("linux/amd64")) ==
        "localhost:5000/cache:latest-linux-amd64");
}

namespace {

const char* kLock = R"(version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }

[[package]]
name = "fastpkg"
version = "1.0"
source = { registry = "http://127.0.0.1/simple" }
sdist = { url = "http://127.0.0.1/f/fastpkg-1.0.tar.gz", hash = "sha256:00" }
wheels = [
    { url = "http://127.0.0.1/f/fastpkg-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", hash = "sha256:01" },
    { url = "http://127.0.0.1/f/fastpkg-1.0-cp311-cp311-manylinux_2_28_aarch64.whl", hash = "sha256:02" },
]

[[package]]
name = "amd64only"
version = "2.0"
source = { registry = "http://127.0.0.1/simple" }
sdist = { url = "http://127.0.0.1/f/amd64only-2.0.tar.gz", hash = "sha256:03" }
wheels = [
    { url = "http://127.0.0.1/f/amd64only-2.0-cp311-cp311-manylinux_2_28_x86_64.whl", hash = "sha256:04" },
]

[[package]]
name = "pure"
version = "3.0"
source = { registry = "http://127.0.0.1/simple" }
sdist = { url = "http://127.0.0.1/f/pure-3.0.tar.gz", hash = "sha256:05" }
wheels = [{ url = "http://127.0.0.1/f/pure-3.0-py3-none-any.whl", hash = "sha256:06" }]

[[package]]
name = "sdistonly"
version = "4.0"
source = { registry = "http://127.0.0.1/simple" }
sdist = { url = "http://127.0.0.1/f/sdistonly-4.0.tar.gz", hash = "sha256:07" }

[[package]]
name = "winonly"
version = "5.0"
source = { registry = "http://127.0.0.1/simple" }
wheels = [{ url = "http://127.0.0.1/f/winonly-5.0-py3-none-win_amd64.whl", hash = "sha256:08" }]
)";

}  // namespace

TEST_CASE("sdist_only_packages: packages with an sdist and no wheel for the target", "[multi_platform]") {
  auto arm = sdist_only_packages(kLock, "uv.lock", Platform::parse("linux/arm64"));
  CHECK(arm == std::vector<std::string>{"amd64only==2.0", "sdistonly==4.0"});
  auto amd = sdist_only_packages(kLock, "uv.lock", Platform::parse("linux/amd64"));
  CHECK(amd == std::vector<std::string>{"sdistonly==4.0"});
  // A wheel-only lock needs no emulation.
  CHECK(sdist_only_packages("version = 1\n", "uv.lock", Platform::parse("linux/arm64")).empty());
  CHECK_THROWS_AS(sdist_only_packages("[[package]\n", "uv.lock", Platform::parse("linux/arm64")), Error);
}

TEST_CASE("binfmt_handler_for: an enabled F-flag handler whose magic is the target's ELF machine",
          "[multi_platform]") {
  TempDir d;
  write_text(d / "status", "enabled\n");
  write_text(d / "register", "");
  const std::string mask = "mask fffffffffffefe00fffffffffffffffffeffffff\n";
  write_text(d / "qemu-aarch64",
             "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\n"
             "magic 7f454c460201010000000000000000000200b700\n" + mask);
  CHECK(binfmt_handler_for(Platform::parse("linux/arm64"), d.path()));
  CHECK_FALSE(binfmt_handler_for(Platform::parse("linux/s390x"), d.path()));
  // Without F the interpreter is looked up in the sandbox's root: not usable.
  write_text(d / "qemu-aarch64",
             "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: \noffset 0\n"
             "magic 7f454c460201010000000000000000000200b700\n" + mask);
  CHECK_FALSE(binfmt_handler_for(Platform::parse("linux/arm64"), d.path()));
  write_text(d / "qemu-aarch64",
             "disabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\n"
             "magic 7f454c460201010000000000000000000200b700\n" + mask);
  CHECK_FALSE(binfmt_handler_for(Platform::parse("linux/arm64"), d.path()));
  TempDir none;
  CHECK_FALSE(binfmt_handler_for(Platform::parse("linux/arm64"), none.path()));
}

TEST_CASE("python_platform_for: glibc of the target base, clamped to what uv knows", "[multi_platform]") {
  CHECK(glibc_minor("2.36-9+deb12u4") == 36);
  CHECK(glibc_minor("2.17") == 17);
  CHECK(glibc_minor("1:2.3") == -1);
  TempDir root;
  CHECK(python_platform_for(Platform::parse("linux/arm64"), root.path()) == "aarch64-manylinux_2_28");
  write_text(root / "var/lib/dpkg/status",
             "Package: libc-bin\nVersion: 9.9\n\nPackage: libc6\nStatus: install ok installed\n"
             "Version: 2.36-9+deb12u4\n\n");
  CHECK(python_platform_for(Platform::parse("linux/arm64"), root.path()) == "aarch64-manylinux_2_36");
  CHECK(python_platform_for(Platform::parse("linux/amd64"), root.path()) == "x86_64-manylinux_2_36");
  TempDir old;
  write_text(old / "lib/x86_64-linux-gnu/libc-2.31.so", "");
  CHECK(python_platform_for(Platform::parse("linux/amd64"), old.path()) == "x86_64-manylinux_2_31");
  TempDir older;
  write_text(older / "lib/libc-2.30.so", "");  // uv has no 2_29/2_30: the next lower it knows
  CHECK(python_platform_for(Platform::parse("linux/amd64"), older.path()) == "x86_64-manylinux_2_28");
}

TEST_CASE("check_same_python: the interpreter path and minor version in both bases", "[multi_platform]") {
  TempDir target, host;
  for (const auto* r : {&target, &host}) {
    write_text(*r / "usr/bin/python3.11", "");
    fs::create_symlink("python3.11", r->path() / "usr/bin/python3");
  }
  CHECK(python_minor_in(target.path(), "/usr/bin/python3") == "3.11");
  CHECK_NOTHROW(check_same_python(target.path(), Platform::parse("linux/arm64"), host.path(),
                                  Platform::parse("linux/amd64"), "/usr/bin/python3"));
  // An absolute link resolves inside the root, not on this machine.
  fs::remove(host / "usr/bin/python3");
  write_text(host / "usr/bin/python3.12", "");
  fs::create_symlink("/usr/bin/python3.12", host.path() / "usr/bin/python3");
  CHECK(python_minor_in(host.path(), "/usr/bin/python3") == "3.12");
  try {
    check_same_python(target.path(), Platform::parse("linux/arm64"), host.path(), Platform::parse("linux/amd64"),
                      "/usr/bin/python3");
    FAIL("no error");
  } catch (const Error& e) {
    std::string m = e.what();
    CHECK(m.find("python3.11") != std::string::npos);
    CHECK(m.find("python3.12") != std::string::npos);
    CHECK(m.find("linux/arm64") != std::string::npos);
  }
  CHECK(python_minor_in(host.path(), "/usr/bin/nope").empty());
  CHECK_THROWS_AS(check_same_python(target.path(), Platform::parse("linux/arm64"), host.path(),
                                    Platform::parse("linux/amd64"), "/usr/bin/nope"),
                  Error);
}
