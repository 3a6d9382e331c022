#include "src/build/build_state.h"

#include <sys/stat.h>

#include <cstdio>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/digest.h"

namespace dockless {

namespace fs = std::filesystem;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string format_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

bool path_exists(const fs::path& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

Reference parse_ref_option(const std::string& option, const std::string& text) {
  try {
    return Reference::parse(text.rfind("docker://", 0) == 0 ? text.substr(9) : text);
  } catch (const Error& e) {
    throw UsageError(option + ": " + e.what());
  }
}

BuildState::BuildState(const BuildOptions& options)
    : opt(options),
      transfer(options.transfer),
      cache_dir(options.transfer.cache_dir),
      store(cache_dir),
      layer_cache(cache_dir / "layers", store),
      cache(layer_cache, store, transfer, options.no_cache, !options.outputs.empty()) {}

BuildState::~BuildState() { remove_tree(work_dir); }

TarOptions BuildState::layer_tar() const {
  TarOptions t;
  t.mtime_clamp = clamp;
  return t;
}

LayerBlob BuildState::write_one(const std::function<void(ByteSink&)>& produce) {
  return write_layer(produce, opt.compression, store);
}

LayerBlob BuildState::write_streamed(const std::function<void(ByteSink&)>& produce,
                                     std::shared_ptr<StreamedUpload>& upload) {
  if (stream_client == nullptr) return write_one(produce);
  auto file = std::make_shared<GrowingFile>();
  upload = std::make_shared<StreamedUpload>(*stream_client, stream_repo, file);
  return write_layer(produce, opt.compression, store, {}, file);
}

BuildCacheIndex BuildState::cache_meta() const {
  BuildCacheIndex meta;
  meta.platform = platform.str();
  meta.uv_version = uv.short_version;
  meta.uv_cache_dir = spec().uv.cache_dir;
  return meta;
}

std::string file_digest(const fs::path& file) {
  try {
    return sha256_of(read_file(file)).str();
  } catch (const Error&) {
    return "missing";
  }
}

}  // namespace dockless
