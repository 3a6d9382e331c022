// Layer unpacking. libarchive only parses the stream; every filesystem call is
// made here, relative to directory fds that openat2(RESOLVE_IN_ROOT) resolved,
// so no name, symlink (from the layer or already on disk) or hardlink target
// can reach outside the root: the kernel treats the root as "/" for us.
#include "layers/unpacker.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/file_util.h"
#include "base/open_in_root.h"
#include "layers/archive_handle.h"
#include "layers/gzip_reader.h"

namespace dockless {

UnpackOptions::UnpackOptions()
    : preserve_ownership(::geteuid() == 0), create_devices(::geteuid() == 0) {}

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

// Shows a (possibly hostile) name on one line: control bytes escaped, and the
// middle of an absurdly long name cut out.
std::string shown_name(std::string_view s) {
  std::string shown(s);
  if (shown.size() > 240) shown = shown.substr(0, 180) + "..." + shown.substr(shown.size() - 40);
  std::string out = "\"";
  for (unsigned char c : shown) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// Tar names are relative to the root; "./", leading "/" and "//" carry no
// meaning. nullopt when a ".." component appears: we refuse rather than guess.
std::optional<std::string> normalize(std::string_view name) {
  std::string out;
  std::size_t pos = 0;
  while (pos <= name.size()) {
    std::size_t end = name.find('/', pos);
    if (end == std::string_view::npos) end = name.size();
    std::string_view comp = name.substr(pos, end - pos);
    if (comp == "..") return std::nullopt;
    if (!comp.empty() && comp != ".") {
      if (!out.empty()) out += '/';
      out += comp;
    }
    pos = end + 1;
  }
  return out;
}

std::string parent_of(const std::string& path) {
  std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string proc_fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

struct InodeId {
  dev_t dev;
  ino_t ino;
  auto operator<=>(const InodeId&) const = default;
};

InodeId id_of(const struct stat& st) { return {st.st_dev, st.st_ino}; }

// Final metadata of a directory: applied after all entries, children first,
// because writing a child changes the directory's mtime and because a
// read-only mode would stop a non-root unpacker from adding children.
struct DirMeta {
  mode_t mode = 0;
  bool has_time = false;
  timespec mtime{};
};

class Unpacker {
 public:
  Unpacker(const std::filesystem::path& layer, const std::filesystem::path& root,
           const UnpackOptions& options)
      : layer_(layer.string()), options_(options), is_root_(::geteuid() == 0) {
    root_.reset(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_) throw_errno("layer " + layer_ + ": cannot open target directory " + root.string());
  }

  /// The layer's bytes come from `growing` (gzip) as they are written.
  void read_as_written(std::shared_ptr<GrowingFile> growing) { growing_ = std::move(growing); }
  UnpackStats run();

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error("layer " + layer_ + ": entry " + shown_name(entry_) + ": " + why);
  }
  [[noreturn]] void fail_errno(const std::string& what, int err = errno) const {
    fail(what + ": " + std::strerror(err));
  }

  void apply(archive* a, archive_entry* e);
  void apply_whiteout(const std::string& path);
  void apply_overlay_whiteout(const std::string& path);
  void apply_dir(archive_entry* e, const std::string& path);
  void apply_file(archive* a, archive_entry* e, const std::string& path);
  void apply_symlink(archive_entry* e, const std::string& path);
  void apply_hardlink(archive_entry* e, const std::string& path);
  void apply_node(archive_entry* e, const std::string& path);
  void finish_dirs();

  int parent_fd(const std::string& dir, bool create);
  UniqueFd open_dir_creating(const std::string& dir);
  void ensure_writable(int fd, const std::string& dir);
  void clear_for(int parent, const std::string& name, const std::string& path, bool keep_dir);
  void remove_tree(int parent, const std::string& name);
  bool prune(int dirfd, const std::string& path);
  UniqueFd open_child_dir(int parent, const std::string& name, const struct stat& st,
                          const std::string* path);
  std::vector<std::string> list_dir(int dirfd);
  void forget_dirs_under(const std::string& path);
  void invalidate_cache() { cached_valid_ = false; }

  void touch(const struct stat& st) { touched_.insert(id_of(st)); }
  bool touched(const struct stat& st) const { return touched_.count(id_of(st)) != 0; }
  void touch_at(int parent, const std::string& name);

  mode_t perm(archive_entry* e) const {
    return archive_entry_perm(e) & (is_root_ ? 07777 : 0777);
  }
  timespec mtime(archive_entry* e) const {
    return {static_cast<time_t>(archive_entry_mtime(e)), archive_entry_mtime_nsec(e)};
  }
  void chown_at(int fd, const std::string& name, archive_entry* e, int flags);
  void chmod_path_fd(int opath_fd, mode_t mode, const char* what);
  void set_xattrs(int fd, archive_entry* e);

  std::string layer_;
  std::shared_ptr<GrowingFile> growing_;
  UnpackOptions options_;
  bool is_root_;
  UniqueFd root_;
  UnpackStats stats_;
  std::string entry_;  // raw name of the entry being applied, for messages
  // Inodes this layer created or wrote (and directories it named): an opaque
  // marker or a whiteout only hides what lower layers left.
  std::set<InodeId> touched_;
  std::map<std::string, DirMeta> dir_meta_;
  // Device nodes not created (rootless): hardlinks to them are skipped too.
  std::set<std::string> skipped_nodes_;
  // Layers are sorted, so consecutive entries usually share a parent. The fd
  // stays right until something is removed or replaced (which can change what
  // a name resolves to); then the key is dropped.
  std::string cached_dir_;
  UniqueFd cached_fd_;
  bool cached_valid_ = false;
};

// libarchive's read callback: no exception may cross its C frames, so an
// error becomes the archive's error (and the entry loop's one line).
la_ssize_t read_gzip(archive* a, void* reader, const void** buffer) {
  try {
    std::string_view chunk = static_cast<GzipReader*>(reader)->next();
    *buffer = chunk.data();
    return static_cast<la_ssize_t>(chunk.size());
  } catch (const std::exception& e) {
    archive_set_error(a, EINVAL, "%s", e.what());
    return ARCHIVE_FATAL;
  }
}

UnpackStats Unpacker::run() {
  // gzip (most layers) is inflated by ISA-L beside the file writing;
  // zstd and plain tars go through libarchive's own filters.
  std::unique_ptr<GzipReader> gzip;
  if (growing_)
    gzip = std::make_unique<GzipReader>(growing_, layer_);
  else if (is_gzip_file(layer_))
    gzip = std::make_unique<GzipReader>(layer_);
  ArchiveReadHandle a(archive_read_new());
  if (!a) throw Error("layer " + layer_ + ": out of memory");
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  const int opened = gzip ? archive_read_open(a.get(), gzip.get(), nullptr, read_gzip, nullptr)
                          : archive_read_open_filename(a.get(), layer_.c_str(), 1 << 20);
  if (opened != ARCHIVE_OK) {
    const char* msg = archive_error_string(a.get());
    throw Error("layer " + layer_ + ": " + (msg ? msg : "cannot open"));
  }
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    // ARCHIVE_WARN is a charset or similar remark; RETRY (a damaged header
    // libarchive could skip) and worse are errors: a layer is applied whole.
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      const char* msg = archive_error_string(a.get());
      std::string where = entry_.empty() ? "" : "after entry " + shown_name(entry_) + ": ";
      throw Error("layer " + layer_ + ": " + where + (msg ? msg : "unreadable tar"));
    }
    apply(a.get(), e);
  }
  finish_dirs();
  return stats_;
}

// The name as bytes. In the C and UTF-8 locales the multibyte form is the
// archive's bytes (a pax UTF-8 name libarchive cannot convert to "C" is kept
// raw, with a warning); the UTF-8 form is only a fallback.
const char* raw_name(const char* mbs, const char* utf8) { return mbs ? mbs : utf8; }

void Unpacker::apply(archive* a, archive_entry* e) {
  const char* name = raw_name(archive_entry_pathname(e), archive_entry_pathname_utf8(e));
  entry_ = name ? name : "";
  if (!name) fail("entry has no name");
  std::optional<std::string> path = normalize(entry_);
  if (!path) fail("path leaves the root");

  const std::string base = base_of(*path);
  if (base.starts_with(kWhiteoutPrefix)) {
    if (options_.overlay_format)
      apply_overlay_whiteout(*path);
    else
      apply_whiteout(*path);
    return;
  }
  if (raw_name(archive_entry_hardlink(e), archive_entry_hardlink_utf8(e))) {
    apply_hardlink(e, *path);
    return;
  }
  switch (archive_entry_filetype(e)) {
    case AE_IFDIR:
      apply_dir(e, *path);
      break;
    case AE_IFREG:
      apply_file(a, e, *path);
      break;
    case AE_IFLNK:
      apply_symlink(e, *path);
      break;
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
      apply_node(e, *path);
      break;
    default:  // sockets and unknown types have no place in an image
      ++stats_.skipped;
  }
}

// --- resolution -------------------------------------------------------------

int Unpacker::parent_fd(const std::string& dir, bool create) {
  if (cached_valid_ && cached_dir_ == dir) return cached_fd_.get();
  UniqueFd fd(openat2_in_root(root_.get(), dir.c_str(), O_PATH | O_DIRECTORY));
  if (!fd) {
    // A whiteout under a missing (or non-directory) parent has nothing to hide.
    if (!create && (errno == ENOENT || errno == ENOTDIR)) return -1;
    if (errno != ENOENT) fail_errno("cannot open directory " + shown_name(dir));
    fd = open_dir_creating(dir);
  }
  if (!is_root_) ensure_writable(fd.get(), dir);
  cached_fd_ = std::move(fd);
  cached_dir_ = dir;
  cached_valid_ = true;
  return cached_fd_.get();
}

// Walks dir one component at a time, creating what is missing. Each prefix is
// resolved from the root again, so a symlink met on the way stays scoped to
// the root, and mkdirat only ever gets a plain name in a resolved directory.
UniqueFd Unpacker::open_dir_creating(const std::string& dir) {
  UniqueFd cur(openat2_in_root(root_.get(), "", O_PATH | O_DIRECTORY));
  if (!cur) fail_errno("cannot open the root");
  std::size_t pos = 0;
  while (pos < dir.size()) {
    std::size_t end = dir.find('/', pos);
    if (end == std::string::npos) end = dir.size();
    const std::string prefix = dir.substr(0, end);
    const std::string comp = dir.substr(pos, end - pos);
    UniqueFd next(openat2_in_root(root_.get(), prefix.c_str(), O_PATH | O_DIRECTORY));
    if (!next && errno == ENOENT) {
      if (!is_root_) ensure_writable(cur.get(), parent_of(prefix));
      if (::mkdirat(cur.get(), comp.c_str(), 0700) != 0) {
        if (errno != EEXIST) fail_errno("cannot create directory " + shown_name(prefix));
        // The name exists but resolving it found nothing: a dangling symlink.
        // Docker fails here too; creating its target would be a guess.
        fail("parent " + shown_name(prefix) + " is a symlink to a missing directory");
      }
      next.reset(openat2_in_root(root_.get(), prefix.c_str(), O_PATH | O_DIRECTORY));
      if (!next) fail_errno("cannot open new directory " + shown_name(prefix));
      struct stat st;
      if (::fstat(next.get(), &st) != 0) fail_errno("cannot stat " + shown_name(prefix));
      touch(st);
      // Implicit parents get 0755 whatever the umask is.
      dir_meta_.try_emplace(prefix, DirMeta{0755, false, {}});
    }
    if (!next) fail_errno("cannot open directory " + shown_name(prefix));
    cur = std::move(next);
    pos = end + 1;
  }
  return cur;
}

// A non-root unpacker is subject to permission checks on its own files: a
// read-only directory from a lower layer must become writable while this
// layer adds to it, and gets its mode back at the end.
void Unpacker::ensure_writable(int fd, const std::string& dir) {
  struct stat st;
  if (::fstat(fd, &st) != 0) fail_errno("cannot stat directory " + shown_name(dir));
  if ((st.st_mode & 0700) == 0700) return;
  dir_meta_.try_emplace(dir, DirMeta{static_cast<mode_t>(st.st_mode & 07777), false, {}});
  chmod_path_fd(fd, (st.st_mode & 07777) | 0700, "directory");
}

// chmod through an O_PATH fd: the fd pins the inode, so nothing is followed.
void Unpacker::chmod_path_fd(int opath_fd, mode_t mode, const char* what) {
  if (::chmod(proc_fd_path(opath_fd).c_str(), mode) != 0)
    fail_errno(std::string("cannot set mode of ") + what);
}

void Unpacker::touch_at(int parent, const std::string& name) {
  struct stat st;
  if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    fail_errno("cannot stat what was just created");
  touch(st);
}

// --- removal ----------------------------------------------------------------

std::vector<std::string> Unpacker::list_dir(int dirfd) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_errno("cannot open directory to list it");
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int err = errno;
    ::close(fd);
    fail_errno("cannot list directory", err);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* de = ::readdir(d)) {
    std::string_view n(de->d_name);
    if (n != "." && n != "..") names.emplace_back(n);
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) fail_errno("cannot list directory", err);
  return names;
}

// Opens a child directory for listing and removing: as non-root it may need
// its owner bits first (a lower layer's 0555 or 0000 directory). When the
// directory stays (path given), its mode is restored at the end.
UniqueFd Unpacker::open_child_dir(int parent, const std::string& name, const struct stat& st,
                                  const std::string* path) {
  if (!is_root_ && (st.st_mode & 0700) != 0700) {
    UniqueFd p(::openat(parent, name.c_str(), O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC));
    if (!p) fail_errno("cannot open directory " + shown_name(name));
    if (path)
      dir_meta_.try_emplace(*path, DirMeta{static_cast<mode_t>(st.st_mode & 07777), false, {}});
    chmod_path_fd(p.get(), (st.st_mode & 07777) | 0700, "directory");
  }
  UniqueFd fd(::openat(parent, name.c_str(), O_RDONLY | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC));
  if (!fd) fail_errno("cannot open directory " + shown_name(name));
  return fd;
}

// Removes name (a directory with everything below it) inside parent. Works on
// fds all the way down and never follows a symlink: a symlink is unlinked.
void Unpacker::remove_tree(int parent, const std::string& name) {
  struct stat st;
  if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    fail_errno("cannot stat " + shown_name(name));
  }
  if (S_ISDIR(st.st_mode)) {
    UniqueFd d = open_child_dir(parent, name, st, nullptr);
    for (const std::string& child : list_dir(d.get())) remove_tree(d.get(), child);
  }
  if (::unlinkat(parent, name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0 &&
      errno != ENOENT)
    fail_errno("cannot remove " + shown_name(name));
}

// Opaque directory: removes every child that this layer did not write, and
// descends into the directories it did write (they may hold lower entries).
// Returns whether anything was kept.
bool Unpacker::prune(int dirfd, const std::string& path) {
  bool kept = false;
  for (const std::string& child : list_dir(dirfd)) {
    struct stat st;
    if (::fstatat(dirfd, child.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      fail_errno("cannot stat " + shown_name(child));
    }
    bool mine = touched(st);
    if (S_ISDIR(st.st_mode)) {
      const std::string child_path = path.empty() ? child : path + "/" + child;
      bool kept_below = false;
      {
        UniqueFd d = open_child_dir(dirfd, child, st, &child_path);
        kept_below = prune(d.get(), child_path);
      }
      if (kept_below || mine) {
        kept = true;
        continue;
      }
      if (::unlinkat(dirfd, child.c_str(), AT_REMOVEDIR) != 0)
        fail_errno("cannot remove " + shown_name(child));
    } else if (mine) {
      kept = true;
    } else if (::unlinkat(dirfd, child.c_str(), 0) != 0) {
      fail_errno("cannot remove " + shown_name(child));
    }
  }
  return kept;
}

// Drops pending directory metadata for a path that is being removed, so a
// later directory of the same name does not inherit it.
void Unpacker::forget_dirs_under(const std::string& path) {
  dir_meta_.erase(path);
  // "a/..." keys are contiguous in the map ("a-b" sorts before "a/").
  const std::string prefix = path + "/";
  for (auto it = dir_meta_.lower_bound(prefix);
       it != dir_meta_.end() && it->first.starts_with(prefix);)
    it = dir_meta_.erase(it);
}

// Makes room for a new entry at name in parent: whatever is there goes
// (unlinked, not followed), unless keep_dir and it is a directory.
void Unpacker::clear_for(int parent, const std::string& name, const std::string& path,
                         bool keep_dir) {
  struct stat st;
  if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    fail_errno("cannot stat existing path");
  }
  if (S_ISDIR(st.st_mode)) {
    if (keep_dir) return;
    invalidate_cache();
    forget_dirs_under(path);
    remove_tree(parent, name);
    return;
  }
  // Removing a symlink can change what later names resolve to.
  if (S_ISLNK(st.st_mode)) invalidate_cache();
  if (::unlinkat(parent, name.c_str(), 0) != 0) fail_errno("cannot remove existing path");
}

// --- entries ----------------------------------------------------------------

void Unpacker::apply_whiteout(const std::string& path) {
  const std::string base = base_of(path);
  const std::string dir = parent_of(path);
  if (base == kOpaqueMarker) {
    int parent = parent_fd(dir, true);
    struct stat st;
    if (::fstat(parent, &st) != 0) fail_errno("cannot stat opaque directory");
    touch(st);  // the opaque directory belongs to this layer
    UniqueFd d(::openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) fail_errno("cannot open opaque directory");
    invalidate_cache();
    prune(d.get(), dir);
    ++stats_.whiteouts;
    return;
  }
  const std::string target = base.substr(kWhiteoutPrefix.size());
  if (target.starts_with(kWhiteoutPrefix)) {  // other AUFS metadata (.wh..wh.plnk ...)
    ++stats_.skipped;
    return;
  }
  if (target.empty() || target == "." || target == "..")
    fail("whiteout names no file inside its directory");
  ++stats_.whiteouts;
  int parent = parent_fd(dir, false);
  if (parent < 0) return;  // nothing there to hide
  struct stat st;
  if (::fstatat(parent, target.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    fail_errno("cannot stat whited-out path");
  }
  // A whiteout hides lower layers only: an entry of this layer stays, and so
  // does what this layer already wrote below a whited-out directory.
  if (touched(st)) return;
  invalidate_cache();
  const std::string path_gone = dir.empty() ? target : dir + "/" + target;
  if (S_ISDIR(st.st_mode)) {
    bool kept = false;
    {
      UniqueFd d = open_child_dir(parent, target, st, &path_gone);
      kept = prune(d.get(), path_gone);
    }
    if (kept) return;
  }
  forget_dirs_under(path_gone);
  remove_tree(parent, target);
}

// Overlay notation: the whiteout is kept as overlayfs would have written it.
void Unpacker::apply_overlay_whiteout(const std::string& path) {
  const std::string base = base_of(path);
  const std::string dir = parent_of(path);
  ++stats_.whiteouts;
  if (base == kOpaqueMarker) {
    int fd = parent_fd(dir, true);
    UniqueFd d(::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) fail_errno("cannot open opaque directory");
    if (::fsetxattr(d.get(), options_.opaque_xattr.c_str(), "y", 1, 0) != 0)
      fail_errno("cannot set " + options_.opaque_xattr + " on opaque directory");
    return;
  }
  const std::string target = base.substr(kWhiteoutPrefix.size());
  if (target.starts_with(kWhiteoutPrefix)) {  // other AUFS metadata (.wh..wh.plnk ...)
    --stats_.whiteouts;
    ++stats_.skipped;
    return;
  }
  if (target.empty() || target == "." || target == "..")
    fail("whiteout names no file inside its directory");
  int parent = parent_fd(dir, true);
  clear_for(parent, target, dir.empty() ? target : dir + "/" + target, false);
  if (::mknodat(parent, target.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0)
    fail_errno("cannot create whiteout device");
  touch_at(parent, target);
}

void Unpacker::apply_dir(archive_entry* e, const std::string& path) {
  ++stats_.entries;
  if (path.empty()) {  // the root itself: only its mode
    dir_meta_[""] = DirMeta{perm(e), false, {}};
    return;
  }
  const std::string name = base_of(path);
  int parent = parent_fd(parent_of(path), true);
  clear_for(parent, name, path, true);
  if (::mkdirat(parent, name.c_str(), 0700) != 0 && errno != EEXIST)
    fail_errno("cannot create directory");
  UniqueFd probe(::openat(parent, name.c_str(), O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC));
  if (!probe) fail_errno("cannot open directory");
  struct stat st;
  if (::fstat(probe.get(), &st) != 0) fail_errno("cannot stat directory");
  UniqueFd fd = open_child_dir(parent, name, st, nullptr);
  touch(st);
  if (options_.preserve_ownership) chown_at(fd.get(), "", e, AT_EMPTY_PATH);
  set_xattrs(fd.get(), e);
  dir_meta_[path] = DirMeta{perm(e), true, mtime(e)};
}

void Unpacker::apply_file(archive* a, archive_entry* e, const std::string& path) {
  if (path.empty()) fail("only a directory can stand for the root");
  ++stats_.entries;
  const std::string name = base_of(path);
  int parent = parent_fd(parent_of(path), true);
  clear_for(parent, name, path, false);
  UniqueFd fd(::openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       0600));
  if (!fd) fail_errno("cannot create file");

  // Blocks come with offsets: sparse files arrive with holes between them.
  std::int64_t end = 0;
  for (;;) {
    const void* buf = nullptr;
    std::size_t size = 0;
    la_int64_t offset = 0;
    int r = archive_read_data_block(a, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      const char* msg = archive_error_string(a);
      fail(std::string("cannot read data: ") + (msg ? msg : "unreadable tar"));
    }
    auto* p = static_cast<const char*>(buf);
    while (size > 0) {
      ssize_t n = ::pwrite(fd.get(), p, size, offset);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_errno("cannot write file");
      }
      p += n;
      size -= static_cast<std::size_t>(n);
      offset += n;
    }
    end = std::max<std::int64_t>(end, offset);
  }
  if (archive_entry_size_is_set(e) && archive_entry_size(e) > end &&
      ::ftruncate(fd.get(), archive_entry_size(e)) != 0)
    fail_errno("cannot size file");

  struct stat st;
  if (::fstat(fd.get(), &st) != 0) fail_errno("cannot stat file");
  touch(st);
  // chown clears setuid/setgid and file capabilities: mode and xattrs after it.
  if (options_.preserve_ownership) chown_at(fd.get(), "", e, AT_EMPTY_PATH);
  if (::fchmod(fd.get(), perm(e)) != 0) fail_errno("cannot set mode");
  set_xattrs(fd.get(), e);
  const timespec ts[2] = {mtime(e), mtime(e)};
  if (::futimens(fd.get(), ts) != 0) fail_errno("cannot set times");
}

void Unpacker::apply_symlink(archive_entry* e, const std::string& path) {
  if (path.empty()) fail("only a directory can stand for the root");
  const char* target = raw_name(archive_entry_symlink(e), archive_entry_symlink_utf8(e));
  if (!target || !*target) fail("symlink has no target");
  ++stats_.entries;
  const std::string name = base_of(path);
  int parent = parent_fd(parent_of(path), true);
  clear_for(parent, name, path, false);
  // The target is data: stored as is, resolved only by whoever uses the image.
  if (::symlinkat(target, parent, name.c_str()) != 0) fail_errno("cannot create symlink");
  touch_at(parent, name);
  if (options_.preserve_ownership) chown_at(parent, name, e, AT_SYMLINK_NOFOLLOW);
  const timespec ts[2] = {mtime(e), mtime(e)};
  if (::utimensat(parent, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
    fail_errno("cannot set times");
}

void Unpacker::apply_hardlink(archive_entry* e, const std::string& path) {
  if (path.empty()) fail("only a directory can stand for the root");
  const char* raw = raw_name(archive_entry_hardlink(e), archive_entry_hardlink_utf8(e));
  std::optional<std::string> target = normalize(raw ? raw : "");
  if (!target) fail("hardlink target " + shown_name(raw) + " leaves the root");
  if (skipped_nodes_.count(*target)) {  // its target was a device we did not create
    ++stats_.skipped;
    skipped_nodes_.insert(path);
    return;
  }
  ++stats_.entries;
  // The final component is not followed: a link to a symlink links the symlink.
  UniqueFd tfd(openat2_in_root(root_.get(), target->c_str(), O_PATH | O_NOFOLLOW));
  if (!tfd) {
    if (errno == ENOENT) fail("hardlink target " + shown_name(*target) + " does not exist");
    fail_errno("hardlink target " + shown_name(*target));
  }
  struct stat tst;
  if (::fstat(tfd.get(), &tst) != 0) fail_errno("cannot stat hardlink target");
  if (S_ISDIR(tst.st_mode)) fail("hardlink target " + shown_name(*target) + " is a directory");

  const std::string name = base_of(path);
  int parent = parent_fd(parent_of(path), true);
  struct stat st;
  if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && id_of(st) == id_of(tst))
    return;  // already that file (a link to itself)
  clear_for(parent, name, path, false);
  // linkat through /proc links the inode the fd pins, not whatever the target
  // name may point to, and unlike AT_EMPTY_PATH it needs no CAP_DAC_READ_SEARCH.
  if (::linkat(AT_FDCWD, proc_fd_path(tfd.get()).c_str(), parent, name.c_str(),
               AT_SYMLINK_FOLLOW) != 0)
    fail_errno("cannot create hardlink to " + shown_name(*target));
  touch(tst);
}

void Unpacker::apply_node(archive_entry* e, const std::string& path) {
  if (path.empty()) fail("only a directory can stand for the root");
  if (!options_.create_devices) {
    ++stats_.skipped;
    skipped_nodes_.insert(path);
    return;
  }
  ++stats_.entries;
  const std::string name = base_of(path);
  int parent = parent_fd(parent_of(path), true);
  clear_for(parent, name, path, false);
  mode_t type = archive_entry_filetype(e);
  if (::mknodat(parent, name.c_str(), type | 0600, archive_entry_rdev(e)) != 0)
    fail_errno("cannot create device node");
  touch_at(parent, name);
  if (options_.preserve_ownership) chown_at(parent, name, e, AT_SYMLINK_NOFOLLOW);
  UniqueFd p(::openat(parent, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!p) fail_errno("cannot open device node");
  chmod_path_fd(p.get(), perm(e), "device node");
  const timespec ts[2] = {mtime(e), mtime(e)};
  if (::utimensat(parent, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
    fail_errno("cannot set times");
}

void Unpacker::chown_at(int fd, const std::string& name, archive_entry* e, int flags) {
  auto uid = static_cast<uid_t>(archive_entry_uid(e));
  auto gid = static_cast<gid_t>(archive_entry_gid(e));
  if (::fchownat(fd, name.c_str(), uid, gid, flags) != 0)
    fail_errno("cannot set owner " + std::to_string(uid) + ":" + std::to_string(gid));
}

// Only the attributes an image legitimately carries, and only as root (which
// the kernel requires for security.capability anyway).
void Unpacker::set_xattrs(int fd, archive_entry* e) {
  if (!is_root_) return;
  archive_entry_xattr_reset(e);
  const char* key = nullptr;
  const void* value = nullptr;
  std::size_t size = 0;
  while (archive_entry_xattr_next(e, &key, &value, &size) == ARCHIVE_OK) {
    std::string_view k(key);
    if (!k.starts_with("user.") && k != "security.capability") continue;
    if (options_.overlay_format && k.starts_with("user.overlay.")) continue;
    if (::fsetxattr(fd, key, value, size, 0) != 0 && errno != ENOTSUP && errno != EOPNOTSUPP)
      fail_errno("cannot set extended attribute " + shown_name(k));
  }
}

// Directories last: deepest first, so that a mode without the owner's x bit
// cannot lock us out of a child not yet done, and no later write bumps an
// mtime already set.
void Unpacker::finish_dirs() {
  std::vector<std::pair<std::size_t, const std::string*>> order;
  order.reserve(dir_meta_.size());
  for (const auto& [path, meta] : dir_meta_) {
    std::size_t depth = path.empty() ? 0 : 1 + std::count(path.begin(), path.end(), '/');
    order.emplace_back(depth, &path);
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& x, const auto& y) { return x.first > y.first; });
  for (const auto& [depth, path] : order) {
    const DirMeta& meta = dir_meta_.at(*path);
    entry_ = *path;
    // Readable even for a non-root unpacker: every directory listed here has
    // had the owner's rwx bits since this layer touched it.
    UniqueFd fd(openat2_in_root(root_.get(), path->c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    if (!fd) {
      // Replaced or removed later in the layer: nothing to apply.
      if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) continue;
      fail_errno("cannot open directory");
    }
    if (::fchmod(fd.get(), meta.mode) != 0) fail_errno("cannot set directory mode");
    if (meta.has_time) {
      const timespec ts[2] = {meta.mtime, meta.mtime};
      if (::futimens(fd.get(), ts) != 0) fail_errno("cannot set directory times");
    }
  }
}

}  // namespace

UnpackStats unpack_layer(const std::filesystem::path& layer, const std::filesystem::path& root,
                         const UnpackOptions& options) {
  return Unpacker(layer, root, options).run();
}

UnpackStats unpack_gzip_layer_as_written(std::shared_ptr<GrowingFile> layer, const std::string& name,
                                         const std::filesystem::path& root, const UnpackOptions& options) {
  Unpacker u(name, root, options);
  u.read_as_written(std::move(layer));
  return u.run();
}

}  // namespace dockless
