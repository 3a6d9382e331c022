// Tests for src/build/lock_mirror: uv.lock's URLs rewritten for a mirror
// (both layouts: a simple mirror with its files under its own path, and a
// path-preserving proxy), on URL boundaries only, every other byte (hashes
// included) as it was; the warnings; the spec key and the option; uv's
// download failure as one line; and the environment keys, which a mirror
// does not change.
#include "src/build/lock_mirror.h"

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "src/build/build_plan.h"
#include "src/build/build_spec.h"
#include "tests/test_support.h"

using namespace dockless;

namespace {

const std::string kLock = R"(version = 1
revision = 3
requires-python = ">=3.9"

[[package]]
name = "common-a"
version = "1.0.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [
    { name = "common-b" },
]
sdist = { url = "https://files.pythonhosted.org/packages/aa/bb/common_a-1.0.0.tar.gz", hash = "sha256:1111111111111111111111111111111111111111111111111111111111111111", size = 1000 }
wheels = [
    { url = "https://files.pythonhosted.org/packages/cc/dd/common_a-1.0.0-py3-none-any.whl", hash = "sha256:2222222222222222222222222222222222222222222222222222222222222222", size = 2000 },
]

[[package]]
name = "evil"
version = "2.0"
source = { registry = "https://pypi.org/simple-evil" }
wheels = [
    { url = "https://files.pythonhosted.org.evil.example/packages/evil-2.0-py3-none-any.whl", hash = "sha256:3333333333333333333333333333333333333333333333333333333333333333" },
]

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }

[package.metadata]
requires-dist = [{ name = "common-a", specifier = ">=1.0" }]
)";

IndexMirror m(const std::string& from, const std::string& to) { return {from, to, "--index-mirror"}; }

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

/// Each line of `a` and `b` that differs, as "a-line => b-line".
std::vector<std::string> changed_lines(const std::string& a, const std::string& b) {
  std::vector<std::string> out;
  std::istringstream x(a), y(b);
  std::string la, lb;
  while (std::getline(x, la) && std::getline(y, lb))
    if (la != lb) out.push_back(la + " => " + lb);
  return out;
}

}  // namespace

TEST_CASE("a simple mirror with its files under its own path", "[lock_mirror]") {
  MirroredLock r = mirror_lock(kLock, {m("https://files.pythonhosted.org/packages", "http://mirror.local/files")});
  CHECK(r.rewritten == 2);
  CHECK(r.text.find("{ url = \"http://mirror.local/files/aa/bb/common_a-1.0.0.tar.gz\", hash = "
                    "\"sha256:1111111111111111111111111111111111111111111111111111111111111111\", size = 1000 }") !=
        std::string::npos);
  CHECK(r.text.find("\"http://mirror.local/files/cc/dd/common_a-1.0.0-py3-none-any.whl\"") != std::string::npos);
  // Only those two lines changed; the same number of lines, hashes as they were.
  CHECK(changed_lines(kLock, r.text).size() == 2);
  CHECK(count(r.text, "\n") == count(kLock, "\n"));
  for (const char* h : {"sha256:1111", "sha256:2222", "sha256:3333"}) CHECK(count(r.text, h) == 1);
  // The index URL stays: uv's cache of registry wheels is keyed by it.
  CHECK(r.text.find("source = { registry = \"https://pypi.org/simple\" }") != std::string::npos);
  // A prefix of a longer host name is not a boundary.
  CHECK(r.text.find("https://files.pythonhosted.org.evil.example/packages/evil") != std::string::npos);
  // The unmirrored evil wheel is named.
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0].find("1 download URL(s)") != std::string::npos);
  CHECK(r.warnings[0].find("evil.example") != std::string::npos);
}

TEST_CASE("a path-preserving proxy: one mapping per host, longest ORIGINAL first", "[lock_mirror]") {
  MirroredLock r =
      mirror_lock(kLock, {m("https://files.pythonhosted.org", "http://proxy:8081/repository/pypi"),
                          m("https://files.pythonhosted.org.evil.example/packages", "http://other/evil"),
                          m("https://files.pythonhosted.org.evil.example", "http://other")});
  CHECK(r.text.find("\"http://proxy:8081/repository/pypi/packages/cc/dd/common_a-1.0.0-py3-none-any.whl\"") !=
        std::string::npos);
  CHECK(r.text.find("\"http://proxy:8081/repository/pypi/packages/aa/bb/common_a-1.0.0.tar.gz\"") !=
        std::string::npos);
  // The longer ORIGINAL wins over its prefix.
  CHECK(r.text.find("url = \"http://other/evil/evil-2.0-py3-none-any.whl\"") != std::string::npos);
  CHECK(r.rewritten == 3);
  CHECK(changed_lines(kLock, r.text).size() == 3);
  REQUIRE(r.warnings.size() == 1);  // http://other: shadowed by the longer one
  CHECK(r.warnings[0] == "--index-mirror https://files.pythonhosted.org.evil.example: no URL in uv.lock starts with it");
}

TEST_CASE("an index URL as ORIGINAL rewrites nothing and says what to map", "[lock_mirror]") {
  MirroredLock r = mirror_lock(kLock, {m("https://pypi.org/simple", "http://mirror/simple")});
  CHECK(r.text == kLock);
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0].find("--index-mirror https://pypi.org/simple: no URL in uv.lock starts with it (it is an "
                           "index; uv downloads the files from their own URLs, such as "
                           "https://files.pythonhosted.org/packages/") == 0);
  // Also when every file URL is mirrored: the example is a locked one.
  MirroredLock all = mirror_lock(kLock, {m("https://pypi.org/simple", "http://mirror/simple"),
                                         m("https://files.pythonhosted.org", "http://mirror/f"),
                                         m("https://files.pythonhosted.org.evil.example", "http://mirror/e")});
  REQUIRE(all.warnings.size() == 1);
  CHECK(all.warnings[0].find("such as https://files.pythonhosted.org/packages/aa/bb/common_a-1.0.0.tar.gz: map "
                             "their prefix)") != std::string::npos);
}

TEST_CASE("an ORIGINAL that no URL of the lock starts with warns", "[lock_mirror]") {
  MirroredLock r = mirror_lock(kLock, {m("https://files.pythonhosted.org", "http://mirror/files"),
                                       m("https://files.pythonhosted", "http://mirror/files"),
                                       m("https://download.pytorch.org/whl", "http://mirror/torch")});
  std::vector<std::string> unused;
  for (const auto& w : r.warnings)
    if (w.find("no URL in uv.lock starts with it") != std::string::npos) unused.push_back(w);
  REQUIRE(unused.size() == 2);
  CHECK(unused[0] == "--index-mirror https://files.pythonhosted: no URL in uv.lock starts with it");
  CHECK(unused[1] == "--index-mirror https://download.pytorch.org/whl: no URL in uv.lock starts with it");
  // No mirror applies: nothing changes at all.
  MirroredLock none = mirror_lock(kLock, {m("https://example.org", "http://mirror")});
  CHECK(none.text == kLock);
  CHECK(none.rewritten == 0);
}

TEST_CASE("mirror_url replaces at URL boundaries only", "[lock_mirror]") {
  std::vector<IndexMirror> ms = {m("https://host", "http://mirror/h"), m("https://host/simple", "http://mirror/s")};
  CHECK(mirror_url("https://host/a.whl", ms) == "http://mirror/h/a.whl");
  CHECK(mirror_url("https://host", ms) == "http://mirror/h");
  CHECK(mirror_url("https://host/simple", ms) == "http://mirror/s");
  CHECK(mirror_url("https://host/simple/x/", ms) == "http://mirror/s/x/");
  CHECK(mirror_url("https://host/simplex", ms) == "http://mirror/h/simplex");
  CHECK(mirror_url("https://hostile/a.whl", ms) == "https://hostile/a.whl");
  CHECK(mirror_url("https://host.evil/a.whl", ms) == "https://host.evil/a.whl");
  CHECK(mirror_url("https://host:443/a.whl", ms) == "https://host:443/a.whl");
  CHECK(mirror_url("http://host/a.whl", ms) == "http://host/a.whl");
}

TEST_CASE("--index-mirror ORIGINAL=MIRROR is checked and normalized", "[lock_mirror]") {
  IndexMirror a = parse_index_mirror_option("https://pypi.org/simple/=http://127.0.0.1:8080/simple/");
  CHECK(a.original == "https://pypi.org/simple");
  CHECK(a.mirror == "http://127.0.0.1:8080/simple");
  CHECK(parse_index_mirror_option("https://x=file:///srv/wheels").mirror == "file:///srv/wheels");
  for (const char* bad : {"https://x", "=http://y", "https://x=", "ftp://x=http://y", "https://x=mirror",
                          "https://x=http://y?z", "https://x=http:///nohost", "https://x y=http://z"})
    CHECK_THROWS_AS(parse_index_mirror_option(bad), UsageError);
  CHECK_THROWS_WITH(parse_index_mirror_option("https://u:secret@x"), !Catch::Contains("secret"));
}

TEST_CASE("the command line wins over uv.index-mirrors for the same ORIGINAL", "[lock_mirror]") {
  auto all = merge_index_mirrors({{"https://a", "http://spec-a"}, {"https://b", "http://spec-b"}},
                                 {m("https://b", "http://cli-b"), m("https://c", "http://cli-c")});
  REQUIRE(all.size() == 3);
  CHECK(all[0].mirror == "http://spec-a");
  CHECK(all[0].where == "uv.index-mirrors");
  CHECK(all[1].mirror == "http://cli-b");
  CHECK(all[1].where == "--index-mirror");
  CHECK(all[2].mirror == "http://cli-c");
}

TEST_CASE("uv.index-mirrors in the spec", "[lock_mirror]") {
  test::TempDir dir;
  auto write = [&](const std::string& text) {
    std::ofstream(dir.path() / "dockless.toml") << "[image]\nbase = \"x/y:1\"\n[uv]\n" << text;
  };
  write("index-mirrors = { \"https://pypi.org/simple/\" = \"http://m/simple\", \"https://f\" = \"http://m/f\" }\n");
  BuildSpec spec = load_build_spec(dir.path(), {}, {});
  CHECK(spec.uv.index_mirrors == std::map<std::string, std::string>{{"https://f", "http://m/f"},
                                                                    {"https://pypi.org/simple", "http://m/simple"}});
  write("index-mirrors = { \"https://pypi.org\" = \"mirror.local\" }\n");
  CHECK_THROWS_WITH(load_build_spec(dir.path(), {}, {}),
                    Catch::Contains("dockless.toml:4:") && Catch::Contains("[uv] index-mirrors.\"https://pypi.org\": MIRROR") &&
                        Catch::Contains("not an http://"));
  write("index-mirrors = { \"https://pypi.org\" = 1 }\n");
  CHECK_THROWS_WITH(load_build_spec(dir.path(), {}, {}), Catch::Contains("expected a string"));
  write("");
  BuildSpec set = load_build_spec(dir.path(), {}, {"uv.index-mirrors={\"https://a\"=\"http://b\"}"});
  CHECK(set.uv.index_mirrors.at("https://a") == "http://b");
}

TEST_CASE("a mirror changes no environment key", "[lock_mirror]") {
  BuildSpec plain;
  plain.image.base = "x/y:1";
  VenvSpec v;
  v.name = "main";
  v.path = "/opt/venv";
  plain.venvs.push_back(v);
  BuildSpec mirrored = plain;
  mirrored.uv.index_mirrors = {{"https://pypi.org/simple", "http://mirror/simple"}};
  PlanInputs in;
  in.platform = "linux/amd64";
  in.base_digest = "sha256:4ec60b0e47a7e1c9bdf3bcd5e28a0b13dd2ba9ec1d33b02b3de6eb3bbc4b5a4f";
  in.uv_lock = "sha256:0f7c3dfb1b1f5d5c2b07b7a8c5b2e5ec1f1b0a3e9f7c26b3a1e7e54d2b3c4d5e";
  struct NoCache : CacheState {
    bool environment_made(const std::string&) override { return false; }
    std::optional<std::vector<CachedLayer>> find_layers(const std::string&, std::string&,
                                                        const std::function<bool(const CachedLayer&)>&) override {
      return std::nullopt;
    }
  } cache;
  auto a = select_environments(plain, {});
  auto b = select_environments(mirrored, {});
  key_environments(a, plain, in, cache);
  key_environments(b, mirrored, in, cache);
  REQUIRE(a.size() == 1);
  CHECK(!a[0].key.empty());
  CHECK(a[0].key == b[0].key);
  // ...while the lock's content is an input.
  auto c = select_environments(plain, {});
  in.uv_lock = "sha256:1f7c3dfb1b1f5d5c2b07b7a8c5b2e5ec1f1b0a3e9f7c26b3a1e7e54d2b3c4d5e";
  key_environments(c, plain, in, cache);
  CHECK(c[0].key != a[0].key);
}

TEST_CASE("uv's download failure becomes one line with the package and the URL", "[lock_mirror]") {
  UvDownloadFailure missing;
  for (const char* l : {"Using CPython 3.11.2 interpreter at: /usr/bin/python3",
                        "error: Failed to download `common-a==1.0.0`",
                        "  cause: Failed to fetch: http://127.0.0.1:9/files/common_a-1.0.0-py3-none-any.whl",
                        "  cause: HTTP status client error (404 File not found) for url "
                        "(http://127.0.0.1:9/files/common_a-1.0.0-py3-none-any.whl)",
                        "", "hint: `common-a` (v1.0.0) was included because `app` (v0.1.0) depends on `common-a`"})
    missing.feed(l);
  CHECK(missing.line() ==
        "cannot download `common-a==1.0.0` from http://127.0.0.1:9/files/common_a-1.0.0-py3-none-any.whl: "
        "404 File not found");
  UvDownloadFailure refused;
  for (const char* l : {"error: Failed to download `common-a==1.0.0`", "  cause: Request failed after 3 retries",
                        "  Caused by: Failed to fetch: `http://u:pw@127.0.0.1:1/f/a.whl`",
                        "  cause: error sending request for url (http://127.0.0.1:1/f/a.whl)",
                        "  cause: Connection refused (os error 111)"})
    refused.feed(l);
  CHECK(refused.line() == "cannot download `common-a==1.0.0` from http://127.0.0.1:1/f/a.whl: Connection "
                          "refused (os error 111)");
  UvDownloadFailure other;
  other.feed("error: No interpreter found for path `/usr/bin/python9`");
  CHECK(other.line().empty());
}

TEST_CASE("a lock that is not TOML is refused with its line", "[lock_mirror]") {
  CHECK_THROWS_WITH(mirror_lock("version = 1\n[[package]\n", {m("https://a", "http://b")}),
                    Catch::StartsWith("uv.lock:2: not valid TOML"));
}
