#include "src/build/source_layer.h"

#include <unistd.h>

#include "base/file_util.h"
#include "layers/hashing_sink.h"
#include "src/build/git_source.h"

namespace dockless {

namespace fs = std::filesystem;

ProjectSource load_project_source(const BuildOptions& opt, const fs::path& cache_dir, const fs::path& work_dir) {
  ProjectSource s;
  if (!opt.git_url.empty()) {
    // The spec comes from the repository at that ref: no local checkout needed.
    GitCheckout co = fetch_git_source(GitSource{opt.git_url, opt.git_ref}, cache_dir, work_dir / "source",
                                      /*keep_git_dir=*/true);
    s.spec = load_build_spec(co.tree, opt.spec_file, opt.overrides, opt.build_args);
    s.git_url = opt.git_url;
    s.git_commit = co.commit;
    if (!s.spec.source.keep_git_dir) remove_tree(co.tree / ".git");
    s.tree = co.tree;
    s.project_root = co.tree;
  } else {
    s.spec = load_build_spec(opt.project_dir, opt.spec_file, opt.overrides, opt.build_args);
    if (!s.spec.source.git.empty()) {
      GitCheckout co = fetch_git_source(GitSource{s.spec.source.git, s.spec.source.ref}, cache_dir,
                                        work_dir / "source", s.spec.source.keep_git_dir);
      s.git_url = s.spec.source.git;
      s.git_commit = co.commit;
      s.tree = co.tree;
    } else {
      s.tree = fs::canonical(s.spec.file.parent_path() / s.spec.source.path);
    }
    s.project_root = s.tree;
  }
  s.ignore = IgnoreRules::load(s.tree / s.spec.source.ignore_file);
  return s;
}

/// Keeps a copy of what passes, up to a limit: the source tree's tar, hashed
/// for its key, is compressed from memory on a miss instead of walked again.
class BoundedCopy : public ByteSink {
 public:
  explicit BoundedCopy(std::size_t limit) : limit_(limit) {}
  void write(const void* data, std::size_t size) override {
    if (!complete_) return;
    if (bytes_.size() + size > limit_) {
      complete_ = false;
      std::string().swap(bytes_);
      return;
    }
    bytes_.append(static_cast<const char*>(data), size);
  }
  void finish() override {}
  /// Whether every byte was kept.
  bool complete() const { return complete_; }
  const std::string& bytes() const { return bytes_; }

 private:
  std::size_t limit_;
  std::string bytes_;
  bool complete_ = true;
};

SourceLayer::SourceLayer(const ProjectSource& source, std::int64_t mtime_clamp)
    : tree_(source.tree), rules_(source.ignore) {
  tar_.mtime_clamp = mtime_clamp;
  tar_.dest = source.spec.source.dest;
  bool keep_git = source.spec.source.keep_git_dir;
  // A venv inside the source's destination (/app/.venv, uv's Docker layout)
  // is its own layer below the source: the source layer must neither carry
  // a host copy of it nor hide it.
  std::string dest = source.spec.source.dest;
  if (dest.empty() || dest.back() != '/') dest += '/';
  for (const auto& v : source.spec.venvs)
    if (v.path.rfind(dest, 0) == 0) venv_dirs_.push_back(v.path.substr(dest.size()));
  const IgnoreRules& rules = rules_;
  const std::vector<std::string>& venvs = venv_dirs_;
  auto left_out = [&venvs, keep_git](const std::string& rel) {
    if (!keep_git && (rel == ".git" || rel.rfind(".git/", 0) == 0)) return true;
    for (const auto& v : venvs)
      if (rel == v || rel.rfind(v + "/", 0) == 0) return true;
    return false;
  };
  tar_.include = [&rules, left_out](const std::string& rel, bool is_dir) {
    return !left_out(rel) && !rules.excluded(rel, is_dir);
  };
  tar_.descend_excluded = [&rules, left_out](const std::string& rel) {
    return !left_out(rel) && rules.may_reinclude_below(rel);
  };
  copy_ = std::make_unique<BoundedCopy>(std::size_t{256} << 20);
  HashingSink probe(copy_.get());
  write_directory_tar(tree_, tar_, probe);
  tar_digest_ = probe.digest().str();
}

SourceLayer::~SourceLayer() = default;

LayerBlob SourceLayer::write(const CompressionOptions& compression, BlobStore& store) const {
  return write_layer(
      [this](ByteSink& sink) {
        if (!copy_ || !copy_->complete()) {
          write_directory_tar(tree_, tar_, sink);
          return;
        }
        sink.write(copy_->bytes().data(), copy_->bytes().size());
        sink.finish();
      },
      compression, store);
}

void SourceLayer::drop_copy() { copy_.reset(); }

}  // namespace dockless
