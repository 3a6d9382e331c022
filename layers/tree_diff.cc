#include "layers/tree_diff.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/file_util.h"
#include "layers/archive_handle.h"

namespace dockless {

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

using Components = std::vector<std::string>;

// Tar order: depth first, names bytewise within a directory, an opaque
// marker right after its directory (before every sibling).
struct TarOrder {
  bool operator()(const Components& a, const Components& b) const {
    return std::lexicographical_compare(
        a.begin(), a.end(), b.begin(), b.end(), [](const std::string& x, const std::string& y) {
          if (x == y) return false;
          if (x == kOpaqueMarker) return true;
          if (y == kOpaqueMarker) return false;
          return x < y;
        });
  }
};

enum class Kind { kEntry, kMarker };
struct Planned {
  Kind kind = Kind::kEntry;
  std::int64_t mtime = 0;  // markers only
};

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

Components split(const std::string& rel) {
  Components c;
  std::size_t pos = 0;
  while (pos <= rel.size()) {
    std::size_t slash = rel.find('/', pos);
    if (slash == std::string::npos) slash = rel.size();
    c.push_back(rel.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return c;
}

struct stat lstat_or_throw(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) throw_errno("cannot stat " + path);
  return st;
}

std::string link_target(const std::string& path) {
  std::vector<char> buf(4096);
  for (;;) {
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) throw_errno("cannot read symlink " + path);
    if (static_cast<std::size_t>(n) < buf.size()) return std::string(buf.data(), static_cast<std::size_t>(n));
    buf.resize(buf.size() * 2);
  }
}

bool same_bytes(const std::string& a, const std::string& b, std::uint64_t size) {
  UniqueFd fa(::open(a.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fa) throw_errno("cannot open " + a);
  UniqueFd fb(::open(b.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fb) throw_errno("cannot open " + b);
  std::vector<char> ba(1 << 16), bb(1 << 16);
  while (size > 0) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(size, ba.size()));
    std::size_t na = read_some(fa.get(), ba.data(), want, a);
    std::size_t nb = read_some(fb.get(), bb.data(), na, b);
    if (na == 0 || nb != na) return false;
    if (std::memcmp(ba.data(), bb.data(), na) != 0) return false;
    size -= na;
  }
  return true;
}

class TreeDiff {
 public:
  TreeDiff(std::string lower, std::string changed, const TreeDiffOptions& options)
      : lower_(std::move(lower)), changed_(std::move(changed)), opt_(options) {}

  void plan() {
    lstat_or_throw(lower_);
    lstat_or_throw(changed_);
    diff_dir("", true);
    add_hardlink_peers();
    add_parents();
  }

  TarStats write(TarStreamWriter& out);

 private:
  std::string old_path(const std::string& rel) const { return join(lower_, rel); }
  std::string new_path(const std::string& rel) const { return join(changed_, rel); }
  void add(const std::string& rel) { plan_[split(rel)] = Planned{}; }
  void add_marker(const std::string& rel, std::int64_t mtime) {
    plan_[split(rel)] = Planned{Kind::kMarker, mtime};
  }

  void diff_dir(const std::string& rel, bool old_exists);
  void diff_child(const std::string& rel, bool old_exists);
  bool differs(const std::string& rel, const struct stat& o, const struct stat& n) const;
  void add_hardlink_peers();
  void add_parents();

  std::string lower_, changed_;
  const TreeDiffOptions& opt_;
  std::map<Components, Planned, TarOrder> plan_;
  // Every path of each multiply-linked regular file in the changed tree.
  std::map<std::pair<dev_t, ino_t>, std::vector<std::string>> links_;
};

// `rel` is a directory in the changed tree; old_exists says whether it is a
// directory in the lower tree too (else everything below it is new).
void TreeDiff::diff_dir(const std::string& rel, bool old_exists) {
  const std::string npath = new_path(rel);
  UniqueFd nfd(::open(npath.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!nfd) throw_errno("cannot open directory " + npath);
  std::vector<std::string> new_names = list_directory_sorted(nfd.get(), npath);
  std::vector<std::string> old_names;
  if (old_exists) {
    const std::string opath = old_path(rel);
    UniqueFd ofd(::open(opath.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!ofd) throw_errno("cannot open directory " + opath);
    old_names = list_directory_sorted(ofd.get(), opath);
  }
  auto excluded = [&](const std::string& name) {
    return std::find(opt_.exclude.begin(), opt_.exclude.end(), join(rel, name)) != opt_.exclude.end();
  };
  std::erase_if(new_names, excluded);
  std::erase_if(old_names, excluded);
  std::vector<std::string> gone;
  std::set_difference(old_names.begin(), old_names.end(), new_names.begin(), new_names.end(),
                      std::back_inserter(gone));
  const std::int64_t dir_mtime = lstat_or_throw(npath).st_mtim.tv_sec;
  if (!gone.empty() && gone.size() == old_names.size()) {
    // Nothing of the old content is left: one opaque marker hides it all.
    add_marker(join(rel, std::string(kOpaqueMarker)), dir_mtime);
  } else {
    for (const auto& name : gone) add_marker(join(rel, std::string(kWhiteoutPrefix) + name), dir_mtime);
  }
  const bool opaque = !gone.empty() && gone.size() == old_names.size();
  for (const auto& name : new_names) {
    bool in_old = !opaque && std::binary_search(old_names.begin(), old_names.end(), name);
    diff_child(join(rel, name), in_old);
  }
}

void TreeDiff::diff_child(const std::string& rel, bool old_exists) {
  const struct stat n = lstat_or_throw(new_path(rel));
  if (S_ISSOCK(n.st_mode)) return;
  if (S_ISREG(n.st_mode) && n.st_nlink > 1) links_[{n.st_dev, n.st_ino}].push_back(rel);
  struct stat o {};
  if (old_exists) o = lstat_or_throw(old_path(rel));
  const bool old_dir = old_exists && S_ISDIR(o.st_mode);
  if (S_ISDIR(n.st_mode)) {
    if (!old_dir || differs(rel, o, n)) add(rel);
    diff_dir(rel, old_dir);
    return;
  }
  if (!old_exists || (o.st_mode & S_IFMT) != (n.st_mode & S_IFMT) || differs(rel, o, n)) add(rel);
}

// Same type assumed.
bool TreeDiff::differs(const std::string& rel, const struct stat& o, const struct stat& n) const {
  if (o.st_mode != n.st_mode || o.st_uid != n.st_uid || o.st_gid != n.st_gid) return true;
  if (read_xattrs(old_path(rel)) != read_xattrs(new_path(rel))) return true;
  // A directory whose entries changed is written as the parent of what
  // changed; its mtime alone (an entry made and removed again, as the
  // sandbox does with mount points) is no change, as in an overlay upper dir.
  if (S_ISDIR(n.st_mode)) return false;
  if (S_ISLNK(n.st_mode)) {
    if (link_target(old_path(rel)) != link_target(new_path(rel))) return true;
  } else if (S_ISCHR(n.st_mode) || S_ISBLK(n.st_mode)) {
    if (o.st_rdev != n.st_rdev) return true;
  } else if (S_ISREG(n.st_mode) && o.st_size != n.st_size) {
    return true;
  }
  if (o.st_mtim.tv_sec == n.st_mtim.tv_sec && o.st_mtim.tv_nsec == n.st_mtim.tv_nsec) return false;
  // Only the mtime differs. The entry is the same if both clamp to one
  // second and (asked for) the bytes are equal.
  if (!opt_.compare_content || !S_ISREG(n.st_mode)) return true;
  const std::int64_t clamp = opt_.layer.mtime_clamp;
  if (std::min<std::int64_t>(o.st_mtim.tv_sec, clamp) != std::min<std::int64_t>(n.st_mtim.tv_sec, clamp))
    return true;
  return !same_bytes(old_path(rel), new_path(rel), static_cast<std::uint64_t>(n.st_size));
}

void TreeDiff::add_hardlink_peers() {
  for (const auto& [inode, paths] : links_) {
    bool any = std::any_of(paths.begin(), paths.end(),
                           [&](const std::string& p) { return plan_.count(split(p)) != 0; });
    if (any)
      for (const auto& p : paths) add(p);
  }
}

void TreeDiff::add_parents() {
  std::vector<Components> parents;
  for (const auto& [key, planned] : plan_) {
    Components c(key.begin(), key.end() - 1);
    while (!c.empty() && plan_.count(c) == 0) {
      parents.push_back(c);
      c.pop_back();
    }
  }
  for (auto& c : parents) plan_.try_emplace(std::move(c), Planned{});
}

TarStats TreeDiff::write(TarStreamWriter& out) {
  TarEntryWriter entries(change_layer_entry_options(opt_.layer), out);
  std::string cached_dir = "\n";  // no directory has this name
  UniqueFd dirfd;
  for (const auto& [key, planned] : plan_) {
    std::string rel;
    for (const auto& c : key) rel = join(rel, c);
    if (planned.kind == Kind::kMarker) {
      entries.write_marker(rel, planned.mtime);
      continue;
    }
    std::string dir = rel.substr(0, rel.size() - key.back().size());
    if (dir != cached_dir) {
      const std::string host_dir = new_path(dir);
      dirfd.reset(::open(host_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!dirfd) throw_errno("cannot open directory " + host_dir);
      cached_dir = dir;
    }
    struct stat st;
    const std::string host_path = new_path(rel);
    if (::fstatat(dirfd.get(), key.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      throw_errno("cannot stat " + host_path);
    entries.write(rel, host_path, st, dirfd.get(), key.back());
  }
  return entries.stats;
}

}  // namespace

TarStats write_tree_diff_layer(const std::filesystem::path& lower,
                               const std::filesystem::path& changed,
                               const TreeDiffOptions& options, ByteSink& out) {
  TreeDiff diff(lower.string(), changed.string(), options);
  diff.plan();
  TarStreamWriter archive_out(out);
  TarStats stats = diff.write(archive_out);
  archive_out.close();
  out.finish();
  return stats;
}

}  // namespace dockless
