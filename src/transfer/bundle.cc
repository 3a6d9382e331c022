// `dockless bundle` (declared in bundle.h); unbundle is in unbundle.cc.
#include "src/transfer/bundle.h"

#include <fcntl.h>
#include <set>
#include <unistd.h>

#include "base/error.h"
#include "base/file_util.h"
#include "base/parallel.h"
#include "layers/byte_sink.h"
#include "layers/tar_writer.h"
#include "oci/content_graph.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/reference.h"
#include "oci/referrers.h"
#include "src/transfer/progress.h"
#include "src/transfer/wheelhouse.h"

namespace dockless {

namespace {

namespace ba = bundle_annotation;

/// What dockless's --cache-to writes (src/cache/registry_cache.h, which this
/// library may not include).
constexpr std::string_view kBuildCacheType = "application/vnd.dockless.build-cache.v1+json";

/// "team/base:12" (or "team/base@sha256:..."): where an image goes, without
/// the registry.
std::string ref_name_of(const Reference& r) {
  return r.tag.empty() ? r.repository + "@" + r.digest->str() : r.repository + ":" + r.tag;
}

/// Checks REPO[:TAG] (no registry) and adds ":latest" when no tag is given.
std::string checked_ref_name(const std::string& name, const std::string& option) {
  if (name.empty() || name.front() == '/' || name.find("://") != std::string::npos)
    throw UsageError(option + " \"" + name + "\": expected REPOSITORY[:TAG], e.g. wheels/app:1");
  Reference r;
  try {
    r = Reference::parse("bundle.invalid/" + name);
  } catch (const Error& e) {
    throw UsageError(option + " \"" + name + "\": " + e.what());
  }
  if (r.digest) throw UsageError(option + " \"" + name + "\": a name takes a tag, not a digest");
  return ref_name_of(r);
}

Reference checked_reference(const std::string& text, const std::string& option) {
  try {
    return Reference::parse(text);
  } catch (const Error& e) {
    throw UsageError(option + " \"" + text + "\": " + e.what());
  }
}

/// Streams a tar into an AtomicFile.
class FileSink : public ByteSink {
 public:
  explicit FileSink(AtomicFile& f) : f_(f) {}
  void write(const void* data, std::size_t size) override { f_.write(data, size); }
  void finish() override {}

 private:
  AtomicFile& f_;
};

class Bundler {
 public:
  Bundler(const BundleOptions& o, const std::filesystem::path& dir)
      : opt_(o), tally_(o.transfer.progress), layout_(OciLayout::open_or_create(dir)) {
    opt_.transfer.progress = &tally_;
  }

  void add_registry(const std::string& text, const std::string& kind);
  void add_wheelhouse();
  void add_python_archive(const std::filesystem::path& file);
  BundleSummary summary() const;
  Progress& progress() { return progress_; }
  /// Drops the index.json entries this run did not add (a work dir left by
  /// an interrupted bundle of other things); returns the blobs the rest use.
  std::set<std::string> keep_only_added() const;

 private:
  void tag(Descriptor d, const std::string& name, std::map<std::string, std::string> notes) {
    added_.insert(name.empty() ? d.digest.str() : name);
    d.annotations = std::move(notes);
    layout_.set_tag(std::move(d), name);
  }
  Descriptor put_artifact(const Manifest& m) {
    std::string bytes = m.to_json();
    Descriptor d;
    d.media_type = std::string(media_type::kOciManifest);
    d.digest = layout_.blobs().put(bytes);
    d.size = static_cast<std::int64_t>(bytes.size());
    d.artifact_type = m.artifact_type;
    return d;
  }

  BundleOptions opt_;
  TransferTally tally_;
  OciLayout layout_;
  Progress progress_{&tally_};
  std::set<std::string> added_;  // ref names, and digests of untagged entries
};

std::set<std::string> Bundler::keep_only_added() const {
  ImageIndex idx = layout_.read_index();
  std::vector<Descriptor> kept;
  std::set<std::string> used;
  for (auto& e : idx.manifests) {
    if (!added_.count(e.ref_name().empty() ? e.digest.str() : e.ref_name())) continue;
    ContentGraph g = content_graph(layout_.blobs(), e, "bundle");
    for (const auto* list : {&g.manifests, &g.blobs})
      for (const auto& d : *list) used.insert(d.digest.hex());
    kept.push_back(std::move(e));
  }
  if (kept.size() != idx.manifests.size()) {
    idx.manifests = std::move(kept);
    write_file_atomic(layout_.dir() / "index.json", idx.to_json());
  }
  return used;
}

void Bundler::add_registry(const std::string& text, const std::string& kind) {
  const Reference ref = checked_reference(text, "--" + kind);
  ImageTransfer t(opt_.transfer);
  LocalImage image = t.load(ImageLocation{ref}, layout_.blobs());
  const std::string what = ref.str();
  if (kind == "cache") {
    Manifest m = Manifest::parse(read_manifest(layout_.blobs(), image.top, what));
    if (m.artifact_type != kBuildCacheType && m.config.media_type != kBuildCacheType)
      throw Error("--cache " + what + " is not a dockless build cache (written by build --cache-to)");
  }
  std::vector<Referrer> referrers;
  if (opt_.transfer.referrers) referrers = t.load_referrers(ImageLocation{ref}, image);
  for (const auto& r : referrers)
    tag(r.manifest, "", {{ba::kKind, "referrer"},
                         {ba::kSource, ref.registry + "/" + ref.repository + "@" + r.manifest.digest.str()}});
  Descriptor top = image.top;
  top.annotations.clear();
  tag(top, ref_name_of(ref), {{ba::kImageName, ref.str()}, {ba::kKind, kind}, {ba::kSource, ref.str()}});
}

void Bundler::add_wheelhouse() {
  const std::filesystem::path lock = opt_.wheels_project / "uv.lock";
  std::string text;
  try {
    text = read_file(lock);
  } catch (const Error& e) {
    throw Error("--wheels: " + std::string(e.what()));
  }
  std::vector<LockedFile> files = locked_files(text, lock.string());
  std::string name = opt_.wheels_ref;
  if (name.empty()) {
    std::string dir = std::filesystem::absolute(opt_.wheels_project).lexically_normal().filename().string();
    if (dir.empty()) dir = std::filesystem::absolute(opt_.wheels_project).parent_path().filename().string();
    for (auto& c : dir) c = std::isalnum(static_cast<unsigned char>(c)) ? std::tolower(c) : '-';
    name = "wheels/" + dir;
  }
  name = checked_ref_name(name, "--wheels-ref");
  parallel_for_each(files, opt_.transfer.jobs, [&](const LockedFile& f) {
    std::string id = f.digest.str();
    progress_.start(id, f.name, f.size < 0 ? 0 : static_cast<std::uint64_t>(f.size));
    if (layout_.blobs().contains(f.digest)) return progress_.finish(id, "already here");
    download_locked_file(f, layout_.blobs(), opt_.transfer.registry);
    progress_.finish(id, "pulled");
  });
  std::string bytes = wheelhouse_manifest(files, sha256_of(text).hex(), layout_.blobs());
  Descriptor d;
  d.media_type = std::string(media_type::kOciManifest);
  d.digest = layout_.blobs().put(bytes);
  d.size = static_cast<std::int64_t>(bytes.size());
  d.artifact_type = std::string(media_type::kWheelhouse);
  progress_.note(std::to_string(files.size()) + " file(s) of " + lock.string() + " as " + name);
  tag(d, name, {{ba::kKind, "wheelhouse"}, {ba::kSource, std::filesystem::absolute(lock).string()}});
}

void Bundler::add_python_archive(const std::filesystem::path& file) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw Error("--python-archive " + file.string() + ": " + std::strerror(errno));
  BlobWriter w(layout_.blobs());
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error("--python-archive " + file.string() + ": " + std::strerror(errno));
    if (n == 0) break;
    w.write(buf.data(), static_cast<std::size_t>(n));
  }
  Manifest m;
  m.media_type = std::string(media_type::kOciManifest);
  m.artifact_type = std::string(media_type::kPythonArchive);
  m.config.media_type = std::string(media_type::kOciEmpty);
  m.config.digest = layout_.blobs().put("{}");
  m.config.size = 2;
  Descriptor layer;
  layer.media_type = "application/octet-stream";
  layer.size = static_cast<std::int64_t>(w.size());
  layer.digest = w.commit();
  std::string title = file.filename().string();
  layer.annotations["org.opencontainers.image.title"] = title;
  m.layers.push_back(layer);
  // A tag from the file name: [A-Za-z0-9_.-], at most 128 characters.
  std::string tag_text;
  for (char c : title) tag_text += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
  if (tag_text.front() == '.' || tag_text.front() == '-') tag_text.insert(0, "_");
  tag_text.resize(std::min<std::size_t>(tag_text.size(), 128));
  tag(put_artifact(m), "python:" + tag_text,
      {{ba::kKind, "python-archive"}, {ba::kSource, std::filesystem::absolute(file).string()}});
}

BundleSummary Bundler::summary() const {
  BundleSummary s;
  std::set<std::string> manifests, blobs;
  for (const auto& e : layout_.read_index().manifests) {
    ++s.entries;
    ContentGraph g = content_graph(layout_.blobs(), e, "bundle");
    for (const auto& m : g.manifests) manifests.insert(m.digest.str());
    for (const auto& b : g.blobs)
      if (blobs.insert(b.digest.str()).second) s.bytes += static_cast<std::uint64_t>(b.size);
  }
  s.manifests = manifests.size();
  s.blobs = blobs.size();
  s.fetched = tally_.moved();
  s.fetched_bytes = tally_.moved_bytes();
  s.present = tally_.present();
  return s;
}

/// FILE.tar <- the tree of dir, through a temp name, fsync and rename.
/// Only the layout files and the blobs in `blobs` (hex digests) go in.
void write_bundle_tar(const std::filesystem::path& dir, const std::filesystem::path& tar,
                      const std::set<std::string>& blobs) {
  AtomicFile f(tar);
  FileSink sink(f);
  TarOptions o;
  o.include = [&blobs](const std::string& rel, bool is_dir) {
    if (is_dir) return rel == "blobs" || rel == "blobs/sha256";
    if (rel == "oci-layout" || rel == "index.json") return true;
    return rel.rfind("blobs/sha256/", 0) == 0 && blobs.count(rel.substr(13)) > 0;
  };
  write_directory_tar(dir, o, sink);
  f.commit();
}

}  // namespace

void TransferTally::report(const ProgressEvent& e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (e.kind == ProgressEvent::Kind::kStarted) sizes_[e.id] = e.total;
    if (e.kind == ProgressEvent::Kind::kFinished) {
      std::uint64_t size = sizes_[e.id];
      if (e.state == "pulled" || e.state == "pushed") {
        ++moved_;
        moved_bytes_ += size;
      } else if (e.state.rfind("already", 0) == 0 || e.state.rfind("mounted", 0) == 0) {
        ++present_;
        present_bytes_ += size;
      }
    }
  }
  if (next_) next_->report(e);
}

std::string BundleSummary::str() const {
  return std::to_string(entries) + " entries, " + std::to_string(manifests) + " manifests, " +
         std::to_string(blobs) + " blobs, " + human_bytes(bytes) + "; fetched " + std::to_string(fetched) +
         " blobs (" + human_bytes(fetched_bytes) + "), " + std::to_string(present) +
         " already in the bundle (counted per image)";
}

BundleSummary run_bundle(const BundleOptions& options) {
  if (options.images.empty() && options.caches.empty() && options.wheels_project.empty() &&
      options.python_archives.empty())
    throw UsageError("bundle: nothing to bundle (give --image, --cache, --wheels or --python-archive)");
  if (options.output.empty()) throw UsageError("bundle: --output DIR or FILE.tar is required");
  const bool tar = options.output.extension() == ".tar";
  std::filesystem::path dir = options.output;
  if (tar) dir += ".partial";  // kept on failure: a rerun resumes from it
  if (!tar && std::filesystem::exists(dir) && !std::filesystem::is_directory(dir))
    throw Error("bundle: " + dir.string() + " exists and is not a directory");
  // Bad input fails before the work dir exists.
  for (const auto& r : options.images) checked_reference(r, "--image");
  for (const auto& r : options.caches) checked_reference(r, "--cache");
  if (!options.wheels_project.empty())
    locked_files(read_file(options.wheels_project / "uv.lock"), (options.wheels_project / "uv.lock").string());
  if (!options.wheels_ref.empty()) checked_ref_name(options.wheels_ref, "--wheels-ref");
  for (const auto& f : options.python_archives)
    if (!std::filesystem::is_regular_file(f)) throw Error("--python-archive " + f.string() + ": not a file");
  Bundler b(options, dir);
  for (const auto& r : options.images) b.add_registry(r, "image");
  for (const auto& r : options.caches) b.add_registry(r, "cache");
  if (!options.wheels_project.empty()) b.add_wheelhouse();
  for (const auto& f : options.python_archives) b.add_python_archive(f);
  std::set<std::string> blobs;
  if (tar) blobs = b.keep_only_added();
  BundleSummary s = b.summary();
  if (tar) {
    b.progress().note("writing " + options.output.string());
    write_bundle_tar(dir, options.output, blobs);
    remove_tree(dir);
  }
  return s;
}

}  // namespace dockless
