// What a build in progress knows, shared by its steps (build_executor.cc
// runs them in order; env_builder, uv_layers and build_outputs implement
// them): the options, the stores and caches, the spec and source, the base,
// uv, the plan, and the layers and outputs made so far.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "layers/layer_writer.h"
#include "layers/tar_writer.h"
#include "oci/blob_store.h"
#include "oci/platform.h"
#include "oci/reference.h"
#include "src/build/base_image.h"
#include "src/build/build_command.h"
#include "src/build/build_plan.h"
#include "src/build/source_layer.h"
#include "src/build/uv_tool.h"
#include "src/cache/build_cache.h"
#include "src/cache/layer_cache.h"
#include "src/cache/registry_cache.h"
#include "src/sandbox/sandbox.h"
#include "src/transfer/blob_pusher.h"
#include "src/transfer/transfer.h"

namespace dockless {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t);
/// "1.23 s"
std::string format_seconds(double s);
bool path_exists(const std::filesystem::path& p);
/// A registry reference given to `option` ([docker://]REF); a bad one is a usage error.
Reference parse_ref_option(const std::string& option, const std::string& text);

/// One layer of the image after the base's, as the report lists it.
struct LayerRecord {
  std::string name;
  LayerBlob blob;
  std::string origin;  ///< "hit" (local cache), "remote" (--cache-from), "miss" (built)
  double seconds = 0;
  double made = 0;  ///< when it was final (made, or found in a cache), in seconds since the build's start
};

struct BuildState {
  explicit BuildState(const BuildOptions& options);
  ~BuildState();  ///< removes the work directory
  BuildState(const BuildState&) = delete;
  BuildState& operator=(const BuildState&) = delete;

  void note(const std::string& line) { transfer.progress().note(line); }
  void warn(const std::string& line) { transfer.progress().warn(line); }
  const BuildSpec& spec() const { return source.spec; }
  /// Where the venv of `env` is kept on this machine, by its key.
  std::filesystem::path env_dir(const PlannedEnvironment& env) const { return cache_dir / "envs" / env.key; }
  /// Tar options every layer of the build starts from.
  TarOptions layer_tar() const;
  /// Compresses a tar that `produce` writes into the store.
  LayerBlob write_one(const std::function<void(ByteSink&)>& produce);
  /// write_one for a large layer that --push is to send: its blob also goes
  /// into an upload session as it is written (read back from the store's
  /// temp file), so the registry takes it in while it is compressed.
  /// `upload` gets that upload (null without --push), for push_layer_ahead.
  LayerBlob write_streamed(const std::function<void(ByteSink&)>& produce, std::shared_ptr<StreamedUpload>& upload);
  /// What a registry cache's uv cache layers must match to seed ours.
  BuildCacheIndex cache_meta() const;

  BuildOptions opt;
  ImageTransfer transfer;
  std::filesystem::path cache_dir;
  BlobStore store;
  LayerCache layer_cache;
  BuildCache cache;

  std::filesystem::path work_dir;  ///< this build's scratch space, removed at the end
  ProjectSource source;
  std::int64_t clamp = kDefaultMtimeClamp;
  Platform platform;
  BaseImage base;
  UvTool uv;
  std::filesystem::path host_uv_cache;  ///< persistent, per platform and uv version
  std::vector<std::string> passthrough;
  std::vector<BindMount> extra_binds;
  std::filesystem::path mirrored_lock;  ///< uv.lock with mirrored URLs (lock_mirror.h), or ""
  /// The --wheels-from loopback server (wheelhouse_server.h), up until the build ends; null: none.
  std::shared_ptr<void> wheelhouse_server;
  std::unique_ptr<SourceLayer> source_layer;

  BuildPlan plan;
  std::vector<double> slot_seconds;  ///< per plan slot: lookup and build time
  std::vector<LayerRecord> layers;   ///< after the base's, in image order
  std::vector<std::string> output_names;
  int uv_runs = 0;
  int step_runs = 0;
  Clock::time_point started = Clock::now();  ///< the build's start (report times count from it)
  /// When each environment made in this build ran uv, in seconds since
  /// `started` (the report's "environments": shows how they overlapped).
  struct EnvironmentRun {
    std::string name;
    double start = 0, end = 0;
  };
  std::vector<EnvironmentRun> environment_runs;
  /// --push: the uploads running while the build goes on (push_pipeline.h),
  /// then what they pushed (the final push skips it) and when.
  std::unique_ptr<BlobPusher> pusher;
  /// --push: where a layer streams as it is made (the first tag's registry
  /// and repository; the client is made on the build's thread).
  RegistryClient* stream_client = nullptr;
  std::string stream_repo;
  std::set<std::string> pushed_blobs;
  std::map<std::string, TagContents> tags_read;  ///< what each tag named when the pushes began
  std::vector<UploadTiming> uploads;
  /// digest -> when a layer written inside a slot was final (a uv cache
  /// part), before its slot ends; in seconds since `started`.
  std::map<std::string, double> made_at;
  /// The base's root filesystem (snapshot), once a step or uv run needed it.
  std::filesystem::path rootfs;

  /// A target this machine cannot execute (foreign_platform_build.h).
  struct Foreign {
    bool active = false;    ///< the target's architecture is not the host's
    bool emulated = false;  ///< uv runs in the target's own base, under binfmt_misc
    Platform host;
    std::optional<BaseImage> twin;  ///< the base for the host platform: uv runs there
    std::vector<std::string> sdist_only;  ///< uv.lock's packages with no wheel for the target
    std::string python_platform;          ///< uv's --python-platform, once uv runs
  } foreign;
  /// The uv shipped in the image: `uv` itself, or the target platform's.
  UvTool image_uv;
};

/// The SHA-256 of a file's bytes as hex, or "missing" when it cannot be read
/// (a key input: a file that appears later changes the key).
std::string file_digest(const std::filesystem::path& file);

}  // namespace dockless
