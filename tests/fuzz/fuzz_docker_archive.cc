// The docker-archive reader: a tarball either loads (its manifest and every
// blob it names are in the store) or throws Error with nothing stored.
#include <filesystem>

#include "layers/docker_archive.h"
#include "oci/manifest.h"
#include "tests/fuzz/fuzz_support.h"

using namespace dockless;
namespace fs = std::filesystem;

namespace {

std::size_t blob_count(const BlobStore& store) {
  std::size_t n = 0;
  std::error_code ec;
  for (fs::directory_iterator it(store.blob_dir(), ec), end; !ec && it != end; it.increment(ec)) ++n;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fuzz::Scratch scratch;
  scratch.clear();
  scratch.write("archive.tar", fuzz::as_text(data, size));
  fs::create_directories(scratch.path() / "store");
  BlobStore store(scratch.path() / "store");
  LoadedArchiveImage loaded;
  if (!fuzz::returns_or_throws_error(
          [&] { loaded = read_docker_archive(scratch.path() / "archive.tar", store); })) {
    fuzz::check(blob_count(store) == 0, "a failed read left blobs in the store");
    return 0;
  }
  fuzz::check(store.contains(loaded.manifest.digest), "loaded manifest not in the store");
  Manifest m;
  if (!fuzz::returns_or_throws_error([&] { m = Manifest::parse(store.read(loaded.manifest.digest)); }))
    fuzz::fail("stored manifest does not parse");
  fuzz::check(store.contains(m.config.digest), "config blob missing");
  for (const auto& l : m.layers) fuzz::check(store.contains(l.digest), "layer blob missing");
  return 0;
}
