// .dockerignore rules: parse either throws Error or gives rules that answer
// excluded() and may_reinclude_below() for any clean relative path, without
// is_dir changing the answer and with no re-inclusion when there is no '!'.
#include <vector>

#include "layers/ignore_rules.h"
#include "tests/fuzz/fuzz_support.h"

using namespace dockless;

namespace {

/// A relative, '/'-separated path without empty, "." or ".." components.
std::string clean(std::string_view line) {
  std::string out;
  std::size_t pos = 0;
  while (pos <= line.size()) {
    std::size_t slash = line.find('/', pos);
    std::string_view seg = line.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    if (!seg.empty() && seg != "." && seg != "..") out += (out.empty() ? "" : "/") + std::string(seg);
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  return out;
}

/// Paths to ask about: each line of the input as a path (`files`), and each
/// of its parents (`dirs`). excluded() walks a path's parents itself, so it
/// is asked about whole lines only: asking it about every parent too made
/// each input cost depth^2 pattern matches and the fuzzer ~70 exec/s.
struct Paths {
  std::vector<std::string> files = {"a", "a/b", "Dockerfile", ".git/config", "build/x.o"};
  std::vector<std::string> dirs = {"a", ".git", "build"};
};

Paths paths_of(std::string_view text) {
  Paths out;
  std::size_t pos = 0;
  while (pos < text.size() && out.files.size() < 64) {
    std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    while (!line.empty() && (line.front() == '!' || line.front() == ' ')) line.remove_prefix(1);
    std::string p = clean(line);
    for (std::size_t s = p.find('/'); s != std::string::npos; s = p.find('/', s + 1)) out.dirs.push_back(p.substr(0, s));
    if (!p.empty()) out.files.push_back(p);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text = fuzz::as_text(data, size);
  IgnoreRules rules;
  if (!fuzz::returns_or_throws_error([&] { rules = IgnoreRules::parse(text, ".dockerignore"); })) return 0;
  const bool has_bang = text.find('!') != std::string_view::npos;
  const Paths paths = paths_of(text);
  for (const auto& p : paths.files) {
    bool as_dir = false, as_file = false;
    if (!fuzz::returns_or_throws_error([&] {
          as_dir = rules.excluded(p, true);
          as_file = rules.excluded(p, false);
        }))
      fuzz::fail("excluded() threw for " + p);
    fuzz::check(as_dir == as_file, "is_dir changed the answer for " + p);
  }
  for (const auto& d : paths.dirs) {
    bool below = false;
    if (!fuzz::returns_or_throws_error([&] { below = rules.may_reinclude_below(d); }))
      fuzz::fail("may_reinclude_below() threw for " + d);
    fuzz::check(has_bang || !below, "re-inclusion without a '!' pattern for " + d);
  }
  return 0;
}
