#include "layers/tar_entry_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/error.h"
#include "base/file_util.h"

namespace dockless {

namespace {

std::function<std::optional<std::uint32_t>(std::uint32_t)> map_from(std::vector<IdRange> ranges) {
  return [ranges = std::move(ranges)](std::uint32_t host) -> std::optional<std::uint32_t> {
    for (const IdRange& r : ranges) {
      if (host >= r.host_first && host - r.host_first < r.count)
        return r.container_first + (host - r.host_first);
    }
    return std::nullopt;
  };
}

std::uint32_t map_id(const std::function<std::optional<std::uint32_t>(std::uint32_t)>& map,
                     std::uint32_t id, const char* what, const std::string& host_path) {
  if (!map) return id;
  std::optional<std::uint32_t> mapped = map(id);
  if (!mapped)
    throw Error("cannot archive " + host_path + ": its " + what + " " + std::to_string(id) +
                " has no id inside the container (not in the user namespace's map)");
  return *mapped;
}

std::uint32_t le32(const std::string& v, std::size_t at) {
  auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(v[at + i])); };
  return b(0) | b(1) << 8 | b(2) << 16 | b(3) << 24;
}

// A file capability set inside a user namespace is stored as revision 3 with
// the namespace root's host uid ("rootid"). In the image it must belong to
// the container's root: rootid mapped, and a rootid of 0 written as the plain
// revision 2 every runtime understands.
std::string capability_for_image(std::string value, const OwnerMap& map,
                                 const std::string& host_path) {
  constexpr std::uint32_t kRevisionMask = 0xFF000000, kRevision3 = 0x03000000;
  constexpr std::uint32_t kRevision2 = 0x02000000;
  if (!map.uid || value.size() != 24 || (le32(value, 0) & kRevisionMask) != kRevision3)
    return value;
  std::uint32_t rootid = map_id(map.uid, le32(value, 20), "capability root uid", host_path);
  if (rootid == 0) {
    std::uint32_t magic = kRevision2 | (le32(value, 0) & ~kRevisionMask);
    for (int i = 0; i < 4; ++i) value[i] = static_cast<char>((magic >> (8 * i)) & 0xFF);
    value.resize(20);
    return value;
  }
  for (int i = 0; i < 4; ++i) value[20 + i] = static_cast<char>((rootid >> (8 * i)) & 0xFF);
  return value;
}

std::string read_link(int dirfd, const std::string& name, const std::string& host_path,
                      const struct stat& st) {
  std::string target(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 4096) + 1, '\0');
  ssize_t n = ::readlinkat(dirfd, name.empty() ? "." : name.c_str(), target.data(), target.size());
  if (n < 0) throw_errno("cannot read symlink " + host_path);
  if (static_cast<std::size_t>(n) >= target.size())
    throw Error("cannot read symlink " + host_path + ": it changed while being read");
  target.resize(static_cast<std::size_t>(n));
  return target;
}

}  // namespace

OwnerMap OwnerMap::from_ranges(std::vector<IdRange> uids, std::vector<IdRange> gids) {
  return OwnerMap{map_from(std::move(uids)), map_from(std::move(gids))};
}

bool is_overlay_private_xattr(std::string_view name) {
  // fuse-overlayfs keeps the same marks under its own name.
  return name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") ||
         name.starts_with("user.fuseoverlayfs.");
}

EntryOptions change_layer_entry_options(const ChangeLayerOptions& options) {
  EntryOptions e;
  e.uid = std::nullopt;
  e.gid = std::nullopt;
  e.owner_map = options.owner_map;
  e.mtime_clamp = options.mtime_clamp;
  bool all = options.xattrs;
  e.keep_xattr = [all](std::string_view name) {
    if (is_overlay_private_xattr(name)) return false;
    return all || name == "security.capability";
  };
  return e;
}

std::vector<std::string> list_directory_sorted(int dirfd, const std::string& host_dir) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("cannot open directory " + host_dir);
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    throw_errno("cannot read directory " + host_dir);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* ent = ::readdir(d)) {
    std::string_view n(ent->d_name);
    if (n != "." && n != "..") names.emplace_back(n);
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) throw_errno("cannot read directory " + host_dir, err);
  std::sort(names.begin(), names.end());  // std::string compares bytewise
  return names;
}

std::vector<std::pair<std::string, std::string>> read_xattrs(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  ssize_t len = ::llistxattr(path.c_str(), nullptr, 0);
  if (len <= 0) return out;
  std::string names(static_cast<std::size_t>(len), '\0');
  len = ::llistxattr(path.c_str(), names.data(), names.size());
  if (len <= 0) return out;
  names.resize(static_cast<std::size_t>(len));
  for (std::size_t p = 0; p < names.size();) {
    std::string n(names.c_str() + p);
    p += n.size() + 1;
    if (n.empty()) continue;
    ssize_t vlen = ::lgetxattr(path.c_str(), n.c_str(), nullptr, 0);
    if (vlen < 0) continue;
    std::string value(static_cast<std::size_t>(vlen), '\0');
    vlen = ::lgetxattr(path.c_str(), n.c_str(), value.data(), value.size());
    if (vlen < 0) continue;
    value.resize(static_cast<std::size_t>(vlen));
    out.emplace_back(std::move(n), std::move(value));
  }
  std::sort(out.begin(), out.end());
  return out;
}

void TarEntryWriter::set_owner(archive_entry* e, const struct stat& st,
                               const std::string& host_path) const {
  archive_entry_set_uid(e, opt_.uid ? *opt_.uid : map_id(opt_.owner_map.uid, st.st_uid, "owner uid", host_path));
  archive_entry_set_gid(e, opt_.gid ? *opt_.gid : map_id(opt_.owner_map.gid, st.st_gid, "group gid", host_path));
}

void TarEntryWriter::add_xattrs(archive_entry* e, const std::string& host_path) const {
  for (auto& [name, value] : read_xattrs(host_path)) {
    if (!opt_.keep_xattr(name)) continue;
    if (name == "security.capability") value = capability_for_image(value, opt_.owner_map, host_path);
    archive_entry_xattr_add_entry(e, name.c_str(), value.data(), value.size());
  }
}

void TarEntryWriter::write_marker(const std::string& tar_name, std::int64_t mtime) {
  ArchiveEntryHandle e(archive_entry_new());
  archive_entry_set_pathname(e.get(), tar_name.c_str());
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_uid(e.get(), 0);
  archive_entry_set_gid(e.get(), 0);
  archive_entry_set_mtime(e.get(), std::min(mtime, opt_.mtime_clamp), 0);
  archive_entry_set_size(e.get(), 0);
  out_.header(e.get(), tar_name);
  ++stats.entries;
}

void TarEntryWriter::write(const std::string& tar_name, const std::string& host_path,
                           const struct stat& st, int dirfd, const std::string& name) {
  ArchiveEntryHandle e(archive_entry_new());
  archive_entry_set_pathname(e.get(), tar_name.c_str());
  archive_entry_set_perm(e.get(), st.st_mode & 07777);
  set_owner(e.get(), st, host_path);
  archive_entry_set_mtime(e.get(), std::min<std::int64_t>(st.st_mtim.tv_sec, opt_.mtime_clamp), 0);
  if (opt_.keep_xattr) add_xattrs(e.get(), host_path);
  ++stats.entries;

  if (S_ISDIR(st.st_mode)) {
    archive_entry_set_filetype(e.get(), AE_IFDIR);
    out_.header(e.get(), host_path);
    return;
  }
  if (S_ISLNK(st.st_mode)) {
    std::string target = read_link(dirfd, name, host_path, st);
    if (opt_.map_symlink) target = opt_.map_symlink(target);
    archive_entry_set_filetype(e.get(), AE_IFLNK);
    archive_entry_set_symlink(e.get(), target.c_str());
    out_.header(e.get(), host_path);
    return;
  }
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode)) {
    archive_entry_set_filetype(e.get(), S_ISCHR(st.st_mode)   ? AE_IFCHR
                                        : S_ISBLK(st.st_mode) ? AE_IFBLK
                                                              : AE_IFIFO);
    archive_entry_set_rdevmajor(e.get(), major(st.st_rdev));
    archive_entry_set_rdevminor(e.get(), minor(st.st_rdev));
    out_.header(e.get(), host_path);
    return;
  }
  if (!S_ISREG(st.st_mode)) throw Error("cannot archive " + host_path + ": unsupported file type");

  archive_entry_set_filetype(e.get(), AE_IFREG);
  if (st.st_nlink > 1) {
    auto key = std::make_pair(st.st_dev, st.st_ino);
    auto [it, first] = hardlinks_.emplace(key, tar_name);
    if (!first) {
      archive_entry_set_hardlink(e.get(), it->second.c_str());
      archive_entry_set_size(e.get(), 0);
      out_.header(e.get(), host_path);
      return;
    }
  }
  archive_entry_set_size(e.get(), st.st_size);
  UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw_errno("cannot open " + host_path);
  out_.header(e.get(), host_path);
  copy_data(fd.get(), static_cast<std::uint64_t>(st.st_size), host_path);
}

void TarEntryWriter::note_written(const std::string& tar_name, const struct stat& st) {
  if (S_ISREG(st.st_mode) && st.st_nlink > 1) hardlinks_.emplace(std::make_pair(st.st_dev, st.st_ino), tar_name);
}

void TarEntryWriter::copy_data(int fd, std::uint64_t size, const std::string& host_path) {
  if (buffer_.empty()) buffer_.resize(1 << 20);
  std::uint64_t left = size;
  while (left > 0) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer_.size()));
    std::size_t n = read_some(fd, buffer_.data(), want, host_path);
    if (n == 0) throw Error("cannot archive " + host_path + ": file shrank while being read");
    out_.data(buffer_.data(), n, host_path);
    left -= n;
  }
  stats.file_bytes += size;
}

}  // namespace dockless
