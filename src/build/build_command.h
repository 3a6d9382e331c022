// `dockless build`: a uv project's image — base layers as they are, then uv,
// the uv cache (split by which venvs use it), one layer per venv, and the
// source tree — with every layer cached by the hash of its inputs.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "layers/compression.h"
#include "oci/digest.h"
#include "src/build/lock_mirror.h"
#include "src/build/step_inputs.h"
#include "src/sandbox/sandbox.h"
#include "src/transfer/transfer.h"

namespace dockless {

struct BuildOptions {
  std::filesystem::path project_dir = ".";  ///< DIR / --source
  std::filesystem::path spec_file;          ///< --file; "" = dockless.toml or pyproject.toml
  std::vector<std::string> overrides;       ///< --set key=value
  /// --arg NAME=VALUE in command-line order (a later one wins): for load_build_spec.
  std::vector<std::pair<std::string, std::string>> build_args;
  StepInputs step_inputs;                   ///< --context NAME=DIR, --secret id=NAME,src=FILE
  std::string git_url, git_ref;             ///< --git / --git-ref
  std::vector<std::string> skip;            ///< --skip NAME|TAG
  std::vector<std::string> outputs;         ///< --output oci:DIR[:TAG] | docker-archive:FILE[:REF]
  std::vector<std::string> tags;            ///< --tag REF (pushed with --push)
  bool push = false;
  /// --platform os/arch[,os/arch...]; "" = spec, else the host's. Several: an image index.
  std::string platform;
  Isolation isolation = Isolation::kUserns;
  bool force_host = false;
  std::filesystem::path uv_binary;          ///< --uv; "" = uv on PATH
  /// --uv PLATFORM=PATH: the uv binary shipped in that platform's image
  /// (default: the uv wheel for it from the index, platform_uv.h).
  std::vector<std::pair<std::string, std::filesystem::path>> platform_uvs;
  CompressionOptions compression;
  TransferOptions transfer;                 ///< registry options, cache dir, jobs, progress sink
  std::filesystem::path report_file;        ///< --report FILE.json
  bool explain_cache = false;               ///< print every layer's key inputs
  bool no_cache = false;                    ///< --no-cache: rebuild every venv and layer
  std::vector<std::string> cache_from;      ///< --cache-from REF: registry build caches to read
  std::string cache_to;                     ///< --cache-to REF: where to write this build's cache
  std::vector<IndexMirror> index_mirrors;   ///< --index-mirror ORIGINAL=MIRROR, in command-line order
  /// --wheels-from REF: wheelhouse artifacts uv.lock's files are taken from (wheelhouse_source.h).
  std::vector<std::string> wheels_from;
  /// --offline: no network but the registries named; uv runs with UV_OFFLINE=1,
  /// steps without network, --git from a local repository only.
  bool offline = false;
  /// --sbom: a CycloneDX SBOM of the image, attached to every oci: output and push as a referrer.
  bool sbom = false;
};

/// Builds and writes every output; returns the image's manifest digest.
Digest run_build(const BuildOptions& options);

}  // namespace dockless
