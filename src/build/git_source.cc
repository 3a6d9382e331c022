#include "src/build/git_source.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include "oci/digest.h"
#include "base/error.h"
#include "base/edit_distance.h"
#include "base/file_lock.h"
#include "base/file_util.h"
#include "base/process.h"
#include "layers/archive_handle.h"
#include "src/cache/last_used.h"

extern char** environ;

namespace dockless {

namespace fs = std::filesystem;

namespace {

constexpr int kMaxSubmoduleDepth = 8;

// ---- URLs -------------------------------------------------------------------

/// Removes the userinfo of every "scheme://userinfo@host" found in `text`.
std::string redact_text(std::string text) {
  std::size_t pos = 0;
  while ((pos = text.find("://", pos)) != std::string::npos) {
    const std::size_t start = pos + 3;
    std::size_t end = text.find_first_of("/?# \t\r\n'\"`", start);
    if (end == std::string::npos) end = text.size();
    if (end > start) {
      std::size_t at = text.rfind('@', end - 1);
      if (at != std::string::npos && at >= start) text.erase(start, at + 1 - start);
    }
    pos = start;
  }
  return text;
}

/// The password of "scheme://user:password@host/...", or "".
std::string password_of(const std::string& url) {
  std::size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  const std::size_t start = scheme + 3;
  std::size_t end = url.find_first_of("/?#", start);
  if (end == std::string::npos) end = url.size();
  if (end <= start) return "";
  std::size_t at = url.rfind('@', end - 1);
  if (at == std::string::npos || at < start) return "";
  std::size_t colon = url.find(':', start);
  if (colon == std::string::npos || colon > at) return "";
  return url.substr(colon + 1, at - colon - 1);
}

/// git's rule: no "://" and no ':' before the first '/' means a local path
/// (otherwise "host:path" is ssh).
bool is_local_path(const std::string& url) {
  if (url.find("://") != std::string::npos) return false;
  std::size_t colon = url.find(':');
  std::size_t slash = url.find('/');
  return colon == std::string::npos || (slash != std::string::npos && slash < colon);
}

std::string normalize_url(const std::string& url) {
  if (url.empty()) throw Error("git source: empty URL");
  if (url.front() == '-') throw Error("git source: invalid URL \"" + redact_url(url) + "\"");
  if (!is_local_path(url)) return url;
  std::string path = fs::absolute(url).lexically_normal().string();
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

/// Resolves a submodule's "./x" or "../x" URL against its superproject's.
std::string resolve_submodule_url(const std::string& super, const std::string& rel) {
  if (!rel.starts_with("./") && !rel.starts_with("../")) return rel;
  std::string base = super;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  // Components after `root` may be removed by "../".
  std::size_t root = 0;
  if (std::size_t s = base.find("://"); s != std::string::npos) {
    root = base.find('/', s + 3);
    if (root == std::string::npos) root = base.size();
  } else if (!is_local_path(base)) {
    root = base.find(':') + 1;
  } else if (base.starts_with('/')) {
    root = 1;
  }
  std::string rest = rel;
  for (;;) {
    if (rest.starts_with("./")) {
      rest.erase(0, 2);
    } else if (rest.starts_with("../")) {
      rest.erase(0, 3);
      std::size_t cut = base.find_last_of('/');
      if (cut != std::string::npos && cut >= root && cut > 0) {
        base.erase(cut);  // "/a/b" -> "/a", "https://h/a" -> "https://h"
      } else if (base.size() > root) {
        base.erase(root);  // "host:a" -> "host:", "/a" -> "/"
      } else {
        throw Error("submodule URL \"" + rel + "\" climbs above " + redact_url(super));
      }
    } else {
      break;
    }
  }
  if (base.empty() || base.back() == ':' || base.back() == '/') return base + rest;
  return base + "/" + rest;
}

void check_ref(const std::string& ref) {
  bool bad = ref.starts_with('-') || ref.starts_with('/') || ref.ends_with('/') || ref.ends_with('.') ||
             ref.ends_with(".lock") || ref.find("..") != std::string::npos ||
             ref.find("@{") != std::string::npos || ref.find("//") != std::string::npos;
  for (char c : ref) {
    bad = bad || static_cast<unsigned char>(c) <= 0x20 || c == 0x7f ||
          std::string_view(" ~^:?*[\\").find(c) != std::string_view::npos;
  }
  if (bad) throw Error("invalid git ref \"" + ref + "\"");
}

bool is_hex(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}


/// "a, b, c (+4 more)": the names closest to `ref` first.
std::string nearest(std::vector<std::string> names, const std::string& ref) {
  std::stable_sort(names.begin(), names.end(), [&](const std::string& x, const std::string& y) {
    return edit_distance(x, ref) < edit_distance(y, ref);
  });
  constexpr std::size_t kShown = 6;
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < kShown; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > kShown) out += " (+" + std::to_string(names.size() - kShown) + " more)";
  return out;
}

// ---- running git --------------------------------------------------------------

struct GitResult {
  int status = 0;
  std::string out;
  std::string err;
};

/// Runs git for one repository URL, and words its failures for that URL.
class Git {
 public:
  Git(std::string url, bool for_submodule) : url_(std::move(url)), secret_(password_of(url_)) {
    static constexpr std::string_view kDropped[] = {
        "GIT_DIR=", "GIT_WORK_TREE=", "GIT_INDEX_FILE=", "GIT_OBJECT_DIRECTORY=",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES=", "GIT_COMMON_DIR=", "GIT_NAMESPACE=", "GIT_PREFIX=",
        "GIT_QUARANTINE_PATH=", "GIT_SHALLOW_FILE=", "GIT_GRAFT_FILE=", "GIT_REPLACE_REF_BASE=",
        "GIT_TERMINAL_PROMPT=", "GCM_INTERACTIVE=", "GIT_PROTOCOL_FROM_USER=", "LC_ALL=", "LANGUAGE="};
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string_view var(*e);
      if (std::none_of(std::begin(kDropped), std::end(kDropped),
                       [&](std::string_view d) { return var.starts_with(d); }))
        env_.emplace_back(var);
    }
    env_.emplace_back("GIT_TERMINAL_PROMPT=0");
    env_.emplace_back("GCM_INTERACTIVE=never");
    env_.emplace_back("LC_ALL=C");
    // As `git submodule` does: protocol.<name>.allow=user (file://, local
    // paths, ext::) then refuses URLs that come from a repository's content.
    if (for_submodule) env_.emplace_back("GIT_PROTOCOL_FROM_USER=0");
  }

  const std::string& url() const { return url_; }

  /// Runs `git ARGS`, stdout captured.
  GitResult run(const std::vector<std::string>& args) const {
    Command c = command(args);
    c.out = ProcessOutput::capture();
    // git's reason is at the end of what it says.
    c.err = ProcessOutput::capture(kMaxStderr, ProcessOutput::Keep::kTail);
    ProcessResult p;
    try {
      p = run_process(c);
    } catch (const SpawnError& e) {
      explain(e);
    }
    return GitResult{p.status, std::move(p.out), std::move(p.err)};
  }

  /// Runs `git ARGS`; returns stdout, throws when git fails.
  std::string check(const std::vector<std::string>& args, const std::string& what = "") const {
    GitResult r = run(args);
    if (r.status != 0) fail(args, r, what);
    return r.out;
  }

  /// Starts `git ARGS` with stdout into `stdout_fd`; stderr goes to `err`.
  ChildGuard start(const std::vector<std::string>& args, int stdout_fd, int err) const {
    Command c = command(args);
    c.out = ProcessOutput::fd(stdout_fd);
    c.err = ProcessOutput::fd(err);
    try {
      return spawn_process(c);
    } catch (const SpawnError& e) {
      explain(e);
    }
  }
  static UniqueFd stderr_file() {
    UniqueFd fd(::memfd_create("git-stderr", MFD_CLOEXEC));
    if (!fd) throw_errno("cannot create a buffer for git's messages");
    return fd;
  }
  static std::string read_back(int fd) {
    std::string text;
    if (::lseek(fd, 0, SEEK_SET) < 0) return text;
    char buf[16384];
    for (;;) {
      std::size_t n = read_some(fd, buf, sizeof buf, "git's messages");
      if (n == 0) break;
      text.append(buf, n);
      if (text.size() > kMaxStderr) text.erase(0, text.size() - kMaxStderr / 2);  // keep the tail
    }
    return text;
  }

  /// Removes credentials from anything shown to the user.
  std::string scrub(std::string text) const {
    text = redact_text(std::move(text));
    if (secret_.size() >= 4) {
      for (std::size_t pos; (pos = text.find(secret_)) != std::string::npos;)
        text.replace(pos, secret_.size(), "***");
    }
    return text;
  }

  [[noreturn]] void fail(const std::vector<std::string>& args, const GitResult& r, const std::string& what) const {
    std::string shown = "git";
    for (std::size_t i = 0; i < args.size(); ++i) {
      if ((args[i] == "-c" || args[i] == "-C") && i + 1 < args.size()) {
        ++i;  // configuration and the mirror's path: noise in a message
        continue;
      }
      shown += " " + args[i];
    }
    // git's reason: its first "fatal:" line (later lines are advice such as
    // "and the repository exists."), else its last line.
    std::string last, fatal;
    std::size_t pos = 0;
    while (pos < r.err.size()) {
      std::size_t end = r.err.find_first_of("\r\n", pos);
      if (end == std::string::npos) end = r.err.size();
      std::string line = trim(r.err.substr(pos, end - pos));
      pos = end + 1;
      if (line.empty()) continue;
      last = line;
      if (fatal.empty() && line.starts_with("fatal: ")) fatal = line;
    }
    if (!fatal.empty()) last = fatal;
    if (last.empty()) last = "no message";
    std::string msg = "git source " + redact_url(url_) + ": " + (what.empty() ? "" : what + ": ") + "'" + shown +
                      "' failed (exit status " + std::to_string(r.status) + "): " + last;
    throw Error(scrub(msg));
  }

 private:
  // The messages git writes are kept up to this much (their end).
  static constexpr std::size_t kMaxStderr = 1u << 20;

  Command command(const std::vector<std::string>& args) const {
    Command c;
    // Every run: no hooks, no reflogs, no background gc outliving the lock.
    c.argv = {"git", "-c", "core.hooksPath=/dev/null", "-c", "core.logAllRefUpdates=false", "-c",
              "gc.autoDetach=false"};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    c.env = env_;
    return c;
  }

  [[noreturn]] void explain(const SpawnError& e) const {
    if (e.errnum() == ENOENT)
      throw Error("git source " + redact_url(url_) + ": git is not installed (not found on PATH)");
    throw_errno("git source " + redact_url(url_) + ": cannot run git", e.errnum());
  }

  std::string url_;
  std::string secret_;
  std::vector<std::string> env_;
};

// ---- extracting `git archive` -----------------------------------------------------

/// Extracts the tar stream on `fd` below `dest` (an existing, symlink-free
/// absolute path). Only regular files, directories and symlinks, with names
/// that stay inside.
void extract_tar(int fd, const fs::path& dest) {
  ArchiveReadHandle in(archive_read_new());
  ArchiveWriteHandle out(archive_write_disk_new());
  if (!in || !out) throw Error("cannot extract git archive: out of memory");
  archive_read_support_format_tar(in.get());
  if (archive_read_open_fd(in.get(), fd, 65536) != ARCHIVE_OK)
    throw Error(std::string("cannot read git archive: ") + archive_error_string(in.get()));
  archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                                                ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  auto inside = [&](const char* name) -> std::string {
    std::string_view n = name ? name : "";
    while (n.starts_with("./")) n.remove_prefix(2);
    fs::path rel(n);
    bool ok = !n.empty() && !rel.is_absolute();
    for (const auto& part : rel) ok = ok && part != "..";
    if (!ok) throw Error("git archive holds an unsafe name \"" + std::string(name ? name : "") + "\"");
    return (dest / rel).string();
  };
  for (;;) {
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(in.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) throw Error(std::string("cannot read git archive: ") + archive_error_string(in.get()));
    const mode_t type = archive_entry_filetype(entry);
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
      throw Error("git archive holds an unexpected entry \"" + std::string(archive_entry_pathname(entry)) + "\"");
    archive_entry_set_pathname(entry, inside(archive_entry_pathname(entry)).c_str());
    if (const char* link = archive_entry_hardlink(entry)) archive_entry_set_hardlink(entry, inside(link).c_str());
    if (archive_write_header(out.get(), entry) < ARCHIVE_WARN)
      throw Error(std::string("cannot extract git archive: ") + archive_error_string(out.get()));
    if (type == AE_IFREG && archive_entry_size(entry) > 0) {
      const void* buf = nullptr;
      std::size_t size = 0;
      la_int64_t offset = 0;
      while ((r = archive_read_data_block(in.get(), &buf, &size, &offset)) == ARCHIVE_OK) {
        if (archive_write_data_block(out.get(), buf, size, offset) < ARCHIVE_WARN)
          throw Error(std::string("cannot extract git archive: ") + archive_error_string(out.get()));
      }
      if (r != ARCHIVE_EOF) throw Error(std::string("cannot read git archive: ") + archive_error_string(in.get()));
    }
    if (archive_write_finish_entry(out.get()) < ARCHIVE_WARN)
      throw Error(std::string("cannot extract git archive: ") + archive_error_string(out.get()));
  }
  if (archive_write_close(out.get()) < ARCHIVE_WARN)
    throw Error(std::string("cannot extract git archive: ") + archive_error_string(out.get()));
}

/// `git archive COMMIT` from the mirror, extracted into the empty `dest`.
void export_commit(const Git& git, const fs::path& mirror, const std::string& commit, const fs::path& dest) {
  // Modes exactly 0644/0755, and no line-ending rewrite from the user's config.
  const std::vector<std::string> args = {"-C", mirror.string(), "-c", "tar.umask=0022", "-c", "core.autocrlf=false",
                                         "archive", "--format=tar", commit};
  Pipe tar = make_pipe("git");
  UniqueFd err = Git::stderr_file();
  ChildGuard child = git.start(args, tar.write.get(), err.get());
  tar.write.reset();
  UniqueFd rd = std::move(tar.read);
  std::exception_ptr extract_error;
  try {
    extract_tar(rd.get(), dest);
    char buf[65536];  // the tar's trailing blocks: read them so git exits cleanly
    while (read_some(rd.get(), buf, sizeof buf, "git archive") > 0) {
    }
  } catch (...) {
    extract_error = std::current_exception();
  }
  rd.reset();  // git stops (SIGPIPE) if extraction gave up early
  GitResult r;
  r.status = child.wait();
  r.err = Git::read_back(err.get());
  if (r.status != 0 && !(extract_error && r.status == 128 + SIGPIPE))
    git.fail(args, r, "cannot export commit " + commit);  // git's reason first
  if (extract_error) std::rethrow_exception(extract_error);
}

// ---- the mirror -------------------------------------------------------------------

void init_mirror(const Git& git, const fs::path& mirror, const std::string& object_format) {
  fs::path tmp = mirror.string() + ".init";  // only ever touched under the lock
  std::error_code ec;
  fs::remove_all(tmp, ec);
  std::vector<std::string> args = {"init", "--quiet", "--bare", "--template="};
  if (!object_format.empty()) args.push_back("--object-format=" + object_format);
  args.push_back(tmp.string());
  git.check(args, "cannot create the mirror");
  fs::create_directories(tmp / "info");
  // A plain checkout's files: no export-ignore/export-subst, no LFS smudge.
  write_file_atomic(tmp / "info" / "attributes", "* -export-ignore -export-subst -filter\n");
  if (::rename(tmp.c_str(), mirror.c_str()) != 0) throw_errno("cannot create " + mirror.string());
}

bool mirror_has_refs(const Git& git, const fs::path& mirror) {
  GitResult r = git.run({"-C", mirror.string(), "for-each-ref", "--count=1"});
  return r.status == 0 && !trim(r.out).empty();
}

void fetch_into_mirror(const Git& git, const fs::path& mirror, const std::vector<std::string>& refspecs) {
  std::vector<std::string> args = {"-C", mirror.string(), "fetch", "--quiet", "--prune", "--no-tags",
                                   "--no-recurse-submodules", "--no-write-fetch-head", git.url()};
  args.insert(args.end(), refspecs.begin(), refspecs.end());
  GitResult r = git.run(args);
  if (r.status == 0) return;
  // A fresh mirror of a SHA-256 repository: create it again in that format.
  constexpr std::string_view kMismatch = "mismatched algorithms: client sha1; server ";
  if (std::size_t at = r.err.find(kMismatch); at != std::string::npos && !mirror_has_refs(git, mirror)) {
    std::string format = trim(r.err.substr(at + kMismatch.size(), r.err.find('\n', at) - at - kMismatch.size()));
    if (format == "sha256") {
      fs::remove_all(mirror);
      init_mirror(git, mirror, format);
      r = git.run(args);
      if (r.status == 0) return;
    }
  }
  // Leave no empty mirror behind for a URL that never answered.
  if (!mirror_has_refs(git, mirror)) fs::remove_all(mirror);
  git.fail(args, r, "cannot fetch");
}

std::optional<std::string> rev_parse(const Git& git, const fs::path& mirror, const std::string& spec) {
  GitResult r = git.run({"-C", mirror.string(), "rev-parse", "--verify", "--quiet", spec + "^{commit}"});
  if (r.status != 0) return std::nullopt;
  return trim(r.out);
}

struct Resolved {
  std::string commit;
  std::string ref;  // GitCheckout::resolved_ref
};

std::optional<Resolved> resolve(const Git& git, const fs::path& mirror, const std::string& ref) {
  if (ref.empty() || ref == "HEAD") {
    if (auto c = rev_parse(git, mirror, "refs/dockless/HEAD")) return Resolved{*c, "HEAD"};
    throw Error("git source " + redact_url(git.url()) + ": its HEAD names no commit (no default branch); pass a ref");
  }
  if (ref.starts_with("refs/")) {
    if (auto c = rev_parse(git, mirror, ref)) return Resolved{*c, ref};
    return std::nullopt;
  }
  if (auto c = rev_parse(git, mirror, "refs/heads/" + ref)) return Resolved{*c, "refs/heads/" + ref};
  if (auto c = rev_parse(git, mirror, "refs/tags/" + ref)) return Resolved{*c, "refs/tags/" + ref};
  if (is_hex(ref) && ref.size() >= 4 && ref.size() <= 64) {
    GitResult r = git.run({"-C", mirror.string(), "rev-parse", "--verify", ref + "^{commit}"});
    if (r.status == 0) return Resolved{trim(r.out), ""};
    if (r.err.find("ambiguous") != std::string::npos)
      throw Error("git source " + redact_url(git.url()) + ": commit prefix \"" + ref +
                  "\" is ambiguous; give more digits");
  }
  return std::nullopt;
}

[[noreturn]] void not_found(const Git& git, const fs::path& mirror, const std::string& ref) {
  std::vector<std::string> branches, tags;
  GitResult r = git.run({"-C", mirror.string(), "for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags"});
  std::size_t pos = 0;
  while (pos < r.out.size()) {
    std::size_t end = r.out.find('\n', pos);
    if (end == std::string::npos) end = r.out.size();
    std::string name = r.out.substr(pos, end - pos);
    pos = end + 1;
    if (name.starts_with("refs/heads/")) branches.push_back(name.substr(11));
    if (name.starts_with("refs/tags/")) tags.push_back(name.substr(10));
  }
  std::string known;
  if (!branches.empty()) known += "branches: " + nearest(branches, ref);
  if (!tags.empty()) known += std::string(known.empty() ? "" : "; ") + "tags: " + nearest(tags, ref);
  if (known.empty()) known = "it has no branches or tags";
  throw Error(git.scrub("git ref \"" + ref + "\" not found in " + redact_url(git.url()) + " (" + known + ")"));
}

// ---- .git in the exported tree -------------------------------------------------------

void make_git_dir(const Git& git, const fs::path& mirror, const Resolved& resolved, const fs::path& dest) {
  const std::string& c = resolved.commit;
  const std::string d = dest.string();
  std::vector<std::string> init = {"init", "--quiet", "--template="};
  if (c.size() == 64) init.push_back("--object-format=sha256");
  init.push_back(d);
  git.check(init, "cannot create " + d + "/.git");

  std::string branch;
  if (resolved.ref.starts_with("refs/heads/")) branch = resolved.ref.substr(11);
  // The commit's history, and (followed automatically) the tags pointing into it.
  std::vector<std::string> fetch = {"-C", d, "-c", "uploadpack.allowAnySHA1InWant=true", "fetch", "--quiet",
                                    "--no-recurse-submodules", "--no-write-fetch-head", "--update-head-ok",
                                    mirror.string(),
                                    "+" + c + ":" + (branch.empty() ? "refs/dockless/export" : "refs/heads/" + branch)};
  if (resolved.ref.starts_with("refs/tags/")) fetch.push_back("+" + resolved.ref + ":" + resolved.ref);
  git.check(fetch, "cannot fill " + d + "/.git");

  const std::string origin = redact_url(git.url());
  git.check({"-C", d, "config", "remote.origin.url", origin});
  git.check({"-C", d, "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"});
  if (!branch.empty()) {
    git.check({"-C", d, "symbolic-ref", "HEAD", "refs/heads/" + branch});
    git.check({"-C", d, "update-ref", "refs/remotes/origin/" + branch, c});
    git.check({"-C", d, "config", "branch." + branch + ".remote", "origin"});
    git.check({"-C", d, "config", "branch." + branch + ".merge", "refs/heads/" + branch});
  } else {
    git.check({"-C", d, "update-ref", "--no-deref", "HEAD", c});
    git.check({"-C", d, "update-ref", "-d", "refs/dockless/export"});
  }
  // The index, without stat data (so no host inode or time ends up in it).
  git.check({"-C", d, "read-tree", c});
}

// ---- submodules ---------------------------------------------------------------------

struct Submodule {
  std::string path;
  std::string url;
  std::string commit;
};

std::vector<Submodule> list_submodules(const Git& git, const fs::path& mirror, const std::string& commit,
                                       const fs::path& dest) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(dest / ".gitmodules", ec))) return {};
  GitResult r = git.run({"-C", mirror.string(), "config", "--blob", commit + ":.gitmodules", "-z", "--get-regexp",
                         "^submodule\\..*\\.(path|url)$"});
  if (r.status == 1) return {};  // no entries
  if (r.status != 0) git.fail({"config", "--blob", commit + ":.gitmodules"}, r, "cannot read .gitmodules");
  std::map<std::string, std::pair<std::string, std::string>> by_name;  // name -> (path, url)
  std::size_t pos = 0;
  while (pos < r.out.size()) {
    std::size_t end = r.out.find('\0', pos);
    if (end == std::string::npos) end = r.out.size();
    std::string record = r.out.substr(pos, end - pos);
    pos = end + 1;
    std::size_t nl = record.find('\n');
    if (nl == std::string::npos) continue;
    std::string key = record.substr(0, nl), value = record.substr(nl + 1);
    std::size_t dot = key.rfind('.');
    if (dot <= 10) continue;
    std::string name = key.substr(10, dot - 10);
    (key.substr(dot + 1) == "path" ? by_name[name].first : by_name[name].second) = value;
  }
  std::vector<Submodule> out;
  for (const auto& [name, pu] : by_name) {
    const auto& [path, url] = pu;
    if (path.empty() || url.empty()) continue;
    // Only a gitlink at exactly that path counts (git ignores other entries).
    GitResult ls = git.run({"-C", mirror.string(), "ls-tree", "-z", commit, "--", path});
    if (ls.status != 0) git.fail({"ls-tree", commit, "--", path}, ls, "cannot read submodule " + path);
    // "160000 commit <sha>\t<path>\0"
    std::size_t tab = ls.out.find('\t');
    if (tab == std::string::npos || !ls.out.starts_with("160000 commit ")) continue;
    std::string entry_path = ls.out.substr(tab + 1, ls.out.find('\0', tab) - tab - 1);
    if (entry_path != path) continue;
    out.push_back({path, url, ls.out.substr(14, tab - 14)});
  }
  return out;
}

GitCheckout fetch_impl(const GitSource& source, const fs::path& cache_dir, const fs::path& dest_in, bool keep_git_dir,
                       int depth) {
  const std::string url = normalize_url(source.url);
  const std::string ref = source.ref;
  if (!ref.empty()) check_ref(ref);
  const fs::path dest = fs::absolute(dest_in).lexically_normal();
  std::error_code ec;
  if (fs::symlink_status(dest, ec).type() != fs::file_type::not_found)
    throw Error("git source: destination " + dest.string() + " already exists");

  Git git(url, depth > 0);
  fs::create_directories(cache_dir / "git");
  // One mirror per repository, whatever credentials reach it.
  const fs::path mirror = cache_dir / "git" / (sha256_of(redact_url(url)).hex() + ".git");
  FileLock lock(mirror.string() + ".lock", LockMode::kExclusive);
  if (!fs::exists(mirror / "HEAD")) {
    fs::remove_all(mirror);  // what an interrupted creation may have left
    init_mirror(git, mirror, "");
  }
  mark_used(mirror);  // for `dockless cache prune --keep-days`

  // A full commit id already in the mirror needs no network.
  const bool full_id = is_hex(ref) && (ref.size() == 40 || ref.size() == 64);
  std::optional<Resolved> resolved;
  if (full_id) {
    if (auto c = rev_parse(git, mirror, ref)) resolved = Resolved{*c, ""};
  }
  if (!resolved) {
    std::vector<std::string> refspecs = {"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"};
    if (ref.empty() || ref == "HEAD") refspecs.push_back("+HEAD:refs/dockless/HEAD");
    if (ref.starts_with("refs/") && !ref.starts_with("refs/heads/") && !ref.starts_with("refs/tags/"))
      refspecs.push_back("+" + ref + ":" + ref);
    fetch_into_mirror(git, mirror, refspecs);
    resolved = resolve(git, mirror, ref);
  }
  if (!resolved && full_id) {
    // Not reachable from a branch or tag: ask for the commit itself (servers
    // that allow it: protocol v2, GitHub, GitLab, file://).
    GitResult r = git.run({"-C", mirror.string(), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", url,
                           "+" + ref + ":refs/dockless/commits/" + ref});
    if (r.status == 0) resolved = resolve(git, mirror, ref);
  }
  if (!resolved) not_found(git, mirror, ref);

  lock.change(LockMode::kShared);  // readers may share; a fetch waits
  bool created = false;
  try {
    fs::create_directories(dest.parent_path());
    const fs::path real_dest = fs::canonical(dest.parent_path()) / dest.filename();
    if (::mkdir(real_dest.c_str(), 0755) != 0) throw_errno("cannot create " + dest.string());
    created = true;
    if (::chmod(real_dest.c_str(), 0755) != 0) throw_errno("cannot set the mode of " + dest.string());
    export_commit(git, mirror, resolved->commit, real_dest);
    if (keep_git_dir) make_git_dir(git, mirror, *resolved, real_dest);
    std::vector<Submodule> submodules = list_submodules(git, mirror, resolved->commit, real_dest);
    lock.unlock();  // a submodule may share this mirror: never wait on ourselves

    if (!submodules.empty() && depth >= kMaxSubmoduleDepth)
      throw Error("git source " + redact_url(url) + ": submodules nested deeper than " +
                  std::to_string(kMaxSubmoduleDepth) + " levels");
    for (const Submodule& sub : submodules) {
      const fs::path where = real_dest / sub.path;
      // git archive leaves an empty directory where the gitlink is.
      if (fs::is_directory(fs::symlink_status(where, ec)) && !fs::remove(where, ec))
        throw Error("git source " + redact_url(url) + ": submodule path " + sub.path + " is not empty");
      try {
        fetch_impl({resolve_submodule_url(url, sub.url), sub.commit}, cache_dir, where, false, depth + 1);
      } catch (const Error& e) {
        std::string hint;
        if (std::string_view(e.what()).find("transport 'file' not allowed") != std::string_view::npos)
          hint = " (as for `git submodule update`, a local or file:// submodule needs protocol.file.allow=always"
                 " in the git configuration)";
        throw Error(git.scrub("submodule " + sub.path + " of " + redact_url(url) + ": " + e.what() + hint));
      }
    }
  } catch (...) {
    if (created) fs::remove_all(dest, ec);
    throw;
  }
  return {resolved->commit, resolved->ref, dest};
}

}  // namespace

std::string redact_url(const std::string& url) { return redact_text(url); }

GitCheckout fetch_git_source(const GitSource& source, const fs::path& cache_dir, const fs::path& dest,
                             bool keep_git_dir) {
  try {
    return fetch_impl(source, cache_dir, dest, keep_git_dir, 0);
  } catch (const fs::filesystem_error& e) {
    throw Error("git source " + redact_url(source.url) + ": " + e.what());
  }
}

}  // namespace dockless
