// The spec parser with --set and --arg: load_build_spec either throws Error
// (UsageError included) or gives a spec. The input is the spec file, then
// optionally a line "### --set" followed by one override per line, and/or a
// line "### --arg" followed by one NAME=VALUE per line (blank lines skipped). A spec holding
// "[tool.dockless" is written as pyproject.toml, else as dockless.toml.
#include <string>
#include <utility>
#include <vector>

#include "src/build/build_spec.h"
#include "tests/fuzz/fuzz_support.h"

using namespace dockless;

namespace {

struct Input {
  std::string spec;
  std::vector<std::string> overrides;
  std::vector<std::pair<std::string, std::string>> args;
};

Input split(std::string_view text) {
  Input in;
  enum { Spec, Set, Arg } part = Spec;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (line == "### --set") {
      part = Set;
    } else if (line == "### --arg") {
      part = Arg;
    } else if (part == Spec) {
      in.spec.append(line).append(nl == std::string_view::npos ? "" : "\n");
    } else if (line.empty()) {
      // a blank line ends nothing and is no override
    } else if (part == Set) {
      in.overrides.emplace_back(line);
    } else {
      std::size_t eq = line.find('=');
      in.args.emplace_back(std::string(line.substr(0, eq)),
                           eq == std::string_view::npos ? "" : std::string(line.substr(eq + 1)));
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return in;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fuzz::Scratch scratch;
  scratch.clear();
  Input in = split(fuzz::as_text(data, size));
  const bool pyproject = in.spec.find("[tool.dockless") != std::string::npos;
  scratch.write(pyproject ? "pyproject.toml" : "dockless.toml", in.spec);
  BuildSpec spec;
  fuzz::returns_or_throws_error([&] { spec = load_build_spec(scratch.path(), "", in.overrides, in.args); });
  return 0;
}
