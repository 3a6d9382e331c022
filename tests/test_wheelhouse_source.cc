// Tests for src/build/wheelhouse_source (--wheels-from) and the parts of
// lock_mirror it uses: the files uv.lock names, a wheelhouse manifest
// checked against the fixed format, file names from URLs, exact URL routes
// that come before any mirror (hashes untouched), uv's offline download
// failure as one line, and the loopback server (files, 404s, no escape).
#include "src/build/wheelhouse_source.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "src/build/lock_mirror.h"
#include "src/build/wheelhouse_server.h"
#include "tests/test_support.h"

using namespace dockless;

namespace {

const std::string kHashA = "sha256:21516e20b93c4fb291aa6bc31b1e490761ba83aabbc355ae926ea245b41a48f6";
const std::string kHashB = "sha256:c3fb43629bebb27b7aa153cec6ae5741d9b0c071329ae4b85b857464640b36f0";

const std::string kLock = R"(version = 1
revision = 3
requires-python = ">=3.9"

[[package]]
name = "common-a"
version = "1.0.0"
source = { registry = "http://127.0.0.1:9/simple" }
sdist = { url = "http://127.0.0.1:9/files/common_a-1.0.0.tar.gz", hash = "sha256:aaaa", size = 10 }
wheels = [
    { url = "http://127.0.0.1:9/files/common_a-1.0.0-py3-none-any.whl", hash = ")" + kHashA + R"(", size = 1 },
]

[[package]]
name = "torch"
version = "2.0.0+cu118"
source = { registry = "http://127.0.0.1:9/simple" }
wheels = [
    { url = "http://127.0.0.1:9/files/torch-2.0.0%2Bcu118-py3-none-any.whl", hash = ")" + kHashB + R"(" },
]

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }
)";

std::string manifest(const std::string& artifact_type, const std::string& layer_annotations) {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":")" +
         artifact_type +
         R"(","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},)"
         R"("layers":[{"mediaType":"application/vnd.dockless.python.wheel","digest":")" +
         kHashA + R"(","size":1,"annotations":{)" + layer_annotations + "}}]}";
}

/// One raw HTTP exchange with 127.0.0.1:port; the whole answer.
std::string http(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

}  // namespace

TEST_CASE("the loopback server serves DIR/<hex>/<name> and nothing else", "[wheelhouse_source]") {
  test::TempDir tmp;
  const std::string hex = kHashA.substr(7);
  std::filesystem::create_directories(tmp.path() / "wh" / hex);
  std::ofstream(tmp.path() / "wh" / hex / "a-1.0+x-py3-none-any.whl") << "wheel bytes";
  std::ofstream(tmp.path() / "secret") << "secret";
  WheelhouseServer server(tmp.path() / "wh");
  const std::string url = server.base_url();
  REQUIRE(url.rfind("http://127.0.0.1:", 0) == 0);
  int port = std::stoi(url.substr(17));
  std::string ok = http(port, "GET /" + hex + "/a-1.0%2Bx-py3-none-any.whl HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ok.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(ok.find("Content-Length: 11\r\n") != std::string::npos);
  CHECK(ok.substr(ok.size() - 11) == "wheel bytes");
  std::string head = http(port, "HEAD /" + hex + "/a-1.0+x-py3-none-any.whl HTTP/1.1\r\n\r\n");
  CHECK(head.rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(head.find("wheel bytes") == std::string::npos);
  for (const std::string& path : std::vector<std::string>{"/missing/late_add-1.0.0-py3-none-any.whl",
                                                         "/" + hex + "/../../secret",
                                                         "/" + hex + "/%2E%2E/%2E%2E/secret", "/../secret"})
    CHECK(http(port, "GET " + path + " HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 Not in the --wheels-from wheelhouse", 0) == 0);
  CHECK(http(port, "PUT /" + hex + "/x HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0) == 0);
  // uv revalidating what its cache holds: use it.
  CHECK(http(port, "GET /missing/c-1.0-py3-none-any.whl HTTP/1.1\r\nIf-Modified-Since: Sat, 01 Jan 2000 "
                   "00:00:00 GMT\r\n\r\n").rfind("HTTP/1.1 304 Not Modified", 0) == 0);
  CHECK(http(port, "GET /missing/c-1.0-py3-none-any.whl HTTP/1.1\r\nif-none-match: \"x\"\r\n\r\n")
            .rfind("HTTP/1.1 304", 0) == 0);
}

TEST_CASE("locked_urls lists the sha256-hashed wheels and sdists of uv.lock", "[wheelhouse_source]") {
  auto files = locked_urls(kLock);
  REQUIRE(files.size() == 3);
  CHECK(files[0].url == "http://127.0.0.1:9/files/common_a-1.0.0.tar.gz");
  CHECK(files[1].hash == kHashA);
  CHECK(files[2].url == "http://127.0.0.1:9/files/torch-2.0.0%2Bcu118-py3-none-any.whl");
  CHECK(locked_urls("version = 1\n").empty());
  CHECK_THROWS_WITH(locked_urls("[[package]\n", "x/uv.lock"), Catch::Contains("x/uv.lock:1: not valid TOML"));
}

TEST_CASE("a wheelhouse manifest is checked against the fixed format", "[wheelhouse_source]") {
  const std::string title = R"("org.opencontainers.image.title":"common_a-1.0.0-py3-none-any.whl")";
  auto layers = wheelhouse_layers(manifest(kWheelhouseArtifactType, title), "w");
  REQUIRE(layers.size() == 1);
  CHECK(layers[0].digest.str() == kHashA);
  CHECK_THROWS_WITH(wheelhouse_layers(manifest("application/vnd.dockless.cache.v1", title), "--wheels-from r/w"),
                    Catch::Contains("--wheels-from r/w: not a wheelhouse (artifactType"));
  CHECK_THROWS_WITH(wheelhouse_layers(manifest(kWheelhouseArtifactType, ""), "w"),
                    Catch::Contains("has no file name"));
  CHECK_THROWS_WITH(wheelhouse_layers(R"({"schemaVersion":2,"manifests":[]})", "w"),
                    Catch::Contains("w: not a wheelhouse"));
}

TEST_CASE("url_file_name decodes the last segment and refuses what is no file name", "[wheelhouse_source]") {
  CHECK(url_file_name("http://h/files/a-1.0-py3-none-any.whl") == "a-1.0-py3-none-any.whl");
  CHECK(url_file_name("http://h/files/torch-2.0.0%2Bcu118-py3-none-any.whl?x=1#sha256=ab") ==
        "torch-2.0.0+cu118-py3-none-any.whl");
  CHECK(url_file_name("http://h/files/") == "");
  CHECK(url_file_name("http://h/files/..") == "");
  CHECK(url_file_name("http://h/files/a%2Fb.whl") == "");
}

TEST_CASE("exact URL routes come before mirrors; hashes and other URLs stay", "[wheelhouse_source]") {
  const std::string from = "http://127.0.0.1:9/files/common_a-1.0.0-py3-none-any.whl";
  const std::string to = "file:///.dockless/wheelhouse/2151/common_a-1.0.0-py3-none-any.whl";
  std::vector<IndexMirror> mirrors = {{"http://127.0.0.1:9/files", "http://mirror/pkgs", "--index-mirror"}};
  MirroredLock m = mirror_lock(kLock, mirrors, "uv.lock", {{from, to}});
  CHECK(m.rewritten == 3);
  CHECK(m.routed == 1);
  CHECK(m.text.find("{ url = \"" + to + "\", hash = \"" + kHashA + "\", size = 1 }") != std::string::npos);
  CHECK(m.text.find("http://mirror/pkgs/torch-2.0.0%2Bcu118-py3-none-any.whl") != std::string::npos);
  CHECK(m.text.find(from) == std::string::npos);
  // Routes alone: the rest keep their URLs, and no warning says a mirror matched nothing.
  MirroredLock r = mirror_lock(kLock, {}, "uv.lock", {{from, to}});
  CHECK(r.rewritten == 1);
  CHECK(r.warnings.empty());
  CHECK(r.text.find("http://127.0.0.1:9/files/torch-2.0.0%2Bcu118") != std::string::npos);
  CHECK(r.text.size() == kLock.size() + to.size() - from.size());
}

TEST_CASE("uv's offline failure names the package and the URL", "[wheelhouse_source]") {
  UvDownloadFailure f;
  for (const char* l : {"error: Failed to download `late-add==1.0.0`",
                        "  cause: Network connectivity is disabled, but the requested data wasn't found in the "
                        "cache: http://127.0.0.1:9/files/late_add-1.0.0-py3-none-any.whl",
                        "", "hint: `late-add` (v1.0.0) was included because `app` depends on `late-add`"})
    f.feed(l);
  CHECK(f.line() == "cannot download `late-add==1.0.0` from http://127.0.0.1:9/files/late_add-1.0.0-py3-none-any.whl: "
                    "offline, and neither the uv cache nor a --wheels-from wheelhouse has it");
}
