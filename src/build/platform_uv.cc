#include "src/build/platform_uv.h"

#include <string>
#include <utility>

#include "base/error.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

// Characters a platform part may have; a path prefix ("./a=b", "/opt/x=y")
// has others ('.' is allowed in variants, but a leading one is a path).
bool looks_like_platform(const std::string& s) {
  if (s.empty() || s.front() == '/' || s.front() == '.') return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.' || c == '/'))
      return false;
  return true;
}

}  // namespace

std::pair<std::string, fs::path> parse_uv_option(const std::string& text) {
  if (text.empty()) throw UsageError("--uv needs PATH or PLATFORM=PATH");
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos || !looks_like_platform(text.substr(0, eq))) return {"", fs::path(text)};
  const std::string plat = text.substr(0, eq);
  if (plat.find('/') == std::string::npos)
    throw UsageError("--uv " + text + ": PLATFORM must be os/arch[/variant], e.g. linux/arm64=" +
                     text.substr(eq + 1));
  Platform p;
  try {
    p = Platform::parse(plat);
  } catch (const Error& e) {
    throw UsageError(std::string("--uv ") + text + ": " + e.what());
  }
  if (eq + 1 == text.size()) throw UsageError("--uv " + text + ": no PATH after '='");
  return {p.str(), fs::path(text.substr(eq + 1))};
}

std::vector<std::string> platform_uv_index_urls(const std::vector<std::string>&, const fs::path&) {
  throw Error("platform_uv_index_urls: not yet implemented");
}

UvTool fetch_platform_uv(const UvTool&, const Platform& platform, const PlatformUvSource&, const fs::path&) {
  throw Error("uv for " + platform.str() + ": fetching a platform's uv is not yet implemented");
}

}  // namespace dockless
