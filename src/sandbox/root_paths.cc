// See root_paths.h.

#include "src/sandbox/root_paths.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>

#include "base/error.h"
#include "base/open_in_root.h"

namespace dockless::sandbox_detail {

namespace fs = std::filesystem;

namespace {

/// Child-side: creates `name` in dirfd as a dir or an empty file. A dangling
/// symlink in its place (the image's /etc/resolv.conf -> ../run/...) is
/// replaced: this only changes the sandbox's own tree.
int create_in(int dirfd, const char* name, bool is_file) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    int r;
    if (is_file) {
      r = ::openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (r >= 0) ::close(r);
    } else {
      r = ::mkdirat(dirfd, name, 0755);
    }
    if (r >= 0) return 0;
    if (errno != EEXIST || attempt > 0) return -1;
    ::unlinkat(dirfd, name, 0);
  }
  return -1;
}

}  // namespace

std::string path_in_root(const std::string& abs, const std::string& what) {
  if (abs.empty() || abs[0] != '/') throw UsageError(what + " must be an absolute path: '" + abs + "'");
  std::string rel = fs::path(abs).lexically_normal().relative_path().string();
  while (!rel.empty() && rel.back() == '/') rel.pop_back();
  return rel;
}

std::vector<std::string> split_path(const std::string& p) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= p.size()) {
    std::size_t slash = p.find('/', start);
    if (slash == std::string::npos) slash = p.size();
    if (slash > start) out.push_back(p.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

fs::path resolve_in_root(const fs::path& root, const std::string& rel) {
  std::deque<std::string> todo;
  for (auto& c : split_path(rel)) todo.push_back(c);
  std::vector<std::string> done;
  int links = 0;
  while (!todo.empty()) {
    std::string c = todo.front();
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    fs::path cur = root;
    for (const auto& d : done) cur /= d;
    cur /= c;
    struct stat st;
    if (::lstat(cur.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      if (++links > 40)
        throw Error("resolve /" + rel + " in " + root.string() + ": too many symbolic links");
      std::string target = fs::read_symlink(cur).string();
      if (!target.empty() && target[0] == '/') done.clear();
      auto parts = split_path(target);
      todo.insert(todo.begin(), parts.begin(), parts.end());
      continue;
    }
    done.push_back(c);
  }
  fs::path out = root;
  for (const auto& d : done) out /= d;
  return out;
}

int open_in_root(int rootfd, const char* rel, bool is_file) {
  int fd = openat2_in_root(rootfd, rel, O_PATH);
  if (fd >= 0 || errno != ENOENT) return fd;
  char buf[4096];
  std::size_t len = std::strlen(rel);
  if (len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(buf, rel, len + 1);
  int parent = openat2_in_root(rootfd, "", O_PATH);
  if (parent < 0) return -1;
  std::size_t start = 0;
  for (;;) {
    std::size_t end = start;
    while (buf[end] != '\0' && buf[end] != '/') ++end;
    bool last = buf[end] == '\0';
    char saved = buf[end];
    buf[end] = '\0';
    fd = openat2_in_root(rootfd, buf, O_PATH);
    if (fd < 0 && errno == ENOENT) {
      if (create_in(parent, buf + start, last && is_file) == 0)
        fd = openat2_in_root(rootfd, buf, O_PATH);
    }
    int e = errno;
    ::close(parent);
    if (fd < 0) {
      errno = e;
      return -1;
    }
    if (last) return fd;
    buf[end] = saved;
    parent = fd;
    start = end + 1;
  }
}

}  // namespace dockless::sandbox_detail
