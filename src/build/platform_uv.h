// The uv binary an image for another platform ships: the uv wheel of the
// host uv's version for that platform, from the package index the build
// uses, checked against the index's SHA-256 and unpacked once per machine.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "oci/platform.h"
#include "oci/registry_transport.h"
#include "src/build/uv_tool.h"

namespace dockless {

/// Where a platform's uv wheel is looked up.
struct PlatformUvSource {
  /// PEP 503 simple index URLs, tried in order; the build fills them from
  /// UV_DEFAULT_INDEX / UV_INDEX_URL (passed-through environment), the
  /// project's default [[tool.uv.index]], else https://pypi.org/simple.
  std::vector<std::string> index_urls;
  /// ORIGINAL=MIRROR prefixes (uv.index-mirrors, --index-mirror) applied to
  /// every URL before it is fetched.
  std::map<std::string, std::string> index_mirrors;
  /// --offline: only a uv already unpacked under the cache dir is used.
  bool offline = false;
  /// TLS for the index hosts (insecure_hosts, ca_pem: the build's
  /// --insecure-registry / --ca-cert) and, in unit tests, the HTTP client
  /// (http_factory); the retry settings are not used.
  RegistryOptions http;
};

/// The index URLs for a build from the passed-through environment
/// ("NAME=VALUE" strings) and the project's pyproject.toml, in uv's order:
/// UV_INDEX's and the project's non-default, non-explicit [[tool.uv.index]]
/// URLs, then the default index (UV_DEFAULT_INDEX, else UV_INDEX_URL, else
/// the project's `default = true` index, else https://pypi.org/simple).
/// A missing pyproject.toml has no indexes; a malformed one throws Error.
std::vector<std::string> platform_uv_index_urls(const std::vector<std::string>& passthrough_env,
                                                const std::filesystem::path& pyproject);

/// uv `host.short_version` for `platform` (linux/arm64, linux/amd64, ...):
/// the wheel uv-VERSION-py3-none-<manylinux/musllinux tag for the arch>.whl,
/// its `uv-VERSION.data/scripts/uv` unpacked under
/// `cache_dir`/uv-platforms/VERSION-OS-ARCH/uv (temp name, fsync, rename),
/// identified like identify_uv (version read from the wheel's METADATA, not
/// by running it). Throws Error naming the index and the platform when no
/// wheel fits or its bytes do not match the index's sha256.
UvTool fetch_platform_uv(const UvTool& host, const Platform& platform, const PlatformUvSource& source,
                         const std::filesystem::path& cache_dir);

/// Parses `--uv PLATFORM=PATH` (PLATFORM: os/arch[/variant]); a plain PATH
/// has an empty platform (the host's uv).
std::pair<std::string, std::filesystem::path> parse_uv_option(const std::string& text);

}  // namespace dockless
