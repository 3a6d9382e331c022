// Manifest, index and config JSON: each parser either throws Error or gives a
// model whose JSON parses back to a model with the same JSON (byte-stable).
#include "oci/image_config.h"
#include "oci/image_index.h"
#include "oci/manifest.h"
#include "tests/fuzz/fuzz_support.h"

using namespace dockless;

namespace {

template <typename Model>
void round_trip(std::string_view text, const char* what) {
  Model m;
  if (!fuzz::returns_or_throws_error([&] { m = Model::parse(text); })) return;
  std::string json;
  if (!fuzz::returns_or_throws_error([&] { json = m.to_json(); }))
    fuzz::fail(std::string(what) + ": to_json threw on a parsed model");
  Model again;
  if (!fuzz::returns_or_throws_error([&] { again = Model::parse(json); }))
    fuzz::fail(std::string(what) + ": its own JSON does not parse: " + json.substr(0, 300));
  fuzz::check(again.to_json() == json, std::string(what) + ": JSON not stable: " + json.substr(0, 300));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text = fuzz::as_text(data, size);
  round_trip<Manifest>(text, "manifest");
  round_trip<ImageIndex>(text, "index");
  round_trip<ImageConfig>(text, "config");
  return 0;
}
