// See host_tools.h.

#include "src/sandbox/host_tools.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "base/error.h"
#include "src/sandbox/child_process.h"

extern char** environ;

namespace dockless::sandbox_detail {

namespace fs = std::filesystem;

ToolResult run_tool(const std::vector<std::string>& argv) {
  ToolResult result;
  Pipe p = make_pipe(argv[0]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p.write.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, p.write.get(), 2);
  std::vector<char*> args;
  std::vector<std::string> store = argv;
  for (auto& a : store) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawnp(&pid, store[0].c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  p.write.reset();
  if (rc != 0) {
    result.output = std::string("cannot run ") + argv[0] + ": " + std::strerror(rc);
    return result;
  }
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(p.read.get(), buf, sizeof buf);
    if (n > 0) {
      if (result.output.size() < 16384) result.output.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  result.status = status_code(st);
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
