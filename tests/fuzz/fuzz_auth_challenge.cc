// WWW-Authenticate challenges: parse_auth_challenge never throws anything but
// Error, and what it returns is lowercase where the header says it is.
#include <cctype>

#include "oci/auth_challenge.h"
#include "tests/fuzz/fuzz_support.h"

using namespace dockless;

namespace {

bool lowercase(const std::string& s) {
  for (unsigned char c : s)
    if (std::isupper(c)) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view header = fuzz::as_text(data, size);
  std::optional<AuthChallenge> c;
  if (!fuzz::returns_or_throws_error([&] { c = parse_auth_challenge(header); })) return 0;
  if (!c) return 0;
  fuzz::check(!c->scheme.empty() && lowercase(c->scheme), "scheme not lowercase: " + c->scheme);
  for (const auto& [key, value] : c->params) {
    fuzz::check(lowercase(key), "param key not lowercase: " + key);
    fuzz::check(c->param(key) == value, "param() disagrees for " + key);
  }
  for (const auto& s : c->scopes()) fuzz::check(!s.empty(), "empty scope");
  return 0;
}
