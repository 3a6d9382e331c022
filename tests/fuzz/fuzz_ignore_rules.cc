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

/// Paths to ask about: each line of the input as a path, and each of its parents.
std::vector<std::string> paths_of(std::string_view text) {
  std::vector<std::string> out = {"a", "a/b", "Dockerfile", ".git/config", "build/x.o"};
  std::size_t pos = 0;
  while (pos < text.size() && out.size() < 64) {
    std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    while (!line.empty() && (line.front() == '!' || line.front() == ' ')) line.remove_prefix(1);
    std::string p = clean(line);
    for (std::size_t s = p.find('/'); s != std::string::npos; s = p.find('/', s + 1)) out.push_back(p.substr(0, s));
    if (!p.empty()) out.push_back(p);
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
  for (const auto& p : paths_of(text)) {
    bool as_dir = false, as_file = false, below = false;
    if (!fuzz::returns_or_throws_error([&] {
          as_dir = rules.excluded(p, true);
          as_file = rules.excluded(p, false);
          below = rules.may_reinclude_below(p);
        }))
      fuzz::fail("excluded() threw for " + p);
    fuzz::check(as_dir == as_file, "is_dir changed the answer for " + p);
    fuzz::check(has_bang || !below, "re-inclusion without a '!' pattern for " + p);
  }
  return 0;
}
