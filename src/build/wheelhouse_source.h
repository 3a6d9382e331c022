// Wheels from the registry (`--wheels-from REF`): a build that must run uv
// takes the distribution files uv.lock names from a wheelhouse artifact
// (the fixed format `dockless bundle --wheels` writes) instead of the URLs
// in uv.lock. Each file the lock names whose hash is a layer digest of the
// wheelhouse is fetched by digest into the cache's blob store (once,
// verified; `cache prune` sees it as a blob), shown under its file name in a
// directory that a loopback server serves (wheelhouse_server.h), and its
// URL in the private uv.lock (lock_mirror.h) points there; uv still checks
// the hashes. Files the wheelhouse lacks keep their URLs, or with --offline
// get a URL that answers 404 at once. A route, not an input: no key changes.
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
struct LockedUrl {
  std::string url;
  std::string hash;
};

/// The wheels and sdists of uv.lock that have a sha256 hash, in document
/// order. `file` names it in errors (not TOML).
std::vector<LockedUrl> locked_urls(std::string_view lock_text, const std::string& file = "uv.lock");

/// The layers of a wheelhouse manifest; throws Error("<what>: ...") when it
/// is not one (another artifactType, an index, a layer without a file name).
std::vector<Descriptor> wheelhouse_layers(std::string_view manifest, const std::string& what);

/// The file name the URL ends with, percent-decoded ("" when it has none or
/// it could not be a file name: "/", NUL, "." or "..").
std::string url_file_name(const std::string& url);

/// What route_wheelhouses made: the routes for the private uv.lock, the
/// directory that holds the files, and the locked files it does not have.
struct WheelhouseRoute {
  UrlRoutes routes;
  std::filesystem::path dir;
  std::vector<LockedUrl> missing;
  std::size_t fetched = 0;
};

/// For a build that runs uv: reads each wheelhouse of `refs` (REGISTRY/REPO[:TAG|@DIGEST]
/// or oci:DIR[:TAG]), fetches the files the project's uv.lock names into
/// s.store, and lays them out as `dir`/<hex digest>/<file name>, routed to
/// `url_prefix`/<hex digest>/<file name>. Empty routes without refs or uv.lock.
WheelhouseRoute route_wheelhouses(BuildState& s, const std::vector<std::string>& refs,
                                  const std::filesystem::path& dir, const std::string& url_prefix);

/// For a build about to make environments with uv: starts the loopback
/// server (kept in s.wheelhouse_server until the build ends) and routes the
/// --wheels-from files into s.mirrored_lock, mirrors kept; with --offline
/// the files it lacks go to a 404 of that server. Nothing without --wheels-from.
void use_wheelhouses(BuildState& s);

}  // namespace dockless
