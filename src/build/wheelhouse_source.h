// Wheels from the registry (`--wheels-from REF`, `uv.wheels-from`): a build
// that must run uv takes the distribution files uv.lock names from a
// wheelhouse artifact (docs: /work/wheelhouse-format.md; `dockless bundle
// --wheels` writes it) instead of the URLs in uv.lock. Each file the lock
// names whose hash is a layer digest of the wheelhouse is fetched by digest
// into the cache's blob store (once, verified; `cache prune` sees it as a
// blob), shown under its file name in a directory bound read-only into the
// sandbox, and its URL in the private uv.lock (lock_mirror.h) becomes a
// file:// URL of it. uv 0.13 takes file:// URLs for registry packages in
// `uv sync --frozen`, checks their hashes, and caches them under the index
// as before. Files the wheelhouse lacks keep their URLs. A route, not an
// input: no cache key changes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "oci/descriptor.h"
#include "src/build/lock_mirror.h"

namespace dockless {

struct BuildState;

inline constexpr const char* kWheelhouseArtifactType = "application/vnd.dockless.wheelhouse.v1";

/// One distribution file uv.lock names: its URL and `hash` ("sha256:<hex>").
struct LockedFile {
  std::string url;
  std::string hash;
};

/// The wheels and sdists of uv.lock that have a sha256 hash, in document
/// order. `file` names it in errors (not TOML).
std::vector<LockedFile> locked_files(std::string_view lock_text, const std::string& file = "uv.lock");

/// The layers of a wheelhouse manifest; throws Error("<what>: ...") when it
/// is not one (another artifactType, an index, a layer without a file name).
std::vector<Descriptor> wheelhouse_layers(std::string_view manifest, const std::string& what);

/// The file name the URL ends with, percent-decoded ("" when it has none or
/// it could not be a file name: "/", NUL, "." or "..").
std::string url_file_name(const std::string& url);

/// What route_wheelhouses made: the routes for the private uv.lock and the
/// directory (and its path in the sandbox) that holds the files.
struct WheelhouseRoute {
  UrlRoutes routes;
  std::filesystem::path host_dir;
  std::string sandbox_dir;
  std::size_t files = 0, fetched = 0;
};

/// For a build that runs uv: reads each wheelhouse of `refs` (REGISTRY/REPO[:TAG|@DIGEST]
/// or oci:DIR[:TAG]), fetches the files the project's uv.lock names into
/// s.store, and lays them out under s.work_dir/wheelhouse. `sandbox_dir` is
/// where uv sees that directory. Empty routes without refs or uv.lock.
WheelhouseRoute route_wheelhouses(BuildState& s, const std::vector<std::string>& refs,
                                  const std::string& sandbox_dir);

/// For a build about to make environments with uv: routes the --wheels-from
/// files (route_wheelhouses) into s.mirrored_lock, mirrors kept, and binds
/// their directory read-only. Nothing without --wheels-from.
void use_wheelhouses(BuildState& s);

}  // namespace dockless
