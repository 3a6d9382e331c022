// Tests for src/build/platform_uv: the --uv option, the index URLs a build
// looks up a platform's uv wheel in, and fetching that wheel (the right one
// for the platform, its hash checked, nothing left behind on a mismatch).
#include "src/build/platform_uv.h"

#include <archive.h>
#include <archive_entry.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/digest.h"
#include "tests/fake_http_client.h"
#include "tests/test_support.h"

using namespace dockless;

TEST_CASE("--uv: a plain path is the host's uv", "[platform_uv]") {
  auto [plat, path] = parse_uv_option("/opt/uv/bin/uv");
  CHECK(plat.empty());
  CHECK(path == "/opt/uv/bin/uv");
  // '=' inside a path is not a platform separator.
  CHECK(parse_uv_option("/opt/a=b/uv").first.empty());
  CHECK(parse_uv_option("./x=y").second == "./x=y");
}

TEST_CASE("--uv: PLATFORM=PATH, the platform normalised", "[platform_uv]") {
  auto [plat, path] = parse_uv_option("linux/aarch64=/tmp/uv-arm");
  CHECK(plat == "linux/arm64");
  CHECK(path == "/tmp/uv-arm");
  CHECK(parse_uv_option("linux/amd64=uv").first == "linux/amd64");
  CHECK(parse_uv_option("linux/arm64/v8=/u").first == "linux/arm64/v8");
}

TEST_CASE("--uv: bad values are usage errors", "[platform_uv]") {
  CHECK_THROWS_AS(parse_uv_option(""), UsageError);
  CHECK_THROWS_AS(parse_uv_option("linux/arm64="), UsageError);
  CHECK_THROWS_WITH(parse_uv_option("arm64=/x"), Catch::Contains("os/arch"));
  CHECK_THROWS_AS(parse_uv_option("linux//x=/u"), UsageError);
}

// ---- fetch_platform_uv against a scripted index ---------------------------------

namespace {

namespace fs = std::filesystem;
using dockless::test::FakeHttp;
using dockless::test::FakeResponse;
using dockless::test::TempDir;

const std::string kIndex = "https://idx.test/simple";

// A 20-byte ELF header of `machine` (62 x86-64, 183 aarch64) and a marker.
std::string fake_elf(int machine, const std::string& marker) {
  std::string b("\x7f" "ELF\x02\x01\x01", 7);
  b.resize(18, '\0');
  b += static_cast<char>(machine & 0xff);
  b += static_cast<char>(machine >> 8);
  return b + marker;
}

// A wheel (zip) with uv-V.data/scripts/uv = `binary` and METADATA's Version `meta_version`.
std::string make_wheel(const std::string& version, const std::string& binary, const std::string& meta_version) {
  archive* a = archive_write_new();
  archive_write_set_format_zip(a);
  std::string out;
  archive_write_open(a, &out, nullptr,
                     [](archive*, void* s, const void* buf, size_t n) -> la_ssize_t {
                       static_cast<std::string*>(s)->append(static_cast<const char*>(buf), n);
                       return static_cast<la_ssize_t>(n);
                     },
                     nullptr);
  auto add = [&](const std::string& name, const std::string& data, int mode) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, mode);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_write_header(a, e);
    archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
  };
  add("uv-" + version + ".dist-info/METADATA", "Metadata-Version: 2.4\nName: uv\nVersion: " + meta_version + "\n", 0644);
  add("uv-" + version + ".data/scripts/uv", binary, 0755);
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

FakeResponse resp(long status, std::string body) {
  FakeResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string sha_hex(const std::string& s) { return sha256_of(s).hex(); }

std::string page(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string p = "<!DOCTYPE html><html><body><h1>Links for uv</h1>\n";
  for (const auto& [name, sha] : files)
    p += "<a href=\"../../files/" + name + (sha.empty() ? "" : "#sha256=" + sha) + "\">" + name + "</a><br/>\n";
  return p + "</body></html>\n";
}

UvTool host_uv(const std::string& version) {
  UvTool uv;
  uv.short_version = version;
  uv.version = "uv " + version + " (x 2026-01-01)";
  return uv;
}

PlatformUvSource source_for(FakeHttp& http) {
  PlatformUvSource s;
  s.index_urls = {kIndex};
  s.http.http_factory = http.factory();
  return s;
}

std::size_t files_under(const fs::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  if (fs::exists(dir, ec))
    for (const auto& e : fs::recursive_directory_iterator(dir))
      if (!e.is_directory()) ++n;
  return n;
}

const std::string kArmWheel = "uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl";
const std::string kX86Wheel = "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
const std::string kMuslArm = "uv-0.13.9-py3-none-musllinux_1_1_aarch64.whl";

}  // namespace

TEST_CASE("fetch_platform_uv picks the target's wheel of the host's version and unpacks its uv", "[platform_uv]") {
  TempDir cache;
  FakeHttp http;
  const std::string arm = make_wheel("0.13.9", fake_elf(183, "arm uv"), "0.13.9");
  const std::string x86 = make_wheel("0.13.9", fake_elf(62, "x86 uv"), "0.13.9");
  const std::string musl = make_wheel("0.13.9", fake_elf(183, "musl uv"), "0.13.9");
  const std::string old = make_wheel("0.13.8", fake_elf(183, "old uv"), "0.13.8");
  http.on("GET", kIndex + "/uv/",
          resp(200, page({{"uv-0.13.8-py3-none-manylinux_2_17_aarch64.whl", sha_hex(old)},
                                      {kMuslArm, sha_hex(musl)},
                                      {kX86Wheel, sha_hex(x86)},
                                      {kArmWheel, sha_hex(arm)},
                                      {"uv-0.13.9.tar.gz", sha_hex("sdist")}})));
  http.on("GET", "https://idx.test/files/" + kArmWheel, resp(200, arm));
  http.on("GET", "https://idx.test/files/" + kX86Wheel, resp(200, x86));

  UvTool uv = fetch_platform_uv(host_uv("0.13.9"), Platform::parse("linux/arm64"), source_for(http), cache.path());
  CHECK(uv.binary == cache / "uv-platforms/0.13.9-linux-arm64/uv");
  CHECK(uv.short_version == "0.13.9");
  CHECK(uv.version.rfind("uv 0.13.9", 0) == 0);
  CHECK(read_file(uv.binary) == fake_elf(183, "arm uv"));  // manylinux preferred over musllinux
  CHECK(uv.sha == sha256_of(fake_elf(183, "arm uv")).str());
  CHECK((fs::status(uv.binary).permissions() & fs::perms::all) == static_cast<fs::perms>(0755));
  CHECK(http.count("GET", "https://idx.test/files/uv-0.13.8") == 0);

  UvTool amd = fetch_platform_uv(host_uv("0.13.9"), Platform::parse("linux/amd64"), source_for(http), cache.path());
  CHECK(read_file(amd.binary) == fake_elf(62, "x86 uv"));

  // Unpacked once per machine: the second call (even offline) reads nothing.
  const std::size_t requests = http.requests().size();
  PlatformUvSource offline = source_for(http);
  offline.offline = true;
  UvTool again = fetch_platform_uv(host_uv("0.13.9"), Platform::parse("linux/arm64"), offline, cache.path());
  CHECK(again.sha == uv.sha);
  CHECK(again.binary == uv.binary);
  CHECK(http.requests().size() == requests);
}

TEST_CASE("fetch_platform_uv: musllinux when no manylinux wheel fits; mirrors; the next index", "[platform_uv]") {
  TempDir cache;
  FakeHttp http;
  const std::string musl = make_wheel("0.13.9", fake_elf(183, "musl uv"), "0.13.9");
  http.on("GET", "https://first.test/simple/uv/", resp(404, "no"));
  http.on("GET", "http://mirror.test/pypi/uv/", resp(200, page({{kMuslArm, sha_hex(musl)}})));
  http.on("GET", "http://mirror.test/files/" + kMuslArm, resp(200, musl));
  PlatformUvSource s = source_for(http);
  s.index_urls = {"https://first.test/simple", kIndex};
  s.index_mirrors = {{kIndex, "http://mirror.test/pypi"}};
  UvTool uv = fetch_platform_uv(host_uv("0.13.9"), Platform::parse("linux/arm64"), s, cache.path());
  CHECK(read_file(uv.binary) == fake_elf(183, "musl uv"));
  CHECK(http.count("GET", "https://idx.test") == 0);  // never the original
  CHECK(http.unmatched().empty());
}

TEST_CASE("fetch_platform_uv: bytes that do not match the index's sha256 leave nothing in the cache",
          "[platform_uv]") {
  TempDir cache;
  FakeHttp http;
  const std::string arm = make_wheel("0.13.9", fake_elf(183, "arm uv"), "0.13.9");
  const std::string tampered = make_wheel("0.13.9", fake_elf(183, "evil uv"), "0.13.9");
  http.on("GET", kIndex + "/uv/", resp(200, page({{kArmWheel, sha_hex(arm)}})));
  http.on("GET", "https://idx.test/files/" + kArmWheel, resp(200, tampered));
  CHECK_THROWS_WITH(
      fetch_platform_uv(host_uv("0.13.9"), Platform::parse("linux/arm64"), source_for(http), cache.path()),
      Catch::Contains("has sha256 " + sha_hex(tampered)) && Catch::Contains("says " + sha_hex(arm)) &&
          Catch::Contains("linux/arm64"));
  CHECK(files_under(cache.path()) == 0);
  CHECK_FALSE(fs::exists(cache / "uv-platforms/0.13.9-linux-arm64"));
}

TEST_CASE("fetch_platform_uv: no wheel for the architecture, and other refusals", "[platform_uv]") {
  TempDir cache;
  FakeHttp http;
  const std::string x86 = make_wheel("0.13.9", fake_elf(62, "x86 uv"), "0.13.9");
  http.on("GET", kIndex + "/uv/", resp(200, page({{kX86Wheel, sha_hex(x86)}})));
  http.on("GET", "https://idx.test/files/" + kX86Wheel, resp(200, x86));
  CHECK_THROWS_WITH(
      fetch_platform_uv(host_uv("0.13.9"), Platform::parse("linux/arm64"), source_for(http), cache.path()),
      Catch::Contains("no uv 0.13.9 wheel for aarch64") && Catch::Contains(kIndex) &&
          Catch::Contains("--uv linux/arm64=PATH"));
  CHECK(http.count("GET", "https://idx.test/files/") == 0);

  // Another version only.
  CHECK_THROWS_WITH(
      fetch_platform_uv(host_uv("0.14.0"), Platform::parse("linux/amd64"), source_for(http), cache.path()),
      Catch::Contains("no uv 0.14.0 wheel for x86_64"));
  // Offline with nothing cached: one clear line, no request.
  const std::size_t before = http.requests().size();
  PlatformUvSource offline = source_for(http);
  offline.offline = true;
  CHECK_THROWS_WITH(fetch_platform_uv(host_uv("0.13.9"), Platform::parse("linux/arm64"), offline, cache.path()),
                    Catch::Contains("--offline"));
  CHECK(http.requests().size() == before);
  // A wheel whose uv is of another machine than its tag says.
  FakeHttp liar;
  const std::string wrong = make_wheel("0.13.9", fake_elf(62, "x86 in an arm wheel"), "0.13.9");
  liar.on("GET", kIndex + "/uv/", resp(200, page({{kArmWheel, sha_hex(wrong)}})));
  liar.on("GET", "https://idx.test/files/" + kArmWheel, resp(200, wrong));
  CHECK_THROWS_WITH(
      fetch_platform_uv(host_uv("0.13.9"), Platform::parse("linux/arm64"), source_for(liar), cache.path()),
      Catch::Contains("not an ELF of aarch64"));
  CHECK(files_under(cache.path()) == 0);
  // No hash on the page: refused, not downloaded.
  FakeHttp nohash;
  nohash.on("GET", kIndex + "/uv/", resp(200, page({{kArmWheel, ""}})));
  CHECK_THROWS_WITH(
      fetch_platform_uv(host_uv("0.13.9"), Platform::parse("linux/arm64"), source_for(nohash), cache.path()),
      Catch::Contains("no #sha256="));
  CHECK_THROWS_WITH(
      fetch_platform_uv(host_uv("0.13.9"), Platform::parse("linux/riscv64"), source_for(http), cache.path()),
      Catch::Contains("--uv linux/riscv64=PATH"));
}

TEST_CASE("fetch_platform_uv: a real uv wheel from the fixtures cache unpacks to an aarch64 ELF",
          "[platform_uv]") {
  const fs::path dir = "/var/cache/dockless/fixtures/uv-wheels";
  fs::path wheel;
  std::error_code ec;
  if (fs::exists(dir, ec))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().find("aarch64") != std::string::npos) wheel = e.path();
  if (wheel.empty()) {
    WARN("no aarch64 uv wheel in " << dir.string() << " (scripts/setup.sh downloads it): skipped");
    return;
  }
  const std::string name = wheel.filename().string();
  const std::string version = name.substr(3, name.find('-', 3) - 3);
  const std::string bytes = read_file(wheel);
  TempDir cache;
  FakeHttp http;
  http.on("GET", kIndex + "/uv/", resp(200, page({{name, sha_hex(bytes)}})));
  http.on("GET", "https://idx.test/files/" + name, resp(200, bytes));
  UvTool uv = fetch_platform_uv(host_uv(version), Platform::parse("linux/arm64"), source_for(http), cache.path());
  const std::string bin = read_file(uv.binary);
  REQUIRE(bin.size() > 1000000);
  CHECK(bin.substr(0, 4) == "\x7f" "ELF");
  CHECK(static_cast<unsigned char>(bin[18]) == 183);
  CHECK(uv.sha == sha256_of(bin).str());
}

TEST_CASE("platform_uv_index_urls: uv's order of indexes", "[platform_uv]") {
  TempDir dir;
  const fs::path py = dir / "pyproject.toml";
  dockless::test::write_text(py, R"([project]
name = "p"
[[tool.uv.index]]
name = "torch"
url = "https://torch.test/simple"
[[tool.uv.index]]
name = "pinned"
url = "https://pinned.test/simple"
explicit = true
[[tool.uv.index]]
name = "corp"
url = "https://corp.test/simple"
default = true
)");
  using V = std::vector<std::string>;
  CHECK(platform_uv_index_urls({}, dir / "none.toml") == V{"https://pypi.org/simple"});
  CHECK(platform_uv_index_urls({}, py) == V{"https://torch.test/simple", "https://corp.test/simple"});
  CHECK(platform_uv_index_urls({"UV_INDEX_URL=https://old.test/simple"}, py) ==
        V{"https://torch.test/simple", "https://old.test/simple"});
  CHECK(platform_uv_index_urls({"UV_INDEX_URL=https://old.test/simple", "UV_DEFAULT_INDEX=https://new.test/simple",
                                "UV_INDEX=extra=https://x.test/simple https://y.test/simple"},
                               dir / "none.toml") ==
        V{"https://x.test/simple", "https://y.test/simple", "https://new.test/simple"});
  dockless::test::write_text(dir / "bad.toml", "[project\n");
  CHECK_THROWS_WITH(platform_uv_index_urls({}, dir / "bad.toml"), Catch::Contains("not valid TOML"));
}
