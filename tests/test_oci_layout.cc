// Tests for oci/oci_layout: "oci:DIR[:TAG]" references and the image layout
// directory (oci-layout, index.json, tags as ref.name annotations).
#include "oci/oci_layout.h"

#include <rapidjson/document.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "oci/digest.h"
#include "base/error.h"
#include "oci/media_types.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;

namespace {

using dockless::Descriptor;
using dockless::Digest;
using dockless::Error;
using dockless::ImageIndex;
using dockless::LayoutRef;
using dockless::OciLayout;
using dockless::UsageError;
using dockless::sha256_of;
using dockless::test::TempDir;
using dockless::test::write_text;

constexpr const char* kRefName = "org.opencontainers.image.ref.name";

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A manifest descriptor whose blob is stored in the layout.
Descriptor stored_manifest(const OciLayout& layout, const std::string& content) {
  Descriptor d;
  d.media_type = std::string(dockless::media_type::kOciManifest);
  d.digest = layout.blobs().put(content);
  d.size = static_cast<std::int64_t>(content.size());
  return d;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("no dockless::Error was thrown");
  return "";
}

bool valid_json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  return !d.HasParseError() && d.IsObject();
}

}  // namespace

// ---------------------------------------------------------------------------
// LayoutRef

TEST_CASE("LayoutRef::parse reads oci:DIR and oci:DIR:TAG", "[oci_layout]") {
  LayoutRef a = LayoutRef::parse("oci:out/image");
  CHECK(a.dir == fs::path("out/image"));
  CHECK(a.tag.empty());
  CHECK(a.str() == "oci:out/image");

  LayoutRef b = LayoutRef::parse("oci:/abs/dir:v1.2-rc.3");
  CHECK(b.dir == fs::path("/abs/dir"));
  CHECK(b.tag == "v1.2-rc.3");
  CHECK(b.str() == "oci:/abs/dir:v1.2-rc.3");

  // str() parses back to the same reference.
  LayoutRef c = LayoutRef::parse(b.str());
  CHECK(c.dir == b.dir);
  CHECK(c.tag == b.tag);
}

TEST_CASE("LayoutRef::parse refuses a missing prefix, an empty dir or an empty tag",
          "[oci_layout]") {
  auto usage_error = [](const std::string& text) {
    INFO("input: " << text);
    try {
      (void)LayoutRef::parse(text);
      FAIL("accepted");
    } catch (const UsageError& e) {
      CHECK_THAT(e.what(), Catch::Matchers::Contains(text));
    }
  };
  usage_error("dir:tag");
  usage_error("docker://busybox");
  usage_error("OCI:dir");
  usage_error("oci-archive:x.tar");
  usage_error("");
  usage_error("oci:");
  usage_error("oci::tag");
  usage_error("oci:dir:");
  CHECK_THROWS_WITH(LayoutRef::parse("oci:dir:"), Catch::Matchers::Contains("tag"));
  CHECK_THROWS_WITH(LayoutRef::parse("oci:"), Catch::Matchers::Contains("director"));
}

// ---------------------------------------------------------------------------
// Creating and opening

TEST_CASE("open_or_create writes oci-layout and an empty index.json", "[oci_layout]") {
  TempDir tmp;
  const fs::path dir = tmp / "new" / "layout";
  OciLayout layout = OciLayout::open_or_create(dir);
  CHECK(layout.dir() == dir);
  CHECK(file_bytes(dir / "oci-layout") == R"({"imageLayoutVersion":"1.0.0"})");
  const std::string index = file_bytes(dir / "index.json");
  CHECK(valid_json(index));
  ImageIndex idx = ImageIndex::parse(index);
  CHECK(idx.schema_version == 2);
  CHECK(idx.media_type == dockless::media_type::kOciIndex);
  CHECK(idx.manifests.empty());
  CHECK(fs::is_directory(dir / "blobs" / "sha256"));
  CHECK(layout.tags().empty());

  // Opening again keeps what is there.
  Descriptor m = stored_manifest(layout, "{}");
  layout.set_tag(m, "keep");
  OciLayout again = OciLayout::open_or_create(dir);
  CHECK(again.tags() == std::vector<std::string>{"keep"});
  OciLayout opened = OciLayout::open(dir);
  CHECK(opened.resolve("keep").digest == m.digest);
  // Only the layout's own files: no temp files left beside index.json.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"blobs", "index.json", "oci-layout"});
}

TEST_CASE("open() of a directory that is not a layout throws", "[oci_layout]") {
  TempDir tmp;
  std::string msg = error_of([&] { (void)OciLayout::open(tmp / "absent"); });
  CHECK_THAT(msg, Catch::Matchers::Contains((tmp / "absent").string()));
  fs::create_directories(tmp / "empty");
  CHECK_THROWS_AS(OciLayout::open(tmp / "empty"), Error);
  // Only half a layout.
  write_text(tmp / "half" / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  CHECK_THROWS_AS(OciLayout::open(tmp / "half"), Error);
  write_text(tmp / "half2" / "index.json", R"({"schemaVersion":2,"manifests":[]})");
  CHECK_THROWS_AS(OciLayout::open(tmp / "half2"), Error);
  // Opening must not have created anything.
  CHECK_FALSE(fs::exists(tmp / "absent"));
  CHECK_FALSE(fs::exists(tmp / "empty" / "blobs"));
}

TEST_CASE("a layout whose index.json is broken gives an error naming it", "[oci_layout]") {
  TempDir tmp;
  OciLayout layout = OciLayout::open_or_create(tmp.path());
  write_text(tmp / "index.json", "{\"schemaVersion\":2,\"manifests\":[");
  std::string msg = error_of([&] { (void)layout.read_index(); });
  CHECK_THAT(msg, Catch::Matchers::Contains("index.json"));
  CHECK_THROWS_AS(layout.resolve(""), Error);
}

// ---------------------------------------------------------------------------
// Tags

TEST_CASE("set_tag adds tags and replaces an existing tag", "[oci_layout]") {
  TempDir tmp;
  OciLayout layout = OciLayout::open_or_create(tmp.path());
  Descriptor m1 = stored_manifest(layout, R"({"schemaVersion":2,"n":1})");
  Descriptor m2 = stored_manifest(layout, R"({"schemaVersion":2,"n":2})");
  Descriptor m3 = stored_manifest(layout, R"({"schemaVersion":2,"n":3})");

  layout.set_tag(m1, "v1");
  layout.set_tag(m2, "latest");
  ImageIndex idx = layout.read_index();
  REQUIRE(idx.manifests.size() == 2);
  CHECK(layout.resolve("v1").digest == m1.digest);
  CHECK(layout.resolve("latest").digest == m2.digest);
  std::vector<std::string> tags = layout.tags();
  std::sort(tags.begin(), tags.end());
  CHECK(tags == std::vector<std::string>{"latest", "v1"});

  // Re-tag: still two entries, "latest" now names m3, v1 untouched.
  layout.set_tag(m3, "latest");
  idx = layout.read_index();
  REQUIRE(idx.manifests.size() == 2);
  CHECK(layout.resolve("latest").digest == m3.digest);
  CHECK(layout.resolve("v1").digest == m1.digest);
  int latest_entries = 0;
  for (const auto& m : idx.manifests) {
    if (m.ref_name() == "latest") ++latest_entries;
    CHECK(m.media_type == dockless::media_type::kOciManifest);
    CHECK(m.size > 0);
    CHECK(m.annotations.at(kRefName) == m.ref_name());
  }
  CHECK(latest_entries == 1);

  // One manifest under two tags is two entries.
  layout.set_tag(m1, "stable");
  CHECK(layout.read_index().manifests.size() == 3);
  CHECK(layout.resolve("stable").digest == m1.digest);
  // The descriptor's own fields survive into index.json.
  CHECK(layout.resolve("stable").size == m1.size);
  CHECK(valid_json(file_bytes(tmp / "index.json")));
}

TEST_CASE("set_tag keeps entries and fields it does not manage", "[oci_layout]") {
  // index.json written by another tool (skopeo) with an untagged entry,
  // annotations and unknown fields: set_tag must not drop any of them.
  TempDir tmp;
  OciLayout layout = OciLayout::open_or_create(tmp.path());
  Descriptor other = stored_manifest(layout, "other");
  write_text(tmp / "index.json",
             R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"
             R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                 other.digest.str() +
                 R"(","size":5,"annotations":{"com.example.keep":"yes"},"platform":{"architecture":"arm64","os":"linux"}}],)"
                 R"("annotations":{"com.example.index":"1"},"x-extra":true})");
  Descriptor m = stored_manifest(layout, "mine");
  layout.set_tag(m, "mine");
  ImageIndex idx = layout.read_index();
  REQUIRE(idx.manifests.size() == 2);
  CHECK(idx.manifests[0].digest == other.digest);
  CHECK(idx.manifests[0].annotations.at("com.example.keep") == "yes");
  REQUIRE(idx.manifests[0].platform.has_value());
  CHECK(idx.manifests[0].platform->architecture == "arm64");
  CHECK(idx.annotations.at("com.example.index") == "1");
  CHECK(idx.unknown.count("x-extra") == 1);
}

TEST_CASE("resolve with an empty tag picks the only image", "[oci_layout]") {
  TempDir tmp;
  OciLayout layout = OciLayout::open_or_create(tmp.path());
  std::string msg = error_of([&] { (void)layout.resolve(""); });
  CHECK_THAT(msg, Catch::Matchers::Contains(tmp.path().string()));

  Descriptor m1 = stored_manifest(layout, "one");
  layout.set_tag(m1, "alpha-tag");
  CHECK(layout.resolve("").digest == m1.digest);

  Descriptor m2 = stored_manifest(layout, "two");
  layout.set_tag(m2, "beta-tag");
  msg = error_of([&] { (void)layout.resolve(""); });
  // The user must pick one, so the error must say what there is to pick
  // (the header: "Throws Error listing the tags that exist otherwise").
  CHECK_THAT(msg, Catch::Matchers::Contains("alpha-tag"));
  CHECK_THAT(msg, Catch::Matchers::Contains("beta-tag"));
}

TEST_CASE("resolve of an unknown tag lists the existing tags", "[oci_layout]") {
  TempDir tmp;
  OciLayout layout = OciLayout::open_or_create(tmp.path());
  std::string msg = error_of([&] { (void)layout.resolve("nope"); });
  CHECK_THAT(msg, Catch::Matchers::Contains("nope"));

  layout.set_tag(stored_manifest(layout, "a"), "v1");
  layout.set_tag(stored_manifest(layout, "b"), "v2");
  msg = error_of([&] { (void)layout.resolve("v3"); });
  CHECK_THAT(msg, Catch::Matchers::Contains("\"v3\""));
  CHECK_THAT(msg, Catch::Matchers::Contains("v1"));
  CHECK_THAT(msg, Catch::Matchers::Contains("v2"));
  CHECK_THAT(msg, Catch::Matchers::Contains(tmp.path().string()));
  // Tags are matched exactly, not by prefix.
  CHECK_THROWS_AS(layout.resolve("v"), Error);
  CHECK_THROWS_AS(layout.resolve("V1"), Error);
}

TEST_CASE("concurrent set_tag with distinct tags loses none", "[oci_layout]") {
  TempDir tmp;
  OciLayout layout = OciLayout::open_or_create(tmp.path());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 6;
  std::vector<std::vector<Descriptor>> descs(kThreads);
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kPerThread; ++i)
      descs[static_cast<std::size_t>(t)].push_back(
          stored_manifest(layout, "manifest " + std::to_string(t) + "/" + std::to_string(i)));

  std::atomic<bool> go{false};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      try {
        // Each thread through its own OciLayout object, as separate
        // processes would.
        OciLayout mine = OciLayout::open(tmp.path());
        for (int i = 0; i < kPerThread; ++i)
          mine.set_tag(descs[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)],
                       "t" + std::to_string(t) + "-" + std::to_string(i));
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(t)] = e.what();
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  for (const auto& e : errors) CHECK(e.empty());

  const std::string index = file_bytes(tmp / "index.json");
  CHECK(valid_json(index));
  ImageIndex idx = ImageIndex::parse(index);
  CHECK(idx.manifests.size() == kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kPerThread; ++i)
      CHECK(layout.resolve("t" + std::to_string(t) + "-" + std::to_string(i)).digest ==
            descs[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)].digest);
  // No temp files left in the layout directory.
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    const std::string name = e.path().filename().string();
    CHECK((name == "blobs" || name == "index.json" || name == "oci-layout"));
  }
}

TEST_CASE("readers never see a partial index.json while tags are written", "[oci_layout]") {
  TempDir tmp;
  OciLayout layout = OciLayout::open_or_create(tmp.path());
  std::vector<Descriptor> descs;
  for (int i = 0; i < 40; ++i) descs.push_back(stored_manifest(layout, "m" + std::to_string(i)));
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      if (!valid_json(file_bytes(tmp / "index.json"))) ++bad;
      ++reads;
    }
  });
  for (int i = 0; i < 40; ++i) layout.set_tag(descs[static_cast<std::size_t>(i)], "tag" + std::to_string(i % 10));
  done = true;
  reader.join();
  CHECK(bad == 0);
  CHECK(reads > 0);
  CHECK(layout.read_index().manifests.size() == 10);
  CHECK(layout.resolve("tag3").digest == descs[33].digest);
}
