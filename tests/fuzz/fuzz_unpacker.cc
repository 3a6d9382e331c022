// The layer unpacker: a tar stream (plain, gzip or zstd) applied to a scratch
// root, both in plain and overlay format, returns or throws Error and never
// writes beside the root. Devices and ownership stay off (the fuzzer may run
// as root: a fuzzed block device node must never be made).
#include <filesystem>
#include <set>

#include "layers/unpacker.h"
#include "tests/fuzz/fuzz_support.h"

using namespace dockless;
namespace fs = std::filesystem;

namespace {

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

void unpack_into(const fuzz::Scratch& scratch, bool overlay) {
  fs::path box = scratch.path() / (overlay ? "overlay" : "plain");
  fs::create_directories(box / "root");
  UnpackOptions opts;
  opts.preserve_ownership = false;
  opts.create_devices = false;
  opts.overlay_format = overlay;
  opts.opaque_xattr = "user.overlay.opaque";
  fuzz::returns_or_throws_error([&] { unpack_layer(scratch.path() / "layer", box / "root", opts); });
  fuzz::check(names_in(box) == std::set<std::string>{"root"}, "the unpacker wrote beside its root");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fuzz::Scratch scratch;
  scratch.clear();
  scratch.write("layer", fuzz::as_text(data, size));
  unpack_into(scratch, false);
  unpack_into(scratch, true);
  fuzz::check(names_in(scratch.path()) == std::set<std::string>{"layer", "overlay", "plain"},
              "the unpacker wrote outside its box");
  return 0;
}
