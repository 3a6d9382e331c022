#include "layers/tar_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/file_util.h"
#include "layers/archive_handle.h"
#include "oci/digest.h"

namespace dockless {

std::int64_t mtime_clamp_from_environment() {
  const char* env = std::getenv("SOURCE_DATE_EPOCH");
  if (env == nullptr || *env == '\0') return kDefaultMtimeClamp;
  std::string s(env);
  if (s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
    throw Error("SOURCE_DATE_EPOCH=\"" + s + "\" is not a Unix time (a non-negative integer)");
  return std::stoll(s);
}

namespace {

/// Strips "./" and "/" prefixes and trailing "/"; "" is the root.
std::string normalise_name(std::string name) {
  for (;;) {
    if (name.rfind("./", 0) == 0) name.erase(0, 2);
    else if (name.rfind("/", 0) == 0) name.erase(0, 1);
    else break;
  }
  // "a//b" and "a/./b" name the same entry as "a/b".
  std::string clean;
  std::size_t pos = 0;
  while (pos <= name.size()) {
    std::size_t slash = name.find('/', pos);
    std::string part = name.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    if (!part.empty() && part != ".") clean += (clean.empty() ? "" : "/") + part;
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return clean;
}

/// Emits the directories leading to `prefix` ("opt/venv" -> "opt"), and
/// `prefix` itself when `include_self`, as 0755 dirs with the clamp time.
std::uint64_t emit_parents(TarStreamWriter& out, const std::string& prefix, const TarOptions& opt,
                           bool include_self) {
  std::uint64_t n = 0;
  std::size_t pos = 0;
  for (;;) {
    std::size_t slash = prefix.find('/', pos);
    if (slash == std::string::npos && !include_self) break;
    std::string name = prefix.substr(0, slash);
    ArchiveEntryHandle e(archive_entry_new());
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFDIR);
    archive_entry_set_perm(e.get(), 0755);
    archive_entry_set_uid(e.get(), opt.uid.value_or(0));
    archive_entry_set_gid(e.get(), opt.gid.value_or(0));
    archive_entry_set_mtime(e.get(), opt.mtime_clamp, 0);
    out.header(e.get(), name);
    ++n;
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return n;
}

/// The walk of write_directory_tar: every entry it writes, in its order
/// (names sorted bytewise, parents first), `include` and `descend_excluded`
/// applied. `visit(tar_name, host_path, st, dirfd, name)` gets each entry;
/// dirfd and name locate a non-directory's data (-1 and "" for a directory);
/// depth is 0 for the destination itself, 1 for the tree's top level.
class DirectoryWalk {
 public:
  using Visit = std::function<void(const std::string& tar_name, const std::string& host_path,
                                   const struct stat& st, int dirfd, const std::string& name, std::uint32_t depth)>;
  DirectoryWalk(const TarOptions& options, Visit visit) : opt_(options), visit_(std::move(visit)) {}

  /// The destination directory itself (when not "/") comes first, with the
  /// directory's own stat; the caller writes the destination's parents.
  void run(const std::filesystem::path& dir) {
    UniqueFd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) throw_errno("cannot open directory " + dir.string());
    struct stat st;
    if (::fstat(root.get(), &st) != 0) throw_errno("cannot stat " + dir.string());
    std::string prefix = normalise_name(opt_.dest);
    if (!prefix.empty()) {
      visit_(prefix, dir.string(), st, -1, "", 0);
      prefix += '/';
    }
    walk(root.get(), dir.string(), "", prefix, 1);
  }

 private:
  void walk(int dirfd, const std::string& host_dir, const std::string& rel_dir,
            const std::string& tar_dir, std::uint32_t depth) {
    std::vector<std::string> names = list_directory_sorted(dirfd, host_dir);
    for (const auto& name : names) {
      std::string host_path = host_dir + "/" + name;
      std::string rel = rel_dir.empty() ? name : rel_dir + "/" + name;
      struct stat st;
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        throw_errno("cannot stat " + host_path);
      if (S_ISSOCK(st.st_mode)) continue;
      bool is_dir = S_ISDIR(st.st_mode);
      std::string tar_name = tar_dir + name;
      if (opt_.include && !opt_.include(rel, is_dir)) {
        if (!is_dir || !opt_.descend_excluded || !opt_.descend_excluded(rel)) continue;
        // Written only if something below it is.
        pending_.push_back(Pending{tar_name, host_path, st, depth});
        UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) throw_errno("cannot open directory " + host_path);
        walk(sub.get(), host_path, rel, tar_name + "/", depth + 1);
        if (!pending_.empty() && pending_.back().tar_name == tar_name) pending_.pop_back();
        continue;
      }
      flush_pending();
      if (is_dir) {
        visit_(tar_name, host_path, st, -1, "", depth);
        UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) throw_errno("cannot open directory " + host_path);
        walk(sub.get(), host_path, rel, tar_name + "/", depth + 1);
      } else {
        visit_(tar_name, host_path, st, dirfd, name, depth);
      }
    }
  }

  /// Excluded directories above an entry about to be written.
  struct Pending {
    std::string tar_name, host_path;
    struct stat st;
    std::uint32_t depth;
  };
  void flush_pending() {
    for (const auto& p : pending_) visit_(p.tar_name, p.host_path, p.st, -1, "", p.depth);
    pending_.clear();
  }
  std::vector<Pending> pending_;

  const TarOptions& opt_;
  Visit visit_;
};

EntryOptions entry_options(const TarOptions& opt) {
  EntryOptions e;
  e.uid = opt.uid;
  e.gid = opt.gid;
  e.mtime_clamp = opt.mtime_clamp;
  if (opt.xattrs) e.keep_xattr = [](std::string_view) { return true; };
  e.map_symlink = opt.map_symlink;
  return e;
}

/// Appends an integer's bytes (little-endian on every machine we build for:
/// the digest stays on this machine).
template <typename T>
void append_int(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

/// A tar to `out` with `options`: the destination's parents (unless not
/// `parents`), then what `write` gives the entry writer; closed and
/// finished. Its stats.
TarStats write_tar(const TarOptions& options, ByteSink& out, bool parents,
                   const std::function<void(TarEntryWriter&, TarStreamWriter&)>& write) {
  TarStreamWriter archive_out(out);
  TarEntryWriter entries(entry_options(options), archive_out);
  std::uint64_t parent_entries = 0;
  if (std::string prefix = normalise_name(options.dest); parents && !prefix.empty())
    parent_entries = emit_parents(archive_out, prefix, options, /*include_self=*/false);
  write(entries, archive_out);
  archive_out.close();
  out.finish();
  TarStats stats = entries.stats;
  stats.entries += parent_entries;
  return stats;
}

}  // namespace

TarStats write_directory_tar(const std::filesystem::path& dir, const TarOptions& options,
                             ByteSink& out) {
  return write_tar(options, out, true, [&](TarEntryWriter& entries, TarStreamWriter&) {
    DirectoryWalk walk(options, [&](const std::string& tar_name, const std::string& host_path,
                                    const struct stat& st, int dirfd, const std::string& name, std::uint32_t) {
      entries.write(tar_name, host_path, st, dirfd, name);
    });
    walk.run(dir);
  });
}

TarStats write_walked_tree(const std::filesystem::path& dir, const WalkedTree& walked, const TarOptions& options,
                           ByteSink& out, const WalkedTreeWrite& how) {
  const std::size_t from = how.from.value_or(0);
  if (from > walked.entries.size()) throw Error("cannot archive " + dir.string() + ": no such entry in its walk");
  return write_tar(options, out, !how.from, [&](TarEntryWriter& entries, TarStreamWriter& archive_out) {
    // dirs[d]: the open directory whose entries are at depth d + 1, opened
    // down from `dir` by name as the walk did.
    std::vector<UniqueFd> dirs;
    dirs.emplace_back(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dirs.back()) throw_errno("cannot open directory " + dir.string());
    auto open_dir = [&dirs](const WalkedTree::Entry& e) {
      const std::string name = e.host_path.substr(e.host_path.rfind('/') + 1);
      UniqueFd sub(::openat(dirs[e.depth - 1].get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) throw_errno("cannot open directory " + e.host_path);
      struct stat now;
      if (::fstat(sub.get(), &now) != 0) throw_errno("cannot stat " + e.host_path);
      if (now.st_ino != e.st.st_ino || now.st_dev != e.st.st_dev)
        throw Error("cannot archive " + e.host_path + ": it was replaced while the tree was read");
      dirs.resize(e.depth);
      dirs.push_back(std::move(sub));
    };
    // Before `from`: what a hardlink may point to, and which directories
    // lead to it (opened only then: the others are never read).
    std::vector<const WalkedTree::Entry*> chain;  // chain[d]: the directory whose entries are at depth d + 1
    for (std::size_t i = 0; i < from; ++i) {
      const auto& e = walked.entries[i];
      entries.note_written(e.tar_name, e.st);
      if (S_ISDIR(e.st.st_mode) && e.depth > 0) {
        chain.resize(e.depth);
        chain.push_back(&e);
      }
    }
    if (from < walked.entries.size())
      for (std::uint32_t d = 1; d < walked.entries[from].depth; ++d) {
        if (d >= chain.size() || chain[d] == nullptr)
          throw Error("cannot archive " + walked.entries[from].host_path + ": its directory was not walked");
        open_dir(*chain[d]);
      }
    for (std::size_t i = from; i < walked.entries.size(); ++i) {
      const auto& e = walked.entries[i];
      if (how.offsets) how.offsets->push_back(archive_out.offset());
      if (e.depth == 0) {  // the destination itself: a header only
        entries.write(e.tar_name, e.host_path, e.st, -1, "");
        continue;
      }
      if (e.depth > dirs.size()) throw Error("cannot archive " + e.host_path + ": its directory was not walked");
      if (!S_ISDIR(e.st.st_mode)) {
        const std::string name = e.host_path.substr(e.host_path.rfind('/') + 1);
        entries.write(e.tar_name, e.host_path, e.st, dirs[e.depth - 1].get(), name);
        continue;
      }
      entries.write(e.tar_name, e.host_path, e.st, -1, "");
      open_dir(e);
    }
    if (how.offsets) how.offsets->push_back(archive_out.offset());
  });
}

namespace {

std::int64_t ns_of(const struct timespec& t) { return std::int64_t(t.tv_sec) * 1000000000 + t.tv_nsec; }

/// What stat_directory_tree hashes of one entry: its name and stat.
void stat_record(std::string& record, const std::string& tar_name, const struct stat& st) {
  record.assign(tar_name);
  record.push_back('\0');
  for (auto v : {std::uint64_t(st.st_mode), std::uint64_t(st.st_uid), std::uint64_t(st.st_gid),
                 std::uint64_t(st.st_size), std::uint64_t(st.st_ino), std::uint64_t(st.st_dev),
                 std::uint64_t(st.st_nlink), std::uint64_t(st.st_rdev)})
    append_int(record, v);
  for (const struct timespec& t : {st.st_mtim, st.st_ctim}) append_int(record, ns_of(t));
}

}  // namespace

std::int64_t newest_change_ns(const struct stat& st) { return std::max(ns_of(st.st_mtim), ns_of(st.st_ctim)); }

TreeStat stat_directory_tree(const std::filesystem::path& dir, const TarOptions& options, WalkedTree* walked) {
  Sha256 hash;
  TreeStat out;
  std::string record;
  if (walked != nullptr) walked->entries.clear();
  DirectoryWalk walk(options, [&](const std::string& tar_name, const std::string& host_path, const struct stat& st,
                                  int, const std::string&, std::uint32_t depth) {
    if (walked != nullptr) walked->entries.push_back(WalkedTree::Entry{tar_name, host_path, st, depth});
    stat_record(record, tar_name, st);
    out.newest_change_ns = std::max(out.newest_change_ns, newest_change_ns(st));
    hash.update(record);
    ++out.entries;
  });
  walk.run(dir);
  out.digest = hash.finish();
  return out;
}

std::vector<Digest> walked_prefix_digests(const WalkedTree& walked, const std::vector<std::uint64_t>& counts) {
  std::vector<Digest> out;
  Sha256 hash;
  std::string record;
  std::uint64_t hashed = 0;
  for (std::uint64_t count : counts) {
    if (count < hashed || count > walked.entries.size()) throw Error("internal error: bad walk prefix");
    for (; hashed < count; ++hashed) {
      stat_record(record, walked.entries[hashed].tar_name, walked.entries[hashed].st);
      hash.update(record);
    }
    out.push_back(Sha256(hash).finish());
  }
  return out;
}

TarStats rewrite_tar(const std::filesystem::path& tar_file, const TarOptions& options,
                     ByteSink& out) {
  ArchiveReadHandle in = new_archive_reader();
  archive_read_support_filter_all(in.get());
  archive_read_support_format_tar(in.get());
  archive_read_support_format_gnutar(in.get());
  const std::string what = "tar " + tar_file.string();
  if (archive_read_open_filename(in.get(), tar_file.c_str(), 1 << 16) != ARCHIVE_OK)
    throw Error("cannot read " + what + ": " + archive_error_string(in.get()));

  std::string prefix = normalise_name(options.dest);
  TarStreamWriter archive_out(out);
  TarStats stats;
  if (!prefix.empty()) {
    stats.entries += emit_parents(archive_out, prefix, options, /*include_self=*/true);
    prefix += '/';
  }
  std::vector<char> buf(1 << 20);
  for (;;) {
    archive_entry* src = nullptr;
    int r = archive_read_next_header(in.get(), &src);
    if (r == ARCHIVE_EOF) break;
    // ARCHIVE_RETRY (a damaged header) would skip an entry: a layer is whole or nothing.
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
      throw Error("cannot read " + what + ": " + archive_error_string(in.get()));
    std::string name = normalise_name(archive_entry_pathname(src) ? archive_entry_pathname(src) : "");
    if (name.empty()) continue;  // the root itself: its mode is the runtime's business
    ArchiveEntryHandle e(archive_entry_clone(src));
    archive_entry_set_pathname(e.get(), (prefix + name).c_str());
    if (const char* link = archive_entry_hardlink(src)) {
      archive_entry_set_hardlink(e.get(), (prefix + normalise_name(link)).c_str());
      archive_entry_set_size(e.get(), 0);
    }
    if (options.uid) archive_entry_set_uid(e.get(), *options.uid);
    if (options.gid) archive_entry_set_gid(e.get(), *options.gid);
    archive_entry_set_uname(e.get(), nullptr);
    archive_entry_set_gname(e.get(), nullptr);
    archive_entry_unset_atime(e.get());
    archive_entry_unset_ctime(e.get());
    archive_entry_unset_birthtime(e.get());
    archive_entry_set_mtime(
        e.get(), std::min<std::int64_t>(archive_entry_mtime(src), options.mtime_clamp), 0);
    if (!options.xattrs) archive_entry_xattr_clear(e.get());
    archive_entry_sparse_clear(e.get());
    archive_entry_acl_clear(e.get());
    archive_entry_set_fflags(e.get(), 0, 0);
    archive_out.header(e.get(), name);
    ++stats.entries;
    if (archive_entry_filetype(e.get()) != AE_IFREG || archive_entry_hardlink(e.get())) continue;
    for (;;) {
      la_ssize_t n = archive_read_data(in.get(), buf.data(), buf.size());
      if (n < 0) throw Error("cannot read " + what + ": " + archive_error_string(in.get()));
      if (n == 0) break;
      archive_out.data(buf.data(), static_cast<std::size_t>(n), name);
      stats.file_bytes += static_cast<std::uint64_t>(n);
    }
  }
  archive_out.close();
  out.finish();
  return stats;
}

}  // namespace dockless
