// docker-archive: write (Docker legacy + OCI layout in one tar, byte-stable),
// read back (dockless's, hand-made legacy archives, Docker 25's multi-platform
// index), verification of blob names, selection by RepoTags, and errors.
#include "layers/docker_archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "layers/byte_sink.h"
#include "layers/compression.h"
#include "layers/layer_writer.h"
#include "layers/tar_writer.h"
#include "base/error.h"
#include "base/file_util.h"
#include "oci/image_config.h"
#include "oci/image_index.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using namespace dockless;
using dockless::test::TempDir;
using dockless::test::write_text;

namespace {

// ---------------------------------------------------------------- tar helpers

struct TarEntry {
  std::string name;
  std::string data{};
  char type = 'f';  // 'f' file, 'd' directory, 'l' symlink, 'h' hardlink
  std::string link{};
  std::int64_t mtime = 0;
  std::int64_t uid = 0;
  unsigned mode = 0644;
};

TarEntry file_entry(std::string name, std::string data) { return {std::move(name), std::move(data)}; }

// filter: "none", "gzip" or "zstd".
void write_tar(const fs::path& path, const std::vector<TarEntry>& entries,
               const std::string& filter = "none") {
  archive* a = archive_write_new();
  REQUIRE(archive_write_set_format_pax_restricted(a) == ARCHIVE_OK);
  if (filter == "gzip") REQUIRE(archive_write_add_filter_gzip(a) == ARCHIVE_OK);
  if (filter == "zstd") REQUIRE(archive_write_add_filter_zstd(a) >= ARCHIVE_WARN);
  REQUIRE(archive_write_open_filename(a, path.c_str()) == ARCHIVE_OK);
  for (const TarEntry& t : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.name.c_str());
    archive_entry_set_mtime(e, 1600000000, 0);
    if (t.type == 'd') {
      archive_entry_set_filetype(e, AE_IFDIR);
      archive_entry_set_perm(e, 0755);
    } else if (t.type == 'l') {
      archive_entry_set_filetype(e, AE_IFLNK);
      archive_entry_set_perm(e, 0777);
      archive_entry_set_symlink(e, t.link.c_str());
    } else if (t.type == 'h') {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_perm(e, 0644);
      archive_entry_set_hardlink(e, t.link.c_str());
      archive_entry_set_size(e, 0);
    } else {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_perm(e, 0644);
      archive_entry_set_size(e, static_cast<la_int64_t>(t.data.size()));
    }
    REQUIRE(archive_write_header(a, e) == ARCHIVE_OK);
    if (t.type == 'f' && !t.data.empty())
      REQUIRE(archive_write_data(a, t.data.data(), t.data.size()) ==
              static_cast<la_ssize_t>(t.data.size()));
    archive_entry_free(e);
  }
  REQUIRE(archive_write_close(a) == ARCHIVE_OK);
  archive_write_free(a);
}

std::vector<TarEntry> read_tar(const fs::path& path) {
  std::vector<TarEntry> out;
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  REQUIRE(archive_read_open_filename(a, path.c_str(), 1 << 16) == ARCHIVE_OK);
  archive_entry* e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    TarEntry t{archive_entry_pathname(e)};
    t.mtime = archive_entry_mtime(e);
    t.uid = archive_entry_uid(e);
    t.mode = archive_entry_perm(e);
    if (archive_entry_filetype(e) == AE_IFDIR) {
      t.type = 'd';
    } else if (archive_entry_filetype(e) == AE_IFLNK) {
      t.type = 'l';
      t.link = archive_entry_symlink(e);
    } else {
      char buf[65536];
      la_ssize_t n;
      while ((n = archive_read_data(a, buf, sizeof buf)) > 0) t.data.append(buf, static_cast<std::size_t>(n));
      REQUIRE(n == 0);
    }
    out.push_back(std::move(t));
  }
  archive_read_free(a);
  return out;
}

const TarEntry& entry_named(const std::vector<TarEntry>& entries, const std::string& name) {
  for (const auto& e : entries)
    if (e.name == name) return e;
  FAIL("no entry " << name);
  throw std::logic_error("unreachable");
}

std::vector<std::string> dir_listing(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out.push_back(fs::relative(e.path(), dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------- images

class StringSink : public ByteSink {
 public:
  void write(const void* data, std::size_t size) override {
    bytes.append(static_cast<const char*>(data), size);
  }
  void finish() override {}
  std::string bytes;
};

/// A deterministic layer tar of a small tree, uncompressed.
std::string layer_tar(const fs::path& scratch, const std::string& content) {
  fs::path root = scratch / ("tree-" + sha256_of(content).short_hex());
  write_text(root / "etc/hello", content);
  write_text(root / "usr/bin/tool", "#!/bin/sh\necho " + content + "\n");
  StringSink sink;
  write_directory_tar(root, TarOptions{}, sink);
  return sink.bytes;
}

std::string compress(const std::string& bytes, Compression c) {
  StringSink sink;
  CompressionOptions opt;
  opt.kind = c;
  opt.threads = 1;
  auto comp = make_compressor(opt, sink);
  comp->write(bytes.data(), bytes.size());
  comp->finish();
  return sink.bytes;
}

struct TestImage {
  Descriptor manifest;
  Digest config;
  std::vector<Digest> layers;
};

/// An image of two layers (gzip and zstd) in `store`, made like dockless makes them.
TestImage make_image(const BlobStore& store, const fs::path& scratch, const std::string& seed) {
  TestImage img;
  ImageConfig cfg;
  cfg.created = format_rfc3339(1700000000);
  cfg.architecture = "amd64";
  cfg.os = "linux";
  cfg.config.env = {"PATH=/usr/bin:/bin"};
  cfg.config.cmd = std::vector<std::string>{"/usr/bin/tool"};
  Manifest m;
  m.media_type = std::string(media_type::kOciManifest);
  int n = 0;
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    fs::path root = scratch / (seed + "-layer" + std::to_string(n++));
    write_text(root / "etc/hello", seed + " " + std::to_string(n));
    write_text(root / "opt/app/main.py", "print(" + std::to_string(n) + ")\n");
    CompressionOptions opt;
    opt.kind = c;
    LayerBlob lb = write_layer(
        [&](ByteSink& sink) { write_directory_tar(root, TarOptions{}, sink); }, opt, store);
    cfg.diff_ids.push_back(lb.diff_id);
    HistoryEntry h;
    h.created_by = "layer " + std::to_string(n);
    cfg.history.push_back(h);
    m.layers.push_back(lb.descriptor);
    img.layers.push_back(lb.descriptor.digest);
  }
  std::string cfg_json = cfg.to_json();
  img.config = store.put(cfg_json);
  m.config.media_type = std::string(media_type::kOciConfig);
  m.config.digest = img.config;
  m.config.size = static_cast<std::int64_t>(cfg_json.size());
  std::string mj = m.to_json();
  img.manifest.media_type = std::string(media_type::kOciManifest);
  img.manifest.digest = store.put(mj);
  img.manifest.size = static_cast<std::int64_t>(mj.size());
  // What an OCI layout's descriptor carries: this must not leak into the archive.
  img.manifest.annotations["org.opencontainers.image.ref.name"] = "py";
  return img;
}

std::string config_json(const std::vector<Digest>& diff_ids) {
  ImageConfig cfg;
  cfg.architecture = "amd64";
  cfg.os = "linux";
  cfg.config.cmd = std::vector<std::string>{"/bin/sh"};
  cfg.diff_ids = diff_ids;
  return cfg.to_json();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

// ---------------------------------------------------------------- tests

TEST_CASE("docker_archive: DockerArchiveRef::parse", "[docker_archive]") {
  auto r = DockerArchiveRef::parse("docker-archive:/tmp/x.tar");
  CHECK(r.file == "/tmp/x.tar");
  CHECK(r.ref.empty());
  CHECK(r.str() == "docker-archive:/tmp/x.tar");

  r = DockerArchiveRef::parse("docker-archive:out/py.tar:app:1");
  CHECK(r.file == "out/py.tar");
  CHECK(r.ref == "app:1");
  CHECK(r.str() == "docker-archive:out/py.tar:app:1");

  r = DockerArchiveRef::parse("docker-archive:py.tar:localhost:5000/app:1");
  CHECK(r.file == "py.tar");
  CHECK(r.ref == "localhost:5000/app:1");

  r = DockerArchiveRef::parse("docker-archive:py.tar:localhost/py");
  CHECK(r.ref == "localhost/py");

  r = DockerArchiveRef::parse("docker-archive:py.tar:@1");
  CHECK(r.ref == "@1");

  CHECK_THROWS_AS(DockerArchiveRef::parse("oci:dir:tag"), UsageError);
  CHECK_THROWS_AS(DockerArchiveRef::parse("docker-archive"), UsageError);
  CHECK_THROWS_AS(DockerArchiveRef::parse("docker-archive:"), UsageError);
  CHECK_THROWS_AS(DockerArchiveRef::parse("docker-archive::app:1"), UsageError);
  CHECK_THROWS_AS(DockerArchiveRef::parse("docker-archive:x.tar:"), UsageError);
  CHECK_THROWS_AS(DockerArchiveRef::parse("docker-archive:x.tar:App:1"), UsageError);
  CHECK_THROWS_AS(DockerArchiveRef::parse("docker-archive:x.tar:@"), UsageError);
  CHECK_THROWS_AS(DockerArchiveRef::parse("docker-archive:x.tar:@x"), UsageError);
  std::string digest_ref = "docker-archive:x.tar:app@sha256:" + std::string(64, 'a');
  CHECK_THROWS_WITH(DockerArchiveRef::parse(digest_ref), Catch::Contains("not by digest"));
}

TEST_CASE("docker_archive: docker_repo_tag uses Docker's familiar names", "[docker_archive]") {
  CHECK(docker_repo_tag(Reference::parse("docker.io/library/app:1")) == "app:1");
  CHECK(docker_repo_tag(Reference::parse("app")) == "app:latest");
  CHECK(docker_repo_tag(Reference::parse("docker.io/user/app:2")) == "user/app:2");
  CHECK(docker_repo_tag(Reference::parse("docker.io/library/a/b:2")) == "library/a/b:2");
  CHECK(docker_repo_tag(Reference::parse("localhost/py:1")) == "localhost/py:1");
  CHECK(docker_repo_tag(Reference::parse("localhost:5000/app:1")) == "localhost:5000/app:1");
  CHECK(docker_repo_tag(Reference::parse("ghcr.io/o/app:v1")) == "ghcr.io/o/app:v1");
  CHECK_THROWS_AS(docker_repo_tag(Reference::parse("app@sha256:" + std::string(64, 'b'))), Error);
}

TEST_CASE("docker_archive: write then read back keeps the image", "[docker_archive]") {
  TempDir tmp;
  BlobStore src(tmp / "src");
  TestImage img = make_image(src, tmp.path(), "one");
  fs::path archive = tmp / "out" / "py.tar";
  fs::create_directories(archive.parent_path());
  write_docker_archive(archive, src, img.manifest, {"localhost/py:1", "docker.io/library/app:2"});
  CHECK(dir_listing(archive.parent_path()) == std::vector<std::string>{"py.tar"});

  for (std::string ref : {"localhost/py:1", "app:2", "docker.io/library/app:2", ""}) {
    INFO("ref " << ref);
    TempDir into_dir;
    BlobStore into(into_dir.path());
    LoadedArchiveImage got = read_docker_archive(archive, into, ref);
    CHECK(got.manifest.digest == img.manifest.digest);
    CHECK(got.manifest.size == img.manifest.size);
    CHECK(got.manifest.media_type == media_type::kOciManifest);
    CHECK(got.manifest.annotations.empty());
    CHECK(got.repo_tags == std::vector<std::string>{"localhost/py:1", "app:2"});
    CHECK(into.read(img.manifest.digest) == src.read(img.manifest.digest));
    CHECK(into.read(img.config) == src.read(img.config));
    for (const auto& l : img.layers) CHECK(into.read(l) == src.read(l));
    // Only the image's blobs, and no staging leftovers.
    CHECK(dir_listing(into.root()).size() == 2 + 1 + img.layers.size() + 1);
  }
}

TEST_CASE("docker_archive: the archive holds Docker's files and an OCI layout", "[docker_archive]") {
  TempDir tmp;
  BlobStore src(tmp / "src");
  TestImage img = make_image(src, tmp.path(), "two");
  fs::path archive = tmp / "py.tar";
  write_docker_archive(archive, src, img.manifest, {"localhost/py:1", "app:2", "app:2"});

  std::vector<TarEntry> entries = read_tar(archive);
  std::vector<std::string> blob_names = {"blobs/sha256/" + img.manifest.digest.hex(),
                                         "blobs/sha256/" + img.config.hex()};
  for (const auto& l : img.layers) blob_names.push_back("blobs/sha256/" + l.hex());
  std::sort(blob_names.begin(), blob_names.end());
  std::vector<std::string> expected = {"blobs/", "blobs/sha256/"};
  expected.insert(expected.end(), blob_names.begin(), blob_names.end());
  for (const char* n : {"index.json", "manifest.json", "oci-layout", "repositories"})
    expected.push_back(n);
  std::vector<std::string> names;
  for (const auto& e : entries) {
    names.push_back(e.name);
    CHECK(e.mtime == kDefaultMtimeClamp);
    CHECK(e.uid == 0);
    CHECK(e.mode == (e.type == 'd' ? 0755u : 0644u));
  }
  CHECK(names == expected);

  for (const auto& name : blob_names) {
    const TarEntry& e = entry_named(entries, name);
    CHECK("blobs/sha256/" + sha256_of(e.data).hex() == name);
  }

  std::string hex_cfg = img.config.hex();
  CHECK(entry_named(entries, "manifest.json").data ==
        R"([{"Config":"blobs/sha256/)" + hex_cfg + R"(","RepoTags":["localhost/py:1","app:2"],"Layers":["blobs/sha256/)" +
            img.layers[0].hex() + R"(","blobs/sha256/)" + img.layers[1].hex() + R"("]}])");
  CHECK(entry_named(entries, "repositories").data ==
        R"({"app":{"2":")" + img.layers[1].hex() + R"("},"localhost/py":{"1":")" + img.layers[1].hex() +
            R"("}})");
  CHECK(entry_named(entries, "oci-layout").data == R"({"imageLayoutVersion":"1.0.0"})");

  ImageIndex idx = ImageIndex::parse(entry_named(entries, "index.json").data);
  CHECK(idx.media_type == media_type::kOciIndex);
  REQUIRE(idx.manifests.size() == 2);
  CHECK(idx.manifests[0].digest == img.manifest.digest);
  CHECK(idx.manifests[0].media_type == media_type::kOciManifest);
  CHECK(idx.manifests[0].annotations ==
        std::map<std::string, std::string>{{"io.containerd.image.name", "localhost/py:1"},
                                           {"org.opencontainers.image.ref.name", "1"}});
  CHECK(idx.manifests[1].annotations ==
        std::map<std::string, std::string>{{"io.containerd.image.name", "docker.io/library/app:2"},
                                           {"org.opencontainers.image.ref.name", "2"}});
}

TEST_CASE("docker_archive: writing is deterministic and replaces the file", "[docker_archive]") {
  TempDir tmp;
  BlobStore src(tmp / "src");
  TestImage img = make_image(src, tmp.path(), "det");
  fs::create_directories(tmp / "out");
  write_docker_archive(tmp / "out/a.tar", src, img.manifest, {"localhost/py:1"});
  write_docker_archive(tmp / "out/b.tar", src, img.manifest, {"localhost/py:1"});
  CHECK(read_file(tmp / "out/a.tar") == read_file(tmp / "out/b.tar"));
  // Same again in a fresh store made from the same inputs.
  TempDir tmp2;
  BlobStore src2(tmp2 / "src");
  TestImage img2 = make_image(src2, tmp2.path(), "det");
  REQUIRE(img2.manifest.digest == img.manifest.digest);
  write_docker_archive(tmp2 / "c.tar", src2, img2.manifest, {"localhost/py:1"});
  CHECK(read_file(tmp / "out/a.tar") == read_file(tmp2 / "c.tar"));
  // Over an existing file: replaced, nothing else left beside it.
  write_text(tmp / "out/a.tar", "old");
  write_docker_archive(tmp / "out/a.tar", src, img.manifest, {"localhost/py:1"});
  CHECK(read_file(tmp / "out/a.tar") == read_file(tmp / "out/b.tar"));
  CHECK(dir_listing(tmp / "out") == std::vector<std::string>{"a.tar", "b.tar"});
}

TEST_CASE("docker_archive: an image without tags", "[docker_archive]") {
  TempDir tmp;
  BlobStore src(tmp / "src");
  TestImage img = make_image(src, tmp.path(), "untagged");
  write_docker_archive(tmp / "x.tar", src, img.manifest, {});
  auto entries = read_tar(tmp / "x.tar");
  CHECK(entry_named(entries, "repositories").data == "{}");
  CHECK(entry_named(entries, "manifest.json").data.find(R"("RepoTags":[])") != std::string::npos);
  ImageIndex idx = ImageIndex::parse(entry_named(entries, "index.json").data);
  REQUIRE(idx.manifests.size() == 1);
  CHECK(idx.manifests[0].annotations.empty());
  BlobStore into(tmp / "into");
  auto got = read_docker_archive(tmp / "x.tar", into);
  CHECK(got.manifest.digest == img.manifest.digest);
  CHECK(got.repo_tags.empty());
  CHECK(read_docker_archive(tmp / "x.tar", into, "@0").manifest.digest == img.manifest.digest);
}

TEST_CASE("docker_archive: write errors leave no file", "[docker_archive]") {
  TempDir tmp;
  BlobStore src(tmp / "src");
  TestImage img = make_image(src, tmp.path(), "err");
  fs::create_directories(tmp / "out");
  fs::path archive = tmp / "out/x.tar";

  SECTION("a corrupt layer in the store") {
    std::string bytes = read_file(src.path_of(img.layers[1]));
    bytes[bytes.size() / 2] ^= 0x55;
    fs::remove(src.path_of(img.layers[1]));
    write_text(src.path_of(img.layers[1]), bytes);
    std::string msg = error_of([&] { write_docker_archive(archive, src, img.manifest, {"a:1"}); });
    CHECK_THAT(msg, Catch::Contains(archive.string()));
    CHECK_THAT(msg, Catch::Contains(img.layers[1].str()));
    CHECK_THAT(msg, Catch::Contains(sha256_of(bytes).str()));
  }
  SECTION("a missing config") {
    fs::remove(src.path_of(img.config));
    std::string msg = error_of([&] { write_docker_archive(archive, src, img.manifest, {"a:1"}); });
    CHECK_THAT(msg, Catch::Contains(img.config.str()));
  }
  SECTION("a tag with a digest") {
    std::string msg = error_of([&] {
      write_docker_archive(archive, src, img.manifest, {"a@sha256:" + std::string(64, 'c')});
    });
    CHECK_THAT(msg, Catch::Contains("by tag"));
  }
  SECTION("an image index") {
    Descriptor d = img.manifest;
    d.media_type = std::string(media_type::kOciIndex);
    CHECK_THAT(error_of([&] { write_docker_archive(archive, src, d, {}); }),
               Catch::Contains("image index"));
  }
  SECTION("a directory that does not exist") {
    CHECK_THAT(error_of([&] { write_docker_archive(tmp / "nodir/x.tar", src, img.manifest, {}); }),
               Catch::Contains("nodir"));
  }
  CHECK(dir_listing(tmp / "out").empty());
}

TEST_CASE("docker_archive: a legacy archive (<id>/layer.tar, <id>.json)", "[docker_archive]") {
  TempDir tmp;
  std::string layer = layer_tar(tmp.path(), "legacy");
  Digest layer_digest = sha256_of(layer);
  std::string cfg = config_json({layer_digest});
  Digest cfg_digest = sha256_of(cfg);
  const std::string id = std::string(64, '1');
  std::string manifest_json = R"([{"Config":")" + cfg_digest.hex() + R"(.json","RepoTags":["app:1"],"Layers":[")" +
                              id + R"(/layer.tar"]}])";
  std::vector<TarEntry> entries = {
      {id + "/", "", 'd'},
      file_entry(id + "/VERSION", "1.0"),
      file_entry(id + "/json", R"({"id":")" + id + R"("})"),
      file_entry(id + "/layer.tar", layer),
      file_entry(cfg_digest.hex() + ".json", cfg),
      file_entry("manifest.json", manifest_json),
      file_entry("repositories", R"({"app":{"1":")" + id + R"("}})"),
  };

  for (std::string filter : {"none", "gzip", "zstd"}) {
    INFO("archive compression " << filter);
    write_tar(tmp / "legacy.tar", entries, filter);
    TempDir into_dir;
    BlobStore into(into_dir.path());
    LoadedArchiveImage got = read_docker_archive(tmp / "legacy.tar", into);
    CHECK(got.repo_tags == std::vector<std::string>{"app:1"});
    CHECK(got.manifest.media_type == media_type::kOciManifest);
    Manifest m = Manifest::parse(into.read(got.manifest.digest));
    CHECK(m.media_type == media_type::kOciManifest);
    CHECK(m.config.media_type == media_type::kOciConfig);
    CHECK(m.config.digest == cfg_digest);
    CHECK(m.config.size == static_cast<std::int64_t>(cfg.size()));
    REQUIRE(m.layers.size() == 1);
    CHECK(m.layers[0].media_type == media_type::kOciLayerTar);
    CHECK(m.layers[0].digest == layer_digest);
    CHECK(m.layers[0].size == static_cast<std::int64_t>(layer.size()));
    CHECK(into.read(layer_digest) == layer);
    CHECK(into.read(cfg_digest) == cfg);
    // Nothing but the image's three blobs: not VERSION, json or repositories.
    CHECK(dir_listing(into.blob_dir()).size() == 3);
    CHECK(dir_listing(into.root()).size() == 2 + 3);
  }

  SECTION("names starting with ./ (tar -C dir -cf x.tar .)") {
    std::vector<TarEntry> dotted;
    for (auto e : entries) {
      e.name = "./" + e.name;
      dotted.push_back(e);
    }
    write_tar(tmp / "dotted.tar", dotted);
    BlobStore into(tmp / "into");
    auto got = read_docker_archive(tmp / "dotted.tar", into);
    CHECK(Manifest::parse(into.read(got.manifest.digest)).layers.at(0).digest == layer_digest);
  }

  SECTION("an uncompressed layer must match the config's diff_id") {
    std::vector<TarEntry> bad = entries;
    bad[4].data = config_json({sha256_of("something else")});
    bad[5].data = R"([{"Config":")" + sha256_of(bad[4].data).hex() + R"(.json","RepoTags":["app:1"],"Layers":[")" +
                  id + R"(/layer.tar"]}])";
    bad[4].name = sha256_of(bad[4].data).hex() + ".json";
    write_tar(tmp / "bad.tar", bad);
    BlobStore into(tmp / "into");
    std::string msg = error_of([&] { read_docker_archive(tmp / "bad.tar", into); });
    CHECK_THAT(msg, Catch::Contains("diff_id"));
    CHECK_THAT(msg, Catch::Contains(layer_digest.str()));
    CHECK(dir_listing(into.blob_dir()).empty());
  }
}

TEST_CASE("docker_archive: compressed layers get +gzip / +zstd by their magic", "[docker_archive]") {
  TempDir tmp;
  std::string plain = layer_tar(tmp.path(), "compressed");
  std::string gz = compress(plain, Compression::kGzip);
  std::string zst = compress(plain + std::string(1024, '\0'), Compression::kZstd);
  std::string cfg = config_json({sha256_of(plain), sha256_of(plain + std::string(1024, '\0'))});
  write_tar(tmp / "c.tar",
            {file_entry("l1/layer.tar", gz), file_entry("l2/layer.tar", zst), file_entry("config.json", cfg),
             file_entry("manifest.json",
                        R"([{"Config":"config.json","RepoTags":null,"Layers":["l1/layer.tar","l2/layer.tar"]}])")});
  BlobStore into(tmp / "into");
  auto got = read_docker_archive(tmp / "c.tar", into);
  CHECK(got.repo_tags.empty());
  Manifest m = Manifest::parse(into.read(got.manifest.digest));
  REQUIRE(m.layers.size() == 2);
  CHECK(m.layers[0].media_type == media_type::kOciLayerGzip);
  CHECK(m.layers[0].digest == sha256_of(gz));
  CHECK(m.layers[1].media_type == media_type::kOciLayerZstd);
  CHECK(m.layers[1].digest == sha256_of(zst));
}

TEST_CASE("docker_archive: several images, symlinked layers, selection by ref", "[docker_archive]") {
  TempDir tmp;
  std::string l1 = layer_tar(tmp.path(), "shared");
  std::string l3 = layer_tar(tmp.path(), "second");
  std::string l3gz = compress(l3, Compression::kGzip);
  std::string cfg_a = config_json({sha256_of(l1)});
  std::string cfg_b = config_json({sha256_of(l1), sha256_of(l3)});
  const std::string a = std::string(64, 'a'), b = std::string(64, 'b'), c = std::string(64, 'c');
  std::string mj = R"([{"Config":"cfg-a.json","RepoTags":["app:1"],"Layers":[")" + a + R"(/layer.tar"]},)" +
                   R"({"Config":"cfg-b.json","RepoTags":["localhost:5000/other:2","other:latest"],"Layers":[")" +
                   b + R"(/layer.tar",")" + c + R"(/layer.tar"]}])";
  write_tar(tmp / "multi.tar", {
                                   file_entry(a + "/layer.tar", l1),
                                   {b + "/layer.tar", "", 'l', "../" + a + "/layer.tar"},
                                   file_entry("c-real.tar", l3gz),
                                   {c + "/layer.tar", "", 'h', "c-real.tar"},
                                   file_entry("cfg-a.json", cfg_a),
                                   file_entry("cfg-b.json", cfg_b),
                                   file_entry("manifest.json", mj),
                               });
  BlobStore into(tmp / "into");
  const fs::path f = tmp / "multi.tar";

  std::string msg = error_of([&] { read_docker_archive(f, into); });
  CHECK_THAT(msg, Catch::Contains("2 images"));
  CHECK_THAT(msg, Catch::Contains("app:1"));
  CHECK_THAT(msg, Catch::Contains("localhost:5000/other:2"));

  auto check_a = [&](const LoadedArchiveImage& got) {
    CHECK(got.repo_tags == std::vector<std::string>{"app:1"});
    Manifest m = Manifest::parse(into.read(got.manifest.digest));
    CHECK(m.config.digest == sha256_of(cfg_a));
    REQUIRE(m.layers.size() == 1);
    CHECK(m.layers[0].digest == sha256_of(l1));
  };
  auto check_b = [&](const LoadedArchiveImage& got) {
    CHECK(got.repo_tags == std::vector<std::string>{"localhost:5000/other:2", "other:latest"});
    Manifest m = Manifest::parse(into.read(got.manifest.digest));
    CHECK(m.config.digest == sha256_of(cfg_b));
    REQUIRE(m.layers.size() == 2);
    CHECK(m.layers[0].digest == sha256_of(l1));
    CHECK(m.layers[0].media_type == media_type::kOciLayerTar);
    CHECK(m.layers[1].digest == sha256_of(l3gz));
    CHECK(m.layers[1].media_type == media_type::kOciLayerGzip);
  };
  check_a(read_docker_archive(f, into, "app:1"));
  check_a(read_docker_archive(f, into, "docker.io/library/app:1"));
  check_a(read_docker_archive(f, into, "@0"));
  check_b(read_docker_archive(f, into, "localhost:5000/other:2"));
  check_b(read_docker_archive(f, into, "other"));
  check_b(read_docker_archive(f, into, "@1"));

  msg = error_of([&] { read_docker_archive(f, into, "nope:1"); });
  CHECK_THAT(msg, Catch::Contains("\"nope:1\""));
  CHECK_THAT(msg, Catch::Contains("app:1"));
  CHECK_THAT(msg, Catch::Contains(f.string()));
  CHECK_THAT(error_of([&] { read_docker_archive(f, into, "@2"); }), Catch::Contains("no image @2"));
}

TEST_CASE("docker_archive: a tampered blob is refused and nothing is stored", "[docker_archive]") {
  TempDir tmp;
  BlobStore src(tmp / "src");
  TestImage img = make_image(src, tmp.path(), "tamper");
  write_docker_archive(tmp / "good.tar", src, img.manifest, {"localhost/py:1"});
  std::vector<TarEntry> entries = read_tar(tmp / "good.tar");

  for (Digest victim : {img.layers[0], img.config, img.manifest.digest}) {
    INFO("tampered " << victim.str());
    std::vector<TarEntry> bad = entries;
    std::string changed;
    for (auto& e : bad)
      if (e.name == "blobs/sha256/" + victim.hex()) {
        e.data[e.data.size() - 3] ^= 0x01;
        changed = e.data;
      }
    REQUIRE(!changed.empty());
    write_tar(tmp / "bad.tar", bad);
    TempDir into_dir;
    BlobStore into(into_dir.path());
    std::string msg = error_of([&] { read_docker_archive(tmp / "bad.tar", into, "localhost/py:1"); });
    CHECK_THAT(msg, Catch::Contains((tmp / "bad.tar").string()));
    CHECK_THAT(msg, Catch::Contains(victim.str()));
    CHECK_THAT(msg, Catch::Contains(sha256_of(changed).str()));
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(dir_listing(into.root()) == std::vector<std::string>{"blobs", "blobs/sha256"});
  }
}

TEST_CASE("docker_archive: Docker 25's multi-platform index.json", "[docker_archive]") {
  // docker save (containerd store) writes the whole image index but only the
  // saved platform's blobs; manifest.json names that platform's files.
  TempDir tmp;
  BlobStore src(tmp / "src");
  TestImage img = make_image(src, tmp.path(), "multi");
  write_docker_archive(tmp / "one.tar", src, img.manifest, {"app:1"});
  std::vector<TarEntry> entries = read_tar(tmp / "one.tar");

  ImageIndex platforms;
  platforms.media_type = std::string(media_type::kOciIndex);
  Descriptor absent;
  absent.media_type = std::string(media_type::kOciManifest);
  absent.digest = sha256_of("arm64 manifest, not saved");
  absent.size = 25;
  absent.platform = Platform{};
  absent.platform->os = "linux";
  absent.platform->architecture = "arm64";
  Descriptor present = img.manifest;
  present.annotations.clear();
  present.platform = Platform{};
  present.platform->os = "linux";
  present.platform->architecture = "amd64";
  platforms.manifests = {absent, present};
  std::string platforms_json = platforms.to_json();
  Digest platforms_digest = sha256_of(platforms_json);

  ImageIndex top;
  top.media_type = std::string(media_type::kOciIndex);
  Descriptor top_entry;
  top_entry.media_type = std::string(media_type::kOciIndex);
  top_entry.digest = platforms_digest;
  top_entry.size = static_cast<std::int64_t>(platforms_json.size());
  top_entry.annotations["io.containerd.image.name"] = "docker.io/library/app:1";
  top.manifests = {top_entry};

  std::vector<TarEntry> docker25;
  for (auto e : entries) {
    if (e.name == "index.json") e.data = top.to_json();
    docker25.push_back(e);
  }
  docker25.push_back(file_entry("blobs/sha256/" + platforms_digest.hex(), platforms_json));
  write_tar(tmp / "docker25.tar", docker25);

  BlobStore into(tmp / "into");
  auto got = read_docker_archive(tmp / "docker25.tar", into, "app:1");
  CHECK(got.manifest.digest == img.manifest.digest);
  REQUIRE(got.manifest.platform);
  CHECK(got.manifest.platform->architecture == "amd64");
  CHECK_FALSE(into.contains(platforms_digest));
}

TEST_CASE("docker_archive: read errors", "[docker_archive]") {
  TempDir tmp;
  BlobStore into(tmp / "into");
  const fs::path f = tmp / "x.tar";
  std::string layer = layer_tar(tmp.path(), "errors");
  std::string cfg = config_json({sha256_of(layer)});
  auto read_error = [&] { return error_of([&] { read_docker_archive(f, into); }); };

  SECTION("missing manifest.json") {
    write_tar(f, {file_entry("l/layer.tar", layer), file_entry("c.json", cfg),
                  file_entry("index.json", R"({"schemaVersion":2,"manifests":[]})")});
    std::string msg = read_error();
    CHECK_THAT(msg, Catch::Contains(f.string()));
    CHECK_THAT(msg, Catch::Contains("no manifest.json"));
  }
  SECTION("a Layers entry that is not in the tar") {
    write_tar(f, {file_entry("l/layer.tar", layer), file_entry("c.json", cfg),
                  file_entry("manifest.json", R"([{"Config":"c.json","RepoTags":[],"Layers":["m/layer.tar"]}])")});
    std::string msg = read_error();
    CHECK_THAT(msg, Catch::Contains(f.string()));
    CHECK_THAT(msg, Catch::Contains("\"m/layer.tar\" is not a file in the archive"));
  }
  SECTION("a Config that is not in the tar") {
    write_tar(f, {file_entry("l/layer.tar", layer),
                  file_entry("manifest.json", R"([{"Config":"c.json","RepoTags":[],"Layers":["l/layer.tar"]}])")});
    CHECK_THAT(read_error(), Catch::Contains("Config \"c.json\""));
  }
  SECTION("a symlink loop") {
    write_tar(f, {{"l/layer.tar", "", 'l', "../m/layer.tar"}, {"m/layer.tar", "", 'l', "../l/layer.tar"},
                  file_entry("c.json", cfg),
                  file_entry("manifest.json", R"([{"Config":"c.json","RepoTags":[],"Layers":["l/layer.tar"]}])")});
    CHECK_THAT(read_error(), Catch::Contains("\"l/layer.tar\" is not a file"));
  }
  SECTION("malformed manifest.json") {
    write_tar(f, {file_entry("manifest.json", R"([{"Config":"c.json",)")});
    std::string msg = read_error();
    CHECK_THAT(msg, Catch::Contains(f.string()));
    CHECK_THAT(msg, Catch::Contains("manifest.json"));
  }
  SECTION("manifest.json of the wrong shape") {
    write_tar(f, {file_entry("manifest.json", R"({"Config":"c.json"})")});
    CHECK_THAT(read_error(), Catch::Contains("not a JSON array"));
    write_tar(f, {file_entry("manifest.json", "[]")});
    CHECK_THAT(read_error(), Catch::Contains("no image"));
    write_tar(f, {file_entry("manifest.json", R"([{"Config":"c.json"}])")});
    CHECK_THAT(read_error(), Catch::Contains("Layers"));
  }
  SECTION("a config that is not JSON") {
    write_tar(f, {file_entry("l/layer.tar", layer), file_entry("c.json", "nope"),
                  file_entry("manifest.json", R"([{"Config":"c.json","RepoTags":[],"Layers":["l/layer.tar"]}])")});
    CHECK_THAT(read_error(), Catch::Contains("config \"c.json\""));
  }
  SECTION("diff_ids and layers disagree in number") {
    write_tar(f, {file_entry("l/layer.tar", layer), file_entry("c.json", config_json({})),
                  file_entry("manifest.json", R"([{"Config":"c.json","RepoTags":[],"Layers":["l/layer.tar"]}])")});
    CHECK_THAT(read_error(), Catch::Contains("0 diff_ids"));
  }
  SECTION("an xz layer") {
    std::string xz = std::string("\xfd" "7zXZ", 5) + std::string(1, '\0') + "rest";
    write_tar(f, {file_entry("l/layer.tar", xz), file_entry("c.json", config_json({sha256_of(xz)})),
                  file_entry("manifest.json", R"([{"Config":"c.json","RepoTags":[],"Layers":["l/layer.tar"]}])")});
    CHECK_THAT(read_error(), Catch::Contains("xz or bzip2"));
  }
  SECTION("malformed index.json") {
    write_tar(f, {file_entry("l/layer.tar", layer), file_entry("c.json", cfg), file_entry("index.json", "{"),
                  file_entry("manifest.json", R"([{"Config":"c.json","RepoTags":[],"Layers":["l/layer.tar"]}])")});
    CHECK_THAT(read_error(), Catch::Contains("index.json"));
  }
  SECTION("not a tar") {
    write_text(f, std::string(4096, 'x'));
    CHECK_THAT(read_error(), Catch::Contains("not a tar archive"));
  }
  SECTION("no such file") {
    CHECK_THAT(read_error(), Catch::Contains(f.string()));
  }
  CHECK(dir_listing(into.root()) == std::vector<std::string>{"blobs", "blobs/sha256"});
}
