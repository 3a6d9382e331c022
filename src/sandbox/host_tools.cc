// See host_tools.h.

#include "src/sandbox/host_tools.h"

#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "base/error.h"
#include "base/process.h"
#include "src/sandbox/child_process.h"

namespace dockless::sandbox_detail {

namespace fs = std::filesystem;

ToolResult run_tool(const std::vector<std::string>& argv) {
  ToolResult result;
  Command c;
  c.argv = argv;
  c.out = ProcessOutput::capture(16384);
  c.err = ProcessOutput::same_as_stdout();
  try {
    ProcessResult r = run_process(c);
    result.status = r.status;
    result.output = std::move(r.out);
  } catch (const SpawnError& e) {
    result.output = e.what();
    return result;
  }
  // One line for an error message: the first, and how many more there were.
  std::istringstream in(result.output);
  std::string first;
  std::string line;
  int more = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (first.empty())
      first = line;
    else
      ++more;
  }
  result.output = first + (more > 0 ? " (and " + std::to_string(more) + " more lines)" : "");
  return result;
}

std::optional<std::string> find_program(const std::string& name) {
  std::string path;
  if (const char* p = std::getenv("PATH"); p != nullptr) path = p;
  path += ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  std::size_t start = 0;
  for (;;) {
    std::size_t colon = path.find(':', start);
    std::string dir = path.substr(start, colon == std::string::npos ? colon : colon - start);
    if (!dir.empty() && dir[0] == '/') {
      std::string full = dir + "/" + name;
      if (::access(full.c_str(), X_OK) == 0) return full;
    }
    if (colon == std::string::npos) return std::nullopt;
    start = colon + 1;
  }
}

void copy_tree(const fs::path& from, const fs::path& to, const std::string& prefix) {
  ToolResult r = run_tool({"cp", "-a", "--reflink=auto", "-T", "--", from.string(), to.string()});
  if (r.status != 0 && r.output.find("reflink") != std::string::npos) {
    // busybox cp has no --reflink.
    std::error_code ec;
    fs::remove_all(to, ec);
    r = run_tool({"cp", "-a", "-T", "--", from.string(), to.string()});
  }
  if (r.status != 0)
    throw Error(prefix + "copy " + from.string() + " to " + to.string() + ": " +
                (r.output.empty() ? "cp failed with status " + std::to_string(r.status)
                                  : r.output));
}

}  // namespace dockless::sandbox_detail
