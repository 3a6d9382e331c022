// A test-only driver of fetch_platform_uv with the real libcurl client, for
// tests/integration/platform_uv.sh (the build command's path to it is the
// multi-platform build's):
//
//     platform_uv_probe PLATFORM HOST_VERSION CACHE_DIR [--offline]
//                       [--mirror ORIGINAL=MIRROR] [--insecure HOST:PORT] INDEX_URL...
//
// Prints "binary=PATH", "version=V", "sha=sha256:..." lines; on failure the
// error as one line on stderr and exit 1.
#include <iostream>
#include <string>
#include <vector>

#include "base/error.h"
#include "oci/platform.h"
#include "src/build/platform_uv.h"

int main(int argc, char** argv) {
  using namespace dockless;
  if (argc < 5) {
    std::cerr << "usage: platform_uv_probe PLATFORM HOST_VERSION CACHE_DIR [options] INDEX_URL...\n";
    return 2;
  }
  try {
    UvTool host;
    host.short_version = argv[2];
    host.version = "uv " + host.short_version;
    PlatformUvSource source;
    for (int i = 4; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--offline") {
        source.offline = true;
      } else if ((a == "--mirror" || a == "--insecure") && i + 1 < argc) {
        const std::string v = argv[++i];
        if (a == "--insecure") {
          source.http.insecure_hosts.push_back(v);
        } else {
          const std::size_t eq = v.find('=');
          source.index_mirrors[v.substr(0, eq)] = v.substr(eq + 1);
        }
      } else {
        source.index_urls.push_back(a);
      }
    }
    UvTool uv = fetch_platform_uv(host, Platform::parse(argv[1]), source, argv[3]);
    std::cout << "binary=" << uv.binary.string() << "\nversion=" << uv.short_version << "\nsha=" << uv.sha << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "platform_uv_probe: " << e.what() << "\n";
    return 1;
  }
}
