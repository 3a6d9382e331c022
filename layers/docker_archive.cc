#include "layers/docker_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "base/error.h"
#include "base/file_util.h"
#include "layers/archive_handle.h"
#include "layers/byte_sink.h"
#include "oci/content_graph.h"
#include "oci/image_config.h"
#include "oci/image_index.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace dockless {

namespace {

constexpr std::string_view kScheme = "docker-archive:";
constexpr const char* kRefNameKey = "org.opencontainers.image.ref.name";
constexpr const char* kContainerdNameKey = "io.containerd.image.name";
constexpr std::string_view kLayoutHeader = R"({"imageLayoutVersion":"1.0.0"})";
constexpr std::string_view kDockerHub = "docker.io";
constexpr std::string_view kOfficialPrefix = "library/";
/// The mtime of every entry written: 1980-01-01T00:00:00Z, as dockless's layers.
constexpr std::int64_t kEntryMtime = 315532800;
constexpr std::size_t kChunk = 1 << 20;
/// manifest.json, index.json, repositories and oci-layout are read into
/// memory; anything larger than this is not one of them.
constexpr la_int64_t kMaxMetadataSize = 64 << 20;
/// How deep index.json may nest image indexes before we stop looking.
constexpr int kMaxIndexDepth = 4;

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string blob_entry_name(const Digest& d) { return "blobs/sha256/" + d.hex(); }

bool is_lower_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

/// A reference's comparable form: "app:1" and "docker.io/library/app:1" are
/// the same image name. Text that is no reference compares as it is.
std::string normalised_ref(const std::string& text) {
  try {
    return Reference::parse(text).str();
  } catch (const Error&) {
    return text;
  }
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

// ---------------------------------------------------------------- writing

/// Bytes pushed into an AtomicFile (the archive being written).
class FileSink : public ByteSink {
 public:
  explicit FileSink(AtomicFile& file) : file_(file) {}
  void write(const void* data, std::size_t size) override { file_.write(data, size); }
  void finish() override {}

 private:
  AtomicFile& file_;
};

/// The archive's tar stream: directories, small files from memory and blobs
/// streamed (and verified) from a store.
class TarOut {
 public:
  explicit TarOut(ByteSink& out) : tar_(out) {}

  void directory(const std::string& name) { header(name, AE_IFDIR, 0755, 0); }

  void file(const std::string& name, std::string_view data) {
    header(name, AE_IFREG, 0644, static_cast<la_int64_t>(data.size()));
    if (!data.empty()) tar_.data(data.data(), data.size(), name);
  }

  /// Streams the blob d from store, hashing it; a blob whose size or digest
  /// does not match d is an Error (the caller then drops the whole file).
  void blob(const BlobStore& store, const Descriptor& d) {
    const std::string name = blob_entry_name(d.digest);
    const std::filesystem::path src = store.path_of(d.digest);
    UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) throw_errno("blob " + d.digest.str() + " is missing from " + store.root().string());
    struct stat st;
    if (::fstat(in.get(), &st) != 0) throw_errno("cannot stat " + src.string());
    if (st.st_size != d.size)
      throw Error("blob " + d.digest.str() + " in " + store.root().string() + " has " +
                  std::to_string(st.st_size) + " bytes, its descriptor says " +
                  std::to_string(d.size));
    header(name, AE_IFREG, 0644, static_cast<la_int64_t>(st.st_size));
    Sha256 hash;
    std::uint64_t total = 0;
    std::unique_ptr<char[]> buf(new char[kChunk]);
    for (;;) {
      std::size_t n = read_some(in.get(), buf.get(), kChunk, src.string());
      if (n == 0) break;
      total += n;
      if (total > static_cast<std::uint64_t>(st.st_size)) break;
      hash.update(buf.get(), n);
      tar_.data(buf.get(), n, name);
    }
    if (total != static_cast<std::uint64_t>(st.st_size))
      throw Error("blob " + d.digest.str() + " in " + store.root().string() +
                  " changed size while it was being read");
    Digest actual = hash.finish();
    if (actual != d.digest)
      throw Error("blob " + d.digest.str() + " in " + store.root().string() +
                  " is corrupt: its content has digest " + actual.str());
  }

  void close() { tar_.close(); }

 private:
  void header(const std::string& name, unsigned type, unsigned perm, la_int64_t size) {
    ArchiveEntryHandle e = new_archive_entry();
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), perm);
    archive_entry_set_size(e.get(), size);
    archive_entry_set_mtime(e.get(), kEntryMtime, 0);
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    tar_.header(e.get(), name);
  }

  TarStreamWriter tar_;
};

/// The repo tags to write, parsed, checked and without duplicates.
std::vector<Reference> parse_repo_tags(const std::vector<std::string>& repo_tags) {
  std::vector<Reference> out;
  std::set<std::string> seen;
  for (const auto& text : repo_tags) {
    Reference r = Reference::parse(text);
    if (r.digest)
      throw Error("cannot name an image " + in_quotes(text) +
                  " in a docker-archive: it names images by tag, not by digest");
    if (seen.insert(r.str()).second) out.push_back(std::move(r));
  }
  return out;
}

std::string manifest_json_text(const Manifest& m, const std::vector<std::string>& tags) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartArray();
  w.StartObject();
  json::write_string_member(w, "Config", blob_entry_name(m.config.digest));
  json::write_key(w, "RepoTags");
  json::write_string_array(w, tags);
  json::write_key(w, "Layers");
  std::vector<std::string> layers;
  for (const auto& l : m.layers) layers.push_back(blob_entry_name(l.digest));
  json::write_string_array(w, layers);
  w.EndObject();
  w.EndArray();
  return buf.GetString();
}

std::string repositories_text(const std::map<std::string, std::map<std::string, std::string>>& repos) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  for (const auto& [repo, tags] : repos) {
    json::write_key(w, repo);
    json::write_string_map(w, tags);
  }
  w.EndObject();
  return buf.GetString();
}

// ---------------------------------------------------------------- reading

/// A regular file of the archive, staged in the temp store.
struct StagedFile {
  Digest digest;
  std::int64_t size = 0;
};

/// An image as manifest.json describes it (paths as normalised entry names).
struct ArchiveImage {
  std::string config;
  std::vector<std::string> repo_tags;
  std::vector<std::string> layers;
};

/// "./a//b/" -> "a/b"; what a tar entry or a manifest.json path names.
std::string normalise_entry_name(std::string_view name) {
  std::string s(name);
  while (!s.empty() && s.front() == '/') s.erase(0, 1);
  s = std::filesystem::path(s).lexically_normal().generic_string();
  while (!s.empty() && s.back() == '/') s.pop_back();
  if (s == ".") s.clear();
  return s;
}

/// A temp store inside into.root(), removed (with everything in it) on scope exit.
class StagingStore {
 public:
  explicit StagingStore(const BlobStore& into)
      : root_(temp_path_beside(into.root() / "docker-archive-staging")), store_(make(root_)) {}
  ~StagingStore() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  StagingStore(const StagingStore&) = delete;
  StagingStore& operator=(const StagingStore&) = delete;
  const BlobStore& store() const { return store_; }

 private:
  static BlobStore make(const std::filesystem::path& root) {
    try {
      return BlobStore(root);
    } catch (...) {
      std::error_code ec;
      std::filesystem::remove_all(root, ec);
      throw;
    }
  }
  std::filesystem::path root_;
  BlobStore store_;
};

class ArchiveReader {
 public:
  ArchiveReader(std::filesystem::path file, const BlobStore& into)
      : file_(std::move(file)), into_(into), staging_(into) {}

  LoadedArchiveImage load(const std::string& ref) {
    scan();
    auto mj = metadata_.find("manifest.json");
    if (mj == metadata_.end())
      fail("no manifest.json in the archive (is it a docker-archive, from docker save?)");
    std::vector<ArchiveImage> images = parse_manifest_json(mj->second);
    const ArchiveImage& image = select(images, ref);

    StagedFile config = staged(image.config, "Config");
    std::vector<StagedFile> layers;
    for (std::size_t i = 0; i < image.layers.size(); ++i)
      layers.push_back(staged(image.layers[i], "layer " + std::to_string(i + 1)));

    LoadedArchiveImage out;
    out.repo_tags = image.repo_tags;
    std::optional<Descriptor> from_index = find_in_index(config, layers);
    std::string built_manifest;
    if (from_index) {
      out.manifest = *from_index;
    } else {
      built_manifest = build_manifest(image, config, layers);
      out.manifest.media_type = std::string(media_type::kOciManifest);
      out.manifest.digest = sha256_of(built_manifest);
      out.manifest.size = static_cast<std::int64_t>(built_manifest.size());
    }

    // Everything checked out: move the image's blobs in, the manifest last,
    // so `into` never holds a manifest whose blobs are missing.
    try {
      for (const auto& l : layers) into_.import_from(staging_.store(), l.digest);
      into_.import_from(staging_.store(), config.digest);
      if (from_index)
        into_.import_from(staging_.store(), out.manifest.digest);
      else
        into_.put(built_manifest, out.manifest.digest);
    } catch (const Error& e) {
      fail(e.what());
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("docker-archive " + file_.string() + ": " + what);
  }

  // ------------------------------------------------------------ the one pass

  void scan() {
    UniqueFd fd(::open(file_.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw_errno("cannot open docker-archive " + file_.string());
    ArchiveReadHandle a = new_archive_reader();
    if (!a) throw Error("libarchive: out of memory");
    archive_read_support_filter_all(a.get());
    archive_read_support_format_tar(a.get());
    if (archive_read_open_fd(a.get(), fd.get(), 1 << 16) != ARCHIVE_OK)
      fail("not a tar archive: " + archive_message(a.get()));
    std::unique_ptr<char[]> buf(new char[kChunk]);
    std::size_t entries = 0;
    for (;;) {
      archive_entry* e = nullptr;
      int r = archive_read_next_header(a.get(), &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN)
        fail(std::string(entries == 0 ? "not a tar archive" : "damaged tar archive") + ": " +
             archive_message(a.get()));
      ++entries;
      const char* raw_name = archive_entry_pathname(e);
      if (raw_name == nullptr) continue;
      std::string name = normalise_entry_name(raw_name);
      if (const char* hard = archive_entry_hardlink(e)) {
        links_[name] = normalise_entry_name(hard);
        continue;
      }
      if (archive_entry_filetype(e) == AE_IFLNK) {
        const char* target = archive_entry_symlink(e);
        if (target == nullptr) continue;
        std::string t = target;
        // A relative target is relative to the link's directory.
        links_[name] = normalise_entry_name(
            !t.empty() && t.front() == '/'
                ? t
                : (std::filesystem::path(name).parent_path() / t).generic_string());
        continue;
      }
      if (archive_entry_filetype(e) != AE_IFREG) continue;
      if (name == "manifest.json" || name == "index.json" || name == "repositories" ||
          name == "oci-layout") {
        metadata_[name] = read_small(a.get(), e, name, buf.get());
      } else {
        files_[name] = stage(a.get(), name, buf.get());
      }
    }
  }

  std::string read_small(archive* a, archive_entry* e, const std::string& name, char* buf) {
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > kMaxMetadataSize)
      fail(name + " is too large (" + std::to_string(archive_entry_size(e)) + " bytes)");
    std::string out;
    for (;;) {
      la_ssize_t n = archive_read_data(a, buf, kChunk);
      if (n < 0) fail("cannot read " + name + ": " + archive_message(a));
      if (n == 0) break;
      out.append(buf, static_cast<std::size_t>(n));
      if (out.size() > static_cast<std::size_t>(kMaxMetadataSize)) fail(name + " is too large");
    }
    return out;
  }

  /// Streams an entry into the staging store. A blobs/sha256/<hex> entry must
  /// hash to <hex>.
  StagedFile stage(archive* a, const std::string& name, char* buf) {
    BlobWriter w(staging_.store());
    for (;;) {
      la_ssize_t n = archive_read_data(a, buf, kChunk);
      if (n < 0) fail("cannot read " + name + ": " + archive_message(a));
      if (n == 0) break;
      w.write(buf, static_cast<std::size_t>(n));
    }
    std::optional<Digest> expected;
    constexpr std::string_view kBlobDir = "blobs/sha256/";
    if (name.size() == kBlobDir.size() + 64 && name.compare(0, kBlobDir.size(), kBlobDir) == 0 &&
        is_lower_hex64(std::string_view(name).substr(kBlobDir.size())))
      expected = Digest::parse("sha256:" + name.substr(kBlobDir.size()));
    StagedFile f;
    f.size = static_cast<std::int64_t>(w.size());
    try {
      f.digest = w.commit(expected);
    } catch (const Error& e) {
      fail(name + ": " + e.what());
    }
    return f;
  }

  /// The staged file an entry name leads to, following symlinks and hardlinks.
  StagedFile staged(const std::string& path, const std::string& what) const {
    std::string name = path;
    for (int hops = 0; hops < 40; ++hops) {
      if (auto f = files_.find(name); f != files_.end()) return f->second;
      auto l = links_.find(name);
      if (l == links_.end()) break;
      name = l->second;
    }
    fail("manifest.json's " + what + " " + in_quotes(path) + " is not a file in the archive");
  }

  // ------------------------------------------------------------ manifest.json

  std::vector<ArchiveImage> parse_manifest_json(const std::string& text) const {
    std::vector<ArchiveImage> images;
    try {
      rapidjson::Document doc = json::parse(text, "manifest.json");
      if (!doc.IsArray()) throw Error("manifest.json is not a JSON array");
      if (doc.Empty()) throw Error("manifest.json lists no image");
      for (rapidjson::SizeType i = 0; i < doc.Size(); ++i) {
        const std::string what = "manifest.json entry " + std::to_string(i);
        ArchiveImage img;
        img.config = normalise_entry_name(json::require_string(doc[i], "Config", what));
        img.repo_tags = json::get_string_array(doc[i], "RepoTags", what).value_or(std::vector<std::string>{});
        auto layers = json::get_string_array(doc[i], "Layers", what);
        if (!layers) throw Error("invalid " + what + ": missing field \"Layers\"");
        for (const auto& l : *layers) img.layers.push_back(normalise_entry_name(l));
        images.push_back(std::move(img));
      }
    } catch (const Error& e) {
      fail(e.what());
    }
    return images;
  }

  const ArchiveImage& select(const std::vector<ArchiveImage>& images, const std::string& ref) const {
    auto listing = [&] {
      std::vector<std::string> names;
      for (std::size_t i = 0; i < images.size(); ++i)
        names.push_back(images[i].repo_tags.empty() ? "@" + std::to_string(i)
                                                    : join(images[i].repo_tags, " = "));
      return join(names, ", ");
    };
    if (ref.empty()) {
      if (images.size() == 1) return images.front();
      fail("holds " + std::to_string(images.size()) +
           " images; name one with docker-archive:FILE:REF (" + listing() + ")");
    }
    if (ref.front() == '@') {
      std::string digits = ref.substr(1);
      if (!digits.empty() && digits.size() < 10 &&
          digits.find_first_not_of("0123456789") == std::string::npos) {
        std::size_t i = std::stoul(digits);
        if (i < images.size()) return images[i];
      }
      fail("has no image " + ref + " (it holds " + std::to_string(images.size()) + ": " +
           listing() + ")");
    }
    const std::string want = normalised_ref(ref);
    for (const auto& img : images)
      for (const auto& tag : img.repo_tags)
        if (tag == ref || normalised_ref(tag) == want) return img;
    fail("has no image tagged " + in_quotes(ref) + " (it holds: " + listing() + ")");
  }

  // ------------------------------------------------------------ index.json

  /// The OCI manifest in index.json (perhaps inside an image index) whose
  /// config and layers are exactly the selected image's, if any.
  std::optional<Descriptor> find_in_index(const StagedFile& config,
                                          const std::vector<StagedFile>& layers) const {
    auto it = metadata_.find("index.json");
    if (it == metadata_.end()) return std::nullopt;
    ImageIndex idx;
    try {
      idx = ImageIndex::parse(it->second);
    } catch (const Error& e) {
      fail(std::string("index.json: ") + e.what());
    }
    return search(idx, config, layers, 0);
  }

  std::optional<Descriptor> search(const ImageIndex& idx, const StagedFile& config,
                                   const std::vector<StagedFile>& layers, int depth) const {
    for (const auto& d : idx.manifests) {
      // Docker 25+ saves a whole multi-platform index but only one platform's
      // blobs: descriptors of absent blobs are skipped.
      if (!staging_.store().contains(d.digest)) continue;
      if (media_type::is_index(d.media_type)) {
        if (depth >= kMaxIndexDepth) continue;
        std::string text = read_staged(d.digest);
        ImageIndex child;
        try {
          child = ImageIndex::parse(text);
        } catch (const Error& e) {
          fail("image index " + d.digest.str() + ": " + e.what());
        }
        if (auto found = search(child, config, layers, depth + 1)) return found;
        continue;
      }
      if (!media_type::is_manifest(d.media_type)) continue;
      std::string text = read_staged(d.digest);
      Manifest m;
      try {
        m = Manifest::parse(text);
      } catch (const Error& e) {
        fail("manifest " + d.digest.str() + ": " + e.what());
      }
      if (m.config.digest != config.digest || m.layers.size() != layers.size()) continue;
      bool same = true;
      for (std::size_t i = 0; i < layers.size() && same; ++i)
        same = m.layers[i].digest == layers[i].digest;
      if (!same) continue;
      Descriptor out;
      out.media_type = d.media_type;
      out.digest = d.digest;
      out.size = static_cast<std::int64_t>(text.size());
      out.platform = d.platform;
      out.platform_unknown = d.platform_unknown;
      return out;
    }
    return std::nullopt;
  }

  std::string read_staged(const Digest& d) const {
    try {
      return staging_.store().read(d);
    } catch (const Error& e) {
      fail(e.what());
    }
  }

  // ------------------------------------------------------------ building

  std::string build_manifest(const ArchiveImage& image, const StagedFile& config,
                             const std::vector<StagedFile>& layers) const {
    ImageConfig cfg;
    try {
      cfg = ImageConfig::parse(read_staged(config.digest));
    } catch (const Error& e) {
      fail("config " + in_quotes(image.config) + ": " + e.what());
    }
    if (cfg.diff_ids.size() != layers.size())
      fail("config " + in_quotes(image.config) + " lists " + std::to_string(cfg.diff_ids.size()) +
           " diff_ids but manifest.json lists " + std::to_string(layers.size()) + " layers");

    Manifest m;
    m.media_type = std::string(media_type::kOciManifest);
    m.config.media_type = std::string(media_type::kOciConfig);
    m.config.digest = config.digest;
    m.config.size = config.size;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      Descriptor d;
      d.digest = layers[i].digest;
      d.size = layers[i].size;
      d.media_type = layer_media_type(image.layers[i], layers[i]);
      // An uncompressed layer is its own diff: it must be what the config says.
      if (d.media_type == media_type::kOciLayerTar && d.digest != cfg.diff_ids[i])
        fail("layer " + in_quotes(image.layers[i]) + " has digest " + d.digest.str() +
             " but the config's diff_id " + std::to_string(i) + " is " + cfg.diff_ids[i].str());
      m.layers.push_back(std::move(d));
    }
    return m.to_json();
  }

  /// tar, tar+gzip or tar+zstd, from the file's first bytes.
  std::string layer_media_type(const std::string& name, const StagedFile& f) const {
    unsigned char magic[6] = {};
    std::size_t got = 0;
    {
      const std::filesystem::path p = staging_.store().path_of(f.digest);
      UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) throw_errno("cannot open " + p.string());
      while (got < sizeof magic) {
        std::size_t n = read_some(fd.get(), magic + got, sizeof magic - got, p.string());
        if (n == 0) break;
        got += n;
      }
    }
    auto starts = [&](std::initializer_list<unsigned char> m) {
      if (got < m.size()) return false;
      return std::equal(m.begin(), m.end(), magic);
    };
    if (starts({0x1f, 0x8b})) return std::string(media_type::kOciLayerGzip);
    if (starts({0x28, 0xb5, 0x2f, 0xfd})) return std::string(media_type::kOciLayerZstd);
    if (starts({0xfd, '7', 'z', 'X', 'Z', 0x00}) || starts({'B', 'Z', 'h'}))
      fail("layer " + in_quotes(name) +
           " is compressed with xz or bzip2, which OCI images cannot carry; recompress it");
    return std::string(media_type::kOciLayerTar);
  }

  std::filesystem::path file_;
  const BlobStore& into_;
  StagingStore staging_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, StagedFile> files_;
  std::map<std::string, std::string> links_;
};

}  // namespace

DockerArchiveRef DockerArchiveRef::parse(std::string_view text) {
  if (text.substr(0, kScheme.size()) != kScheme)
    throw UsageError(in_quotes(text) +
                     " is not a docker-archive reference (expected docker-archive:FILE[:REF])");
  std::string_view rest = text.substr(kScheme.size());
  DockerArchiveRef out;
  std::size_t colon = rest.find(':');
  out.file = std::string(rest.substr(0, colon));
  if (out.file.empty()) throw UsageError(in_quotes(text) + ": empty file name");
  if (colon == std::string_view::npos) return out;
  out.ref = std::string(rest.substr(colon + 1));
  if (out.ref.empty()) throw UsageError(in_quotes(text) + ": empty reference after ':'");
  if (out.ref.front() == '@') {
    std::string_view digits = std::string_view(out.ref).substr(1);
    if (digits.empty() || digits.size() > 9 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos)
      throw UsageError(in_quotes(text) + ": \"@\" must be followed by an image number (@0, @1, ...)");
    return out;
  }
  Reference r;
  try {
    r = Reference::parse(out.ref);
  } catch (const Error& e) {
    throw UsageError(in_quotes(text) + ": " + e.what());
  }
  if (r.digest)
    throw UsageError(in_quotes(text) + ": a docker-archive names images by tag, not by digest");
  return out;
}

std::string DockerArchiveRef::str() const {
  return std::string(kScheme) + file.string() + (ref.empty() ? "" : ":" + ref);
}

std::string docker_repo_tag(const Reference& ref) {
  if (ref.digest || ref.tag.empty())
    throw Error("a docker-archive names images by tag: " + in_quotes(ref.str()) + " has a digest");
  std::string repo = ref.registry + "/" + ref.repository;
  if (ref.registry == kDockerHub) {
    repo = ref.repository;
    if (repo.compare(0, kOfficialPrefix.size(), kOfficialPrefix) == 0 &&
        repo.find('/', kOfficialPrefix.size()) == std::string::npos)
      repo.erase(0, kOfficialPrefix.size());
  }
  return repo + ":" + ref.tag;
}

namespace {

/// The manifest's bytes and parsed form, checked to be one container image.
Manifest load_image_manifest(const BlobStore& store, const Descriptor& manifest, std::string& bytes) {
  if (media_type::is_index(manifest.media_type))
    throw Error("manifest " + manifest.digest.str() +
                " is an image index; a docker-archive holds one platform's image (pick one)");
  bytes = store.read(manifest.digest);
  if (static_cast<std::int64_t>(bytes.size()) != manifest.size)
    throw Error("manifest " + manifest.digest.str() + " has " + std::to_string(bytes.size()) +
                " bytes, its descriptor says " + std::to_string(manifest.size));
  Manifest m;
  try {
    m = Manifest::parse(bytes);
  } catch (const Error& e) {
    throw Error("manifest " + manifest.digest.str() + ": " + e.what());
  }
  if (m.config.media_type != media_type::kOciConfig && m.config.media_type != media_type::kDockerConfig)
    throw Error("manifest " + manifest.digest.str() + " is not a container image (config type " +
                in_quotes(m.config.media_type) + ")");
  return m;
}

/// What goes into the archive besides the blobs, and the blobs themselves.
struct ArchiveContent {
  const Descriptor& manifest;
  std::string manifest_bytes;
  Manifest m;
  std::vector<std::string> familiar;  ///< manifest.json's RepoTags
  std::map<std::string, std::map<std::string, std::string>> repositories;
  ImageIndex index;
  std::map<Digest, Descriptor> blobs;  ///< other than the manifest, by name (each once)
};

// index.json: one entry per name, as Docker 25 writes it.
ImageIndex archive_index(const Descriptor& manifest, const Manifest& m, const std::vector<Reference>& refs) {
  Descriptor base;
  base.media_type = manifest.media_type.empty()
                        ? (m.media_type.empty() ? std::string(media_type::kOciManifest) : m.media_type)
                        : manifest.media_type;
  base.digest = manifest.digest;
  base.size = manifest.size;
  base.platform = manifest.platform;
  base.platform_unknown = manifest.platform_unknown;
  base.artifact_type = manifest.artifact_type;
  ImageIndex index;
  index.media_type = std::string(media_type::kOciIndex);
  for (const auto& r : refs) {
    Descriptor d = base;
    d.annotations[kContainerdNameKey] = r.str();
    d.annotations[kRefNameKey] = r.tag;
    index.manifests.push_back(std::move(d));
  }
  if (refs.empty()) index.manifests.push_back(base);
  return index;
}

ArchiveContent archive_content(const BlobStore& store, const Descriptor& manifest,
                               const std::vector<std::string>& repo_tags) {
  ArchiveContent c{manifest, {}, {}, {}, {}, {}, {}};
  c.m = load_image_manifest(store, manifest, c.manifest_bytes);
  std::vector<Reference> refs = parse_repo_tags(repo_tags);
  // manifest.json and repositories use Docker's familiar names.
  for (const auto& r : refs) {
    c.familiar.push_back(docker_repo_tag(r));
    const std::string& full = c.familiar.back();
    if (!c.m.layers.empty())
      c.repositories[full.substr(0, full.size() - r.tag.size() - 1)][r.tag] = c.m.layers.back().digest.hex();
  }
  c.index = archive_index(manifest, c.m, refs);
  c.blobs.emplace(c.m.config.digest, c.m.config);
  for (const auto& l : c.m.layers) c.blobs.emplace(l.digest, l);
  c.blobs.erase(manifest.digest);
  return c;
}

void write_archive_tar(TarOut& tar, const BlobStore& store, const ArchiveContent& c) {
  tar.directory("blobs/");
  tar.directory("blobs/sha256/");
  // Sorted by name: the manifest goes where its digest puts it.
  bool manifest_done = false;
  for (const auto& [digest, desc] : c.blobs) {
    if (!manifest_done && c.manifest.digest < digest) {
      tar.file(blob_entry_name(c.manifest.digest), c.manifest_bytes);
      manifest_done = true;
    }
    tar.blob(store, desc);
  }
  if (!manifest_done) tar.file(blob_entry_name(c.manifest.digest), c.manifest_bytes);
  tar.file("index.json", c.index.to_json());
  tar.file("manifest.json", manifest_json_text(c.m, c.familiar));
  tar.file("oci-layout", kLayoutHeader);
  tar.file("repositories", repositories_text(c.repositories));
  tar.close();
}

}  // namespace

void write_docker_archive(const std::filesystem::path& file, const BlobStore& store,
                          const Descriptor& manifest, const std::vector<std::string>& repo_tags) {
  // Refused before anything is written: `docker load` takes only images.
  if (media_type::is_manifest(manifest.media_type) && !is_image_manifest(store.read(manifest.digest)))
    throw Error("cannot write docker-archive " + file.string() + ": " + manifest.digest.str() +
                " is an artifact, not an image; copy it to oci:DIR or a registry");
  try {
    const ArchiveContent content = archive_content(store, manifest, repo_tags);
    AtomicFile out(file);
    FileSink sink(out);
    TarOut tar(sink);
    write_archive_tar(tar, store, content);
    out.commit();
  } catch (const Error& e) {
    throw Error("cannot write docker-archive " + file.string() + ": " + e.what());
  }
}

LoadedArchiveImage read_docker_archive(const std::filesystem::path& file, const BlobStore& into,
                                       const std::string& ref) {
  ArchiveReader reader(file, into);
  return reader.load(ref);
}

}  // namespace dockless
