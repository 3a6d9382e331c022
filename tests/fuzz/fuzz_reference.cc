// Image references: Reference::parse either throws Error or gives a reference
// whose printed form parses back to the same reference.
#include "oci/reference.h"
#include "tests/fuzz/fuzz_support.h"

using namespace dockless;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text = fuzz::as_text(data, size);
  Reference ref;
  if (!fuzz::returns_or_throws_error([&] { ref = Reference::parse(text); })) return 0;
  std::string printed = ref.str();
  Reference again;
  if (!fuzz::returns_or_throws_error([&] { again = Reference::parse(printed); }))
    fuzz::fail("printed reference does not parse: " + printed);
  fuzz::check(again == ref, "reparse of " + printed + " differs");
  fuzz::check(again.str() == printed, "str() not stable: " + printed);
  fuzz::check(!ref.manifest_ref().empty(), "empty manifest_ref for " + printed);
  fuzz::check(!ref.api_host().empty(), "empty api_host for " + printed);
  return 0;
}
