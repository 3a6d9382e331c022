// Tests for the OCI JSON model (oci/manifest, image_index, image_config,
// descriptor, json_util): realistic documents round-trip without losing a
// field, output is byte-stable, and bad documents give one clear error.
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <utility>
#include <initializer_list>
#include <string>
#include <vector>

#include "oci/descriptor.h"
#include "oci/digest.h"
#include "base/error.h"
#include "oci/image_config.h"
#include "oci/image_index.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace {

using dockless::ContainerConfig;
using dockless::Descriptor;
using dockless::Digest;
using dockless::Error;
using dockless::HistoryEntry;
using dockless::ImageConfig;
using dockless::ImageIndex;
using dockless::Manifest;
using dockless::Platform;

const std::string kHexA = "b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7";
const std::string kHexB = "e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f";
const std::string kHexC = "3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b";
const std::string kHexD = "ec4b8955958665577945c89419d1af06b5f7636b4ac3da7f12184802ad867736";

// A Docker Hub schema2 manifest, formatted as the registry serves it.
const std::string kDockerManifest = R"({
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 7023,
      "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 32654,
         "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f"
      },
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 16724,
         "digest": "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b"
      },
      {
         "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
         "size": 73109,
         "digest": "sha256:ec4b8955958665577945c89419d1af06b5f7636b4ac3da7f12184802ad867736",
         "urls": ["https://mcr.microsoft.com/v2/windows/blobs/sha256:ec4b8955958665577945c89419d1af06b5f7636b4ac3da7f12184802ad867736"]
      }
   ]
})";

// An OCI manifest using every optional field, plus fields dockless does not
// model at the top level and inside descriptors (with nested values, big and
// fractional numbers, escapes as Go's encoder writes them).
const std::string kOciManifest = R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "artifactType": "application/vnd.example.sbom.v1",
  "config": {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
    "data": "e30="
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f",
      "size": 32654,
      "annotations": {"org.opencontainers.image.title": "layer \u003c1\u003e", "com.example.z": "z", "com.example.a": "a"},
      "x-vendor-extension": {"nested": [1, 2.5, true, null, "s"], "big": 18446744073709551615},
      "artifactType": "application/vnd.example.layer"
    },
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
      "digest": "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b",
      "size": 0,
      "urls": ["https://a.example/1", "https://b.example/2"]
    }
  ],
  "subject": {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:ec4b8955958665577945c89419d1af06b5f7636b4ac3da7f12184802ad867736",
    "size": 1234,
    "x-subject-extra": "kept"
  },
  "annotations": {
    "org.opencontainers.image.created": "2024-01-02T03:04:05Z",
    "org.opencontainers.image.source": "https://github.com/NVIDIA-NeMo/RL"
  },
  "x-top-level": {"b": 1, "a": [{"deep": {"deeper": "\u00e9t\u00e9"}}]},
  "a-first-unknown": -42
})";

// A multi-platform index: platform with os.version and os.features (which
// dockless does not model) must survive, as must unknowns in the platform.
const std::string kIndex = R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f",
      "size": 1000,
      "platform": {"architecture": "amd64", "os": "linux"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b",
      "size": 1001,
      "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}
    },
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "digest": "sha256:ec4b8955958665577945c89419d1af06b5f7636b4ac3da7f12184802ad867736",
      "size": 1002,
      "platform": {
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0.17763.5329",
        "os.features": ["win32k"],
        "x-platform-extra": {"k": "v"}
      },
      "annotations": {"org.opencontainers.image.ref.name": "windows"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",
      "size": 840,
      "annotations": {
        "vnd.docker.reference.digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f",
        "vnd.docker.reference.type": "attestation-manifest"
      },
      "platform": {"architecture": "unknown", "os": "unknown"}
    }
  ],
  "annotations": {"org.opencontainers.image.version": "1.2.3"},
  "x-index-extra": [1, 2, 3]
})";

// A full image config: every modelled field, and unknown fields at the top
// level, inside "config" and inside history entries. No nulls or empty
// containers, so the whole document must come back semantically unchanged.
const std::string kConfig = R"({
  "created": "2024-05-06T07:08:09.123456789Z",
  "author": "NeMo RL <nemo@example.com>",
  "architecture": "arm64",
  "variant": "v8",
  "os": "linux",
  "os.version": "6.1",
  "os.features": ["feature-x"],
  "config": {
    "User": "1000:1000",
    "ExposedPorts": {"8080/tcp": {}, "443/tcp": {}, "53/udp": {}},
    "Env": [
      "PATH=/opt/nemo_rl_venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "UV_PROJECT_ENVIRONMENT=/opt/nemo_rl_venv",
      "EMPTY=",
      "WITH_EQUALS=a=b=c"
    ],
    "Entrypoint": ["/bin/sh", "-c"],
    "Cmd": ["python", "-m", "nemo_rl", "--config", "a b"],
    "Volumes": {"/data": {}, "/cache": {}},
    "WorkingDir": "/opt/nemo-rl",
    "Labels": {"org.opencontainers.image.title": "nemo-rl", "com.example.empty": "", "a.b": "c"},
    "StopSignal": "SIGTERM",
    "Healthcheck": {"Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"], "Interval": 30000000000, "Retries": 3},
    "ArgsEscaped": true,
    "Shell": ["/bin/bash", "-o", "pipefail", "-c"],
    "OnBuild": ["RUN echo hi"]
  },
  "rootfs": {
    "type": "layers",
    "diff_ids": [
      "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f",
      "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b"
    ]
  },
  "history": [
    {"created": "2024-05-06T07:08:09Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in /", "author": "debian", "comment": "base"},
    {"created": "2024-05-06T07:08:10Z", "created_by": "ENV UV_PROJECT_ENVIRONMENT=/opt/nemo_rl_venv", "empty_layer": true, "x-history-extra": {"n": 1}},
    {"created_by": "dockless: main venv", "comment": "buildkit.dockerfile.v0", "x-other": 0.25}
  ],
  "container": "3b9e7f1d2c4a",
  "docker_version": "24.0.7",
  "container_config": {"Hostname": "", "Cmd": null, "Image": "sha256:abc"},
  "moby.buildkit.buildinfo.v1": "eyJmcm9udGVuZCI6ImRvY2tlcmZpbGUudjAifQ=="
})";

rapidjson::Document doc_of(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  INFO("JSON text: " << text);
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

// The compact text of the value at JSON pointer `ptr`, or "<absent>".
std::string at(const std::string& text, const char* ptr) {
  rapidjson::Document d = doc_of(text);
  const rapidjson::Value* v = rapidjson::Pointer(ptr).Get(d);
  return v == nullptr ? "<absent>" : dockless::json::to_text(*v);
}

// Semantic equality of two JSON texts: same members with the same values,
// member order ignored (RapidJSON's operator== on values).
bool same_json(const std::string& a, const std::string& b) {
  rapidjson::Document da = doc_of(a);
  rapidjson::Document db = doc_of(b);
  return da == db;
}

// `f` must throw dockless::Error whose message contains every needle.
template <typename F>
void require_error(F&& f, std::initializer_list<std::string> needles) {
  try {
    f();
    FAIL("no exception was thrown");
  } catch (const Error& e) {
    INFO("message: " << e.what());
    for (const auto& n : needles) CHECK_THAT(e.what(), Catch::Matchers::Contains(n));
  }
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  REQUIRE(pos != std::string::npos);
  s.replace(pos, from.size(), to);
  return s;
}

Digest dg(const std::string& hex) { return Digest::parse("sha256:" + hex); }

// A manifest built field by field. Maps are filled in the order given, so
// two calls with different orders must still produce the same bytes.
Manifest built_manifest(bool reverse) {
  Manifest m;
  m.media_type = std::string(dockless::media_type::kOciManifest);
  m.config.media_type = std::string(dockless::media_type::kOciConfig);
  m.config.digest = dg(kHexA);
  m.config.size = 1469;
  std::vector<std::pair<std::string, std::string>> ann = {
      {"org.opencontainers.image.created", "1980-01-01T00:00:00Z"},
      {"org.opencontainers.image.base.name", "docker.io/library/python:3.12"},
      {"com.example.x", "1"}};
  std::vector<std::pair<std::string, std::string>> unk = {{"z-ext", "[1,2]"}, {"a-ext", "{\"k\":\"v\"}"}};
  if (reverse) {
    std::reverse(ann.begin(), ann.end());
    std::reverse(unk.begin(), unk.end());
  }
  for (const auto& [k, v] : ann) m.annotations[k] = v;
  for (const auto& [k, v] : unk) m.unknown[k] = v;
  for (const auto& hex : {kHexB, kHexC}) {
    Descriptor l;
    l.media_type = std::string(dockless::media_type::kOciLayerGzip);
    l.digest = dg(hex);
    l.size = 100;
    for (const auto& [k, v] : ann) l.annotations[k] = v;
    m.layers.push_back(l);
  }
  return m;
}

}  // namespace

// ---------------------------------------------------------------------------
// Manifests

TEST_CASE("a Docker schema2 manifest parses into the model", "[json_model]") {
  Manifest m = Manifest::parse(kDockerManifest);
  CHECK(m.schema_version == 2);
  CHECK(m.media_type == dockless::media_type::kDockerManifest);
  CHECK(m.config.media_type == dockless::media_type::kDockerConfig);
  CHECK(m.config.digest == dg(kHexA));
  CHECK(m.config.size == 7023);
  REQUIRE(m.layers.size() == 3);
  CHECK(m.layers[0].digest == dg(kHexB));
  CHECK(m.layers[0].size == 32654);
  CHECK(m.layers[1].digest == dg(kHexC));
  CHECK(m.layers[2].media_type == dockless::media_type::kDockerLayerForeignGzip);
  REQUIRE(m.layers[2].urls.size() == 1);
  CHECK(m.layers[2].urls[0].find("mcr.microsoft.com") != std::string::npos);
  CHECK_FALSE(m.subject.has_value());
  CHECK(m.annotations.empty());
  CHECK(m.unknown.empty());
  CHECK(m.config.unknown.empty());
}

TEST_CASE("a Docker schema2 manifest round-trips without losing anything", "[json_model]") {
  Manifest m = Manifest::parse(kDockerManifest);
  const std::string out = m.to_json();
  CHECK(same_json(out, kDockerManifest));
  // Compact output, no whitespace between tokens.
  CHECK(out.find('\n') == std::string::npos);
  CHECK(out.find(": ") == std::string::npos);
  // Byte-stable: re-parsing dockless's own output gives the same bytes.
  CHECK(Manifest::parse(out).to_json() == out);
}

TEST_CASE("an OCI manifest keeps annotations, subject, artifactType and unknown fields",
          "[json_model]") {
  Manifest m = Manifest::parse(kOciManifest);
  CHECK(m.media_type == dockless::media_type::kOciManifest);
  CHECK(m.artifact_type == "application/vnd.example.sbom.v1");
  REQUIRE(m.subject.has_value());
  CHECK(m.subject->digest == dg(kHexD));
  CHECK(m.subject->size == 1234);
  CHECK(m.annotations.at("org.opencontainers.image.source") == "https://github.com/NVIDIA-NeMo/RL");
  REQUIRE(m.layers.size() == 2);
  CHECK(m.layers[0].annotations.at("org.opencontainers.image.title") == "layer <1>");
  CHECK(m.layers[0].artifact_type == "application/vnd.example.layer");
  CHECK(m.layers[1].size == 0);
  CHECK(m.layers[1].urls == std::vector<std::string>{"https://a.example/1", "https://b.example/2"});
  CHECK(m.unknown.count("x-top-level") == 1);
  CHECK(m.unknown.count("a-first-unknown") == 1);
  CHECK(m.config.unknown.count("data") == 1);
  CHECK(m.layers[0].unknown.count("x-vendor-extension") == 1);
  CHECK(m.subject->unknown.count("x-subject-extra") == 1);

  const std::string out = m.to_json();
  // Every field, known or not, comes back with its value.
  CHECK(same_json(out, kOciManifest));
  CHECK(at(out, "/config/data") == "\"e30=\"");
  CHECK(at(out, "/layers/0/x-vendor-extension") ==
        R"({"nested":[1,2.5,true,null,"s"],"big":18446744073709551615})");
  CHECK(at(out, "/subject/x-subject-extra") == "\"kept\"");
  CHECK(at(out, "/x-top-level/a/0/deep/deeper") == "\"\xc3\xa9t\xc3\xa9\"");
  CHECK(at(out, "/a-first-unknown") == "-42");
  CHECK(at(out, "/artifactType") == "\"application/vnd.example.sbom.v1\"");
  CHECK(Manifest::parse(out).to_json() == out);
}

TEST_CASE("a manifest built twice, in any insertion order, gives the same bytes",
          "[json_model]") {
  const std::string a = built_manifest(false).to_json();
  const std::string b = built_manifest(true).to_json();
  CHECK(a == b);
  CHECK(Manifest::parse(a).to_json() == a);
  // The exact bytes are part of every image digest dockless produces: a
  // change here silently changes every manifest digest (and cache key).
  const std::string ann =
      R"({"com.example.x":"1","org.opencontainers.image.base.name":"docker.io/library/python:3.12",)"
      R"("org.opencontainers.image.created":"1980-01-01T00:00:00Z"})";
  const std::string expected =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:)" +
      kHexA + R"(","size":1469},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",)"
      R"("digest":"sha256:)" + kHexB + R"(","size":100,"annotations":)" + ann +
      R"(},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:)" + kHexC +
      R"(","size":100,"annotations":)" + ann + R"(}],"annotations":)" + ann +
      R"(,"a-ext":{"k":"v"},"z-ext":[1,2]})";
  CHECK(a == expected);
}

TEST_CASE("a manifest without layers writes an empty layers array", "[json_model]") {
  Manifest m = Manifest::parse(R"({"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:)" +
                               kHexA + R"(","size":1}})");
  CHECK(m.layers.empty());
  CHECK(m.media_type.empty());
  const std::string out = m.to_json();
  CHECK(at(out, "/layers") == "[]");
  CHECK(at(out, "/mediaType") == "<absent>");
}

// ---------------------------------------------------------------------------
// Image index

TEST_CASE("an index keeps platforms, os.version and os.features", "[json_model]") {
  ImageIndex idx = ImageIndex::parse(kIndex);
  CHECK(idx.media_type == dockless::media_type::kOciIndex);
  REQUIRE(idx.manifests.size() == 4);
  REQUIRE(idx.manifests[0].platform.has_value());
  CHECK(idx.manifests[0].platform->os == "linux");
  CHECK(idx.manifests[0].platform->architecture == "amd64");
  CHECK(idx.manifests[0].platform->variant.empty());
  CHECK(idx.manifests[1].platform->variant == "v8");
  CHECK(idx.manifests[2].platform->os == "windows");
  CHECK(idx.manifests[2].platform_unknown.count("os.version") == 1);
  CHECK(idx.manifests[2].platform_unknown.count("os.features") == 1);
  CHECK(idx.manifests[2].ref_name() == "windows");
  CHECK(idx.manifests[0].ref_name().empty());
  CHECK(idx.manifests[3].annotations.at("vnd.docker.reference.type") == "attestation-manifest");
  CHECK(idx.annotations.at("org.opencontainers.image.version") == "1.2.3");

  const std::string out = idx.to_json();
  CHECK(same_json(out, kIndex));
  CHECK(at(out, "/manifests/2/platform/os.version") == "\"10.0.17763.5329\"");
  CHECK(at(out, "/manifests/2/platform/os.features") == "[\"win32k\"]");
  CHECK(at(out, "/manifests/2/platform/x-platform-extra") == R"({"k":"v"})");
  CHECK(at(out, "/manifests/1/platform/variant") == "\"v8\"");
  CHECK(at(out, "/manifests/0/platform/variant") == "<absent>");
  CHECK(at(out, "/x-index-extra") == "[1,2,3]");
  // Entry order is meaningful (first match wins): it is kept.
  CHECK(at(out, "/manifests/3/size") == "840");
  CHECK(ImageIndex::parse(out).to_json() == out);
}

TEST_CASE("an empty index writes an empty manifests array", "[json_model]") {
  ImageIndex idx;
  idx.media_type = std::string(dockless::media_type::kOciIndex);
  const std::string out = idx.to_json();
  CHECK(out == R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})");
  CHECK(ImageIndex::parse(out).manifests.empty());
}

// ---------------------------------------------------------------------------
// Image config

TEST_CASE("a full image config parses every field", "[json_model]") {
  ImageConfig c = ImageConfig::parse(kConfig);
  CHECK(c.created == "2024-05-06T07:08:09.123456789Z");
  CHECK(c.author == "NeMo RL <nemo@example.com>");
  CHECK(c.architecture == "arm64");
  CHECK(c.variant == "v8");
  CHECK(c.os == "linux");
  CHECK(c.os_version == "6.1");
  const ContainerConfig& cc = c.config;
  CHECK(cc.user == "1000:1000");
  REQUIRE(cc.exposed_ports.has_value());
  CHECK(*cc.exposed_ports == std::vector<std::string>{"443/tcp", "53/udp", "8080/tcp"});
  REQUIRE(cc.env.size() == 4);
  CHECK(cc.env[1] == "UV_PROJECT_ENVIRONMENT=/opt/nemo_rl_venv");
  CHECK(cc.get_env("WITH_EQUALS") == std::optional<std::string>("a=b=c"));
  CHECK(cc.get_env("EMPTY") == std::optional<std::string>(""));
  CHECK_FALSE(cc.get_env("MISSING").has_value());
  CHECK(cc.entrypoint == std::optional<std::vector<std::string>>({"/bin/sh", "-c"}));
  CHECK(cc.cmd == std::optional<std::vector<std::string>>({"python", "-m", "nemo_rl", "--config", "a b"}));
  CHECK(cc.volumes == std::optional<std::vector<std::string>>({"/cache", "/data"}));
  CHECK(cc.working_dir == "/opt/nemo-rl");
  CHECK(cc.labels.size() == 3);
  CHECK(cc.labels.at("com.example.empty").empty());
  CHECK(cc.stop_signal == "SIGTERM");
  CHECK(cc.unknown.count("Healthcheck") == 1);
  CHECK(cc.unknown.count("ArgsEscaped") == 1);
  CHECK(cc.unknown.count("Shell") == 1);
  CHECK(cc.unknown.count("OnBuild") == 1);
  CHECK(c.diff_ids == std::vector<Digest>{dg(kHexB), dg(kHexC)});
  REQUIRE(c.history.size() == 3);
  CHECK(c.history[0].author == "debian");
  CHECK(c.history[0].comment == "base");
  CHECK_FALSE(c.history[0].empty_layer);
  CHECK(c.history[1].empty_layer);
  CHECK(c.history[1].unknown.count("x-history-extra") == 1);
  CHECK(c.history[2].created.empty());
  CHECK(c.history[2].created_by == "dockless: main venv");
  for (const char* k : {"container", "docker_version", "container_config", "os.features",
                        "moby.buildkit.buildinfo.v1"})
    CHECK(c.unknown.count(k) == 1);
}

TEST_CASE("a full image config round-trips every known and unknown field", "[json_model]") {
  ImageConfig c = ImageConfig::parse(kConfig);
  const std::string out = c.to_json();
  CHECK(same_json(out, kConfig));
  CHECK(at(out, "/config/Healthcheck") ==
        R"({"Test":["CMD-SHELL","curl -f http://localhost/ || exit 1"],"Interval":30000000000,"Retries":3})");
  CHECK(at(out, "/config/ArgsEscaped") == "true");
  CHECK(at(out, "/config/Env/3") == "\"WITH_EQUALS=a=b=c\"");
  CHECK(at(out, "/config/ExposedPorts/53~1udp") == "{}");
  CHECK(at(out, "/history/1/x-history-extra") == R"({"n":1})");
  CHECK(at(out, "/history/1/empty_layer") == "true");
  CHECK(at(out, "/history/0/empty_layer") == "<absent>");
  CHECK(at(out, "/history/2/x-other") == "0.25");
  CHECK(at(out, "/container_config") == R"({"Hostname":"","Cmd":null,"Image":"sha256:abc"})");
  CHECK(at(out, "/os.version") == "\"6.1\"");
  CHECK(at(out, "/os.features") == "[\"feature-x\"]");
  CHECK(ImageConfig::parse(out).to_json() == out);
}

TEST_CASE("a Docker config with null fields parses and stays stable", "[json_model]") {
  // What `docker inspect`-era configs look like: nulls everywhere.
  const std::string text =
      R"({"architecture":"amd64","os":"linux","config":{"Env":null,"Entrypoint":null,"Cmd":["bash"],)"
      R"("Labels":null,"Volumes":null,"ExposedPorts":null,"OnBuild":null,"User":""},)"
      R"("rootfs":{"type":"layers","diff_ids":["sha256:)" + kHexA + R"("]},"history":null})";
  ImageConfig c = ImageConfig::parse(text);
  CHECK(c.config.env.empty());
  CHECK_FALSE(c.config.entrypoint.has_value());
  CHECK(c.config.cmd == std::optional<std::vector<std::string>>({"bash"}));
  CHECK(c.config.labels.empty());
  CHECK_FALSE(c.config.volumes.has_value());
  CHECK_FALSE(c.config.exposed_ports.has_value());
  CHECK(c.history.empty());
  CHECK(c.diff_ids.size() == 1);
  const std::string out = c.to_json();
  CHECK(at(out, "/config/OnBuild") == "null");
  CHECK(at(out, "/config/Cmd") == "[\"bash\"]");
  CHECK(at(out, "/rootfs/type") == "\"layers\"");
  CHECK(ImageConfig::parse(out).to_json() == out);
}

TEST_CASE("an empty Entrypoint is kept distinct from an absent one", "[json_model]") {
  // Entrypoint [] resets a base image's entrypoint; dropping it would make
  // the runtime use the base's entrypoint again.
  ImageConfig c;
  c.architecture = "amd64";
  c.os = "linux";
  c.config.entrypoint = std::vector<std::string>{};
  c.config.cmd = std::vector<std::string>{"python"};
  const std::string out = c.to_json();
  CHECK(at(out, "/config/Entrypoint") == "[]");
  ImageConfig back = ImageConfig::parse(out);
  REQUIRE(back.config.entrypoint.has_value());
  CHECK(back.config.entrypoint->empty());
}

TEST_CASE("an image config built twice gives the same bytes", "[json_model]") {
  auto build = [](bool reverse) {
    ImageConfig c;
    c.created = dockless::format_rfc3339(315532800);
    c.architecture = "amd64";
    c.os = "linux";
    std::vector<std::pair<std::string, std::string>> labels = {{"b", "2"}, {"a", "1"}};
    if (reverse) std::reverse(labels.begin(), labels.end());
    c.config.env = {"PATH=/usr/bin", "A=1"};
    for (const auto& [k, v] : labels) c.config.labels[k] = v;
    c.config.exposed_ports = std::vector<std::string>{"22/tcp", "8080/tcp"};
    c.diff_ids = {dg(kHexA), dg(kHexB)};
    HistoryEntry h;
    h.created = c.created;
    h.created_by = "dockless";
    c.history = {h, h};
    return c.to_json();
  };
  const std::string a = build(false);
  CHECK(a == build(false));
  // Labels are a map: insertion order must not matter.
  CHECK(a == build(true));
  CHECK(ImageConfig::parse(a).to_json() == a);
  // Env order is meaningful and kept.
  CHECK(at(a, "/config/Env") == R"(["PATH=/usr/bin","A=1"])");
  CHECK(at(a, "/created") == "\"1980-01-01T00:00:00Z\"");
}

TEST_CASE("ExposedPorts and Volumes set in code are written byte-stable", "[json_model]") {
  // The build sets these from dockless.toml in the user's order. Parsing
  // sorts (and de-duplicates) them, so unless to_json does the same, the
  // config digest changes when a config is read back and re-written, and
  // two specs listing the same ports in another order get different images.
  auto build = [](std::vector<std::string> ports, std::vector<std::string> volumes) {
    ImageConfig c;
    c.architecture = "amd64";
    c.os = "linux";
    c.config.exposed_ports = std::move(ports);
    c.config.volumes = std::move(volumes);
    return c.to_json();
  };
  const std::string a = build({"8080/tcp", "22/tcp"}, {"/data", "/cache"});
  CHECK(ImageConfig::parse(a).to_json() == a);
  CHECK(a == build({"22/tcp", "8080/tcp"}, {"/cache", "/data"}));
  // A port listed twice must not produce a duplicate JSON member.
  const std::string dup = build({"80/tcp", "80/tcp"}, {"/data"});
  CHECK(at(dup, "/config/ExposedPorts") == R"({"80/tcp":{}})");
}

TEST_CASE("ExposedPorts written in a different order still give the same bytes",
          "[json_model]") {
  // Two configs that mean the same thing, as parsed from documents that list
  // the ports in different orders, must serialise identically.
  auto text = [](const char* ports) {
    return std::string(R"({"architecture":"amd64","os":"linux","config":{"ExposedPorts":)") + ports +
           R"(},"rootfs":{"type":"layers","diff_ids":[]}})";
  };
  CHECK(ImageConfig::parse(text(R"({"80/tcp":{},"443/tcp":{}})")).to_json() ==
        ImageConfig::parse(text(R"({"443/tcp":{},"80/tcp":{}})")).to_json());
}

// ---------------------------------------------------------------------------
// Errors

TEST_CASE("invalid JSON throws naming the document and the offset", "[json_model]") {
  require_error([] { Manifest::parse("{\"schemaVersion\": 2,"); }, {"invalid JSON", "manifest", "offset"});
  require_error([] { ImageIndex::parse("[1,2"); }, {"invalid JSON", "index"});
  require_error([] { ImageConfig::parse(""); }, {"invalid JSON", "config"});
  require_error([] { ImageConfig::parse("{} {}"); }, {"invalid JSON"});
  require_error([] { Manifest::parse("not json"); }, {"invalid JSON"});
  require_error([] { Manifest::parse("[]"); }, {"manifest", "object"});
  require_error([] { ImageConfig::parse("\"text\""); }, {"config", "object"});
}

TEST_CASE("a manifest missing a required field names the field", "[json_model]") {
  require_error([] { Manifest::parse(R"({"schemaVersion":2,"layers":[]})"); }, {"\"config\""});
  require_error([] { Manifest::parse(R"({"config":{},"layers":[]})"); }, {"schemaVersion"});
  require_error([] { Manifest::parse(replace(kDockerManifest, "\"schemaVersion\": 2", "\"schemaVersion\": 1")); },
                {"schemaVersion"});
  require_error(
      [] { Manifest::parse(replace(kDockerManifest, "\"size\": 7023,", "")); },
      {"\"size\"", "config"});
  require_error(
      [] {
        Manifest::parse(replace(kDockerManifest,
                                "\"mediaType\": \"application/vnd.docker.container.image.v1+json\",", ""));
      },
      {"\"mediaType\"", "config"});
  require_error(
      [] {
        Manifest::parse(replace(
            kDockerManifest,
            "\"digest\": \"sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b\"",
            "\"x\": 1"));
      },
      {"\"digest\"", "layer 2"});
  require_error([] { ImageIndex::parse(replace(kIndex, "\"os\": \"windows\",", "")); },
                {"\"os\"", "entry 3"});
}

TEST_CASE("an image config missing architecture, os or rootfs names the field",
          "[json_model]") {
  require_error([] { ImageConfig::parse(replace(kConfig, "\"architecture\": \"arm64\",", "")); },
                {"\"architecture\""});
  require_error([] { ImageConfig::parse(replace(kConfig, "\"os\": \"linux\",", "")); }, {"\"os\""});
  require_error([] { ImageConfig::parse(R"({"architecture":"amd64","os":"linux","config":{}})"); },
                {"\"rootfs\""});
  require_error(
      [] { ImageConfig::parse(R"({"architecture":"amd64","os":"linux","rootfs":{"diff_ids":[]}})"); },
      {"rootfs", "\"type\""});
  require_error(
      [] {
        ImageConfig::parse(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"other","diff_ids":[]}})");
      },
      {"rootfs", "other"});
  require_error([] { ImageConfig::parse(R"({"architecture":"amd64","os":"linux","rootfs":[]})"); },
                {"rootfs"});
}

TEST_CASE("a bad digest throws naming the descriptor or field it is in", "[json_model]") {
  const std::string short_hex = "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6";
  const std::string good = "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b";
  const std::string upper = "sha256:3C3A4604A545CDC127456D94E421CD355BCA5B528F4A9C1905B15DA2EB4A4C6B";
  // The message shows the bad value ...
  require_error([&] { Manifest::parse(replace(kDockerManifest, good, short_hex)); }, {short_hex});
  require_error([&] { Manifest::parse(replace(kDockerManifest, good, upper)); }, {upper});
  require_error([&] { Manifest::parse(replace(kDockerManifest, good, "md5:abc")); }, {"md5"});
  // ... and where it is: in a 100-layer manifest "invalid digest" alone
  // does not say which entry is broken (Descriptor::from_json is given
  // `what` = "manifest layer N" for exactly this).
  require_error([&] { Manifest::parse(replace(kDockerManifest, good, short_hex)); },
                {"digest", "layer 2"});
  require_error([&] { ImageIndex::parse(replace(kIndex, good, short_hex)); }, {"digest", "entry 2"});
  require_error([&] { ImageConfig::parse(replace(kConfig, good, short_hex)); }, {"diff_ids"});
}

TEST_CASE("a negative or non-integer size is refused", "[json_model]") {
  require_error([] { Manifest::parse(replace(kDockerManifest, "\"size\": 16724", "\"size\": -1")); },
                {"size", "layer 2"});
  require_error([] { Manifest::parse(replace(kDockerManifest, "\"size\": 16724", "\"size\": \"16724\"")); },
                {"\"size\"", "integer"});
  require_error([] { Manifest::parse(replace(kDockerManifest, "\"size\": 16724", "\"size\": 1.5")); },
                {"\"size\""});
  require_error([] { Manifest::parse(replace(kDockerManifest, "\"size\": 7023", "\"size\": -7023")); },
                {"size", "config"});
}

TEST_CASE("fields of the wrong JSON type are refused, naming the field", "[json_model]") {
  require_error([] { Manifest::parse(replace(kDockerManifest, "\"schemaVersion\": 2", "\"schemaVersion\": \"2\"")); },
                {"schemaVersion"});
  require_error([] { Manifest::parse(R"({"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:)" + kHexA +
                                     R"(","size":1},"layers":{}})"); },
                {"\"layers\""});
  require_error([] { Manifest::parse(R"({"schemaVersion":2,"config":"sha256:x","layers":[]})"); },
                {"config"});
  require_error([] { Manifest::parse(replace(kOciManifest, "\"com.example.z\": \"z\"", "\"com.example.z\": 1")); },
                {"annotations"});
  require_error([] { Manifest::parse(replace(kDockerManifest, "\"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\"",
                                             "\"mediaType\": 7")); },
                {"mediaType"});
  require_error([] { Manifest::parse(replace(kDockerManifest, "\"urls\": [\"", "\"urls\": [1, \"")); },
                {"urls"});
  require_error([] { ImageIndex::parse(R"({"schemaVersion":2,"manifests":"none"})"); }, {"\"manifests\""});
  require_error([] { ImageIndex::parse(replace(kIndex, "\"platform\": {\"architecture\": \"amd64\", \"os\": \"linux\"}",
                                               "\"platform\": \"linux/amd64\"")); },
                {"platform"});
  require_error([] { ImageConfig::parse(replace(kConfig, "\"architecture\": \"arm64\"", "\"architecture\": 64")); },
                {"\"architecture\"", "string"});
  require_error([] { ImageConfig::parse(replace(kConfig, "\"User\": \"1000:1000\"", "\"User\": 1000")); },
                {"\"User\""});
  require_error([] { ImageConfig::parse(replace(kConfig, "\"Entrypoint\": [\"/bin/sh\", \"-c\"]",
                                                "\"Entrypoint\": \"/bin/sh -c\"")); },
                {"\"Entrypoint\""});
  require_error([] { ImageConfig::parse(replace(kConfig, "\"WITH_EQUALS=a=b=c\"", "42")); }, {"\"Env\""});
  require_error([] { ImageConfig::parse(replace(kConfig, "\"a.b\": \"c\"", "\"a.b\": true")); }, {"\"Labels\""});
  require_error([] { ImageConfig::parse(replace(kConfig, "\"ExposedPorts\": {\"8080/tcp\": {}, \"443/tcp\": {}, \"53/udp\": {}}",
                                                "\"ExposedPorts\": [\"8080/tcp\"]")); },
                {"\"ExposedPorts\""});
}

TEST_CASE("history entries and container config of the wrong type are refused", "[json_model]") {
  require_error([] { ImageConfig::parse(replace(kConfig, "\"empty_layer\": true", "\"empty_layer\": \"yes\"")); },
                {"\"empty_layer\"", "history entry 2"});
  require_error([] { ImageConfig::parse(replace(kConfig, "\"author\": \"debian\"", "\"author\": [\"debian\"]")); },
                {"\"author\"", "history entry 1"});
  require_error([] { ImageConfig::parse(R"({"architecture":"amd64","os":"linux","history":{},"rootfs":{"type":"layers"}})"); },
                {"\"history\""});
  require_error([] { ImageConfig::parse(R"({"architecture":"amd64","os":"linux","config":[],"rootfs":{"type":"layers"}})"); },
                {"config"});
  require_error([] { ImageConfig::parse(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":"sha256:x"}})"); },
                {"\"diff_ids\""});
}

TEST_CASE("a deeply nested document is an error, not a crash", "[json_model]") {
  // A hostile registry can serve any bytes as a manifest. RapidJSON's default
  // parser (and any code walking the DOM) recurses once per nesting level;
  // 4 MiB of '[' (the size limit of common registries) must give an Error,
  // never a stack overflow. Run in a child process so that a crash (which
  // this once was: SIGSEGV) fails this case instead of the whole binary.
  std::string text = R"({"schemaVersion":2,"x":)" + std::string(4 << 20, '[');
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Catch2's own handlers would print a second report from the child.
    for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE}) ::signal(sig, SIG_DFL);
    int code = 3;
    try {
      Manifest::parse(text);
      code = 2;  // accepted: wrong too
    } catch (const Error&) {
      code = 0;
    } catch (...) {
      code = 4;
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  INFO("child status " << status << (WIFSIGNALED(status) ? " (killed by a signal)" : ""));
  CHECK(WIFEXITED(status));
  if (WIFEXITED(status)) CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("zeros written with an exponent read as zero, and other numbers stay exact",
          "[json_model]") {
  // RapidJSON's full-precision reader turns 0e-314 into 1.5e82; json::parse
  // rewrites such zeros. A denormal in the same document must still be read
  // with full precision, so that writing it and reading it back changes
  // nothing (found by fuzz_image_json).
  const std::string text =
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},)"
      R"("x":[5e-314,-0.0E-30,0e-314,0.0000,-0e+400,1e-400,5e-324,2.4444444444444445e30,0.0]})";
  ImageConfig c = ImageConfig::parse(text);
  std::string out = c.to_json();
  // ...445e30 and ...446e30 are one double; RapidJSON writes the latter.
  CHECK(out.find(R"("x":[5e-314,-0.0,0.0,0.0,-0.0,0.0,5e-324,2.4444444444444446e30,0.0])") !=
        std::string::npos);
  CHECK(ImageConfig::parse(out).to_json() == out);
  rapidjson::Document doc = dockless::json::parse(R"([0e-314, 5e-314])", "test");
  CHECK(doc[0].GetDouble() == 0.0);
  CHECK(doc[1].GetDouble() == 5e-314);
  // Below 1e-324 with many digits: RapidJSON indexed its table of powers of
  // ten out of bounds (found by fuzz_image_json under UBSan). Zero as a
  // double; the smallest denormal is kept.
  rapidjson::Document tiny = dockless::json::parse(
      R"([1.00000000001110015e-342, -123.45678901234567890e-330, 4.9406564584124654e-324, 0.00001e-319])", "test");
  CHECK(tiny[0].GetDouble() == 0.0);
  CHECK(tiny[1].GetDouble() == 0.0);
  CHECK(std::signbit(tiny[1].GetDouble()));
  CHECK(tiny[2].GetDouble() == 4.9406564584124654e-324);
  CHECK(tiny[3].GetDouble() == 0.0);  // 1e-324, read by RapidJSON
  // A malformed number stays an error (and its zero prefix is not computed:
  // UBSan saw RapidJSON shift a zero significand in "0e-41e").
  for (const char* bad : {"[00e5]", "[0.e5]", "[0e]", "[-0.0e+]", "[0e5e5]", "[0e-41e]", "[0.0e-400.5]"})
    CHECK_THROWS_AS(dockless::json::parse(bad, "test"), Error);
}

TEST_CASE("brackets inside strings and moderate nesting are not mistaken for depth",
          "[json_model]") {
  // Strings full of brackets, escaped quotes and backslashes (a label
  // holding a JSON snippet, a Windows path) are plain strings.
  const std::string tricky =
      std::string(300, '[') + "\\\"" + std::string(300, '{') + "\\\\" + "C:\\\\dir\\\\" + std::string(50, ']');
  const std::string text = R"({"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:)" + kHexA +
                           R"(","size":1},"layers":[],"annotations":{"a":"\\","b":")" + tricky + R"("}})";
  Manifest m = Manifest::parse(text);
  CHECK(m.annotations.at("a") == "\\");
  CHECK(m.annotations.at("b") ==
        std::string(300, '[') + "\"" + std::string(300, '{') + "\\" + "C:\\dir\\" + std::string(50, ']'));
  CHECK(Manifest::parse(m.to_json()).to_json() == m.to_json());

  // Real documents nest a handful of levels; an extension nested 60 deep is
  // still a valid document and must be kept as it is.
  const std::string deep = std::string(60, '[') + "1" + std::string(60, ']');
  Manifest d = Manifest::parse(R"({"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:)" + kHexA +
                               R"(","size":1},"layers":[],"x-deep":)" + deep + "}");
  CHECK(at(d.to_json(), "/x-deep") == deep);
}

// ---------------------------------------------------------------------------
// Small helpers

TEST_CASE("ContainerConfig::set_env replaces in place and keeps the order", "[json_model]") {
  ContainerConfig c;
  c.env = {"PATH=/usr/bin", "PATHEXT=x", "HOME=/root", "LANG=C.UTF-8"};
  c.set_env("HOME", "/home/user");
  CHECK(c.env == std::vector<std::string>{"PATH=/usr/bin", "PATHEXT=x", "HOME=/home/user", "LANG=C.UTF-8"});
  // A prefix of another key's name is a different key.
  c.set_env("PATH", "/opt/venv/bin:/usr/bin");
  CHECK(c.env == std::vector<std::string>{"PATH=/opt/venv/bin:/usr/bin", "PATHEXT=x", "HOME=/home/user",
                                          "LANG=C.UTF-8"});
  c.set_env("PAT", "secret-free");
  CHECK(c.env.size() == 5);
  CHECK(c.env.back() == "PAT=secret-free");
  c.set_env("NEW", "a=b");
  CHECK(c.env.back() == "NEW=a=b");
  CHECK(c.get_env("NEW") == std::optional<std::string>("a=b"));
  CHECK(c.get_env("PATH") == std::optional<std::string>("/opt/venv/bin:/usr/bin"));
  c.set_env("LANG", "");
  CHECK(c.env[3] == "LANG=");
  CHECK(c.env.size() == 6);
}

TEST_CASE("format_rfc3339 writes UTC seconds with a Z", "[json_model]") {
  CHECK(dockless::format_rfc3339(0) == "1970-01-01T00:00:00Z");
  CHECK(dockless::format_rfc3339(315532800) == "1980-01-01T00:00:00Z");
  CHECK(dockless::format_rfc3339(1700000000) == "2023-11-14T22:13:20Z");
  CHECK(dockless::format_rfc3339(951782400) == "2000-02-29T00:00:00Z");
  CHECK(dockless::format_rfc3339(4102444799) == "2099-12-31T23:59:59Z");
}

TEST_CASE("json::pretty keeps member order and values", "[json_model]") {
  const std::string compact = Manifest::parse(kOciManifest).to_json();
  const std::string pretty = dockless::json::pretty(compact);
  CHECK(pretty.find("\n  \"schemaVersion\": 2") != std::string::npos);
  CHECK(same_json(pretty, compact));
  CHECK(Manifest::parse(pretty).to_json() == compact);
  CHECK(pretty.find("\"schemaVersion\"") < pretty.find("\"config\""));
  CHECK(pretty.find("\"config\"") < pretty.find("\"layers\""));
}

TEST_CASE("a manifest with more than dockless::kMaxLayers layers is refused", "[json_model]") {
  auto manifest_with = [](std::size_t n) {
    std::string layers;
    for (std::size_t i = 0; i < n; ++i)
      layers += std::string(i ? "," : "") +
                R"({"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:)" +
                std::string(64, 'a') + R"(","size":1})";
    return R"({"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:)" +
           std::string(64, 'b') + R"(","size":2},"layers":[)" + layers + "]}";
  };
  CHECK(Manifest::parse(manifest_with(dockless::kMaxLayers)).layers.size() == dockless::kMaxLayers);
  CHECK_THROWS_WITH(Manifest::parse(manifest_with(dockless::kMaxLayers + 1)),
                    Catch::Matchers::Contains("10001 layers, more than the 10000"));
}
