#include "src/build/uv_cache_partition.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <system_error>
#include <utility>

#include "oci/digest.h"
#include "base/error.h"
#include "base/file_util.h"
#include "src/build/python_dist.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

/// "beta-1.0.0.dist-info" -> ("beta", "beta-1.0.0.dist-info" key normalised).
bool split_dist_info(const std::string& dir, std::string& package, std::string& key) {
  auto nv = dist_info_name(dir);
  if (!nv) return false;
  package = normalize_python_name(nv->first);
  key = package + "-" + nv->second;
  return true;
}

std::vector<std::string> list_dir(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path().filename().string());
  if (ec && ec != std::errc::no_such_file_or_directory)
    throw Error("cannot read " + dir.string() + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

/// Runs of id characters (uv's archive ids are URL-safe base64 words).
std::vector<std::string> words_in(const std::string& bytes) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : bytes) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') {
      cur += c;
    } else {
      if (cur.size() >= 8 && cur.size() <= 64) out.push_back(cur);
      cur.clear();
    }
  }
  if (cur.size() >= 8 && cur.size() <= 64) out.push_back(cur);
  return out;
}

bool is_alias_link(const fs::path& p) {
  std::error_code ec;
  return fs::symlink_status(p, ec).type() == fs::file_type::symlink;
}

struct Archives {
  std::map<std::string, std::string> alias_of;                  // old id -> id (canonicalize_archive_ids)
  std::map<std::string, std::string> package_of;                // id -> normalised package
  std::map<std::string, std::set<std::string>> ids_of_distinfo;  // key -> ids
  std::map<std::string, std::set<std::string>> users_of;        // id -> env names
};

Archives scan_archives(const fs::path& root) {
  Archives a;
  a.alias_of = archive_aliases(root);
  for (const auto& id : list_dir(root / "archive-v0")) {
    if (a.alias_of.count(id) || is_alias_link(root / "archive-v0" / id)) continue;
    for (const auto& entry : list_dir(root / "archive-v0" / id)) {
      std::string package, key;
      if (split_dist_info(entry, package, key)) {
        a.package_of[id] = package;
        a.ids_of_distinfo[key].insert(id);
      }
    }
  }
  return a;
}

/// The archive ids an environment has installed.
std::set<std::string> ids_used_by(const fs::path& venv, const Archives& a) {
  std::set<std::string> ids;
  std::vector<fs::path> site_dirs;
  for (const char* lib : {"lib", "lib64"})
    for (const auto& py : list_dir(venv / lib))
      if (py.rfind("python", 0) == 0) site_dirs.push_back(venv / lib / py / "site-packages");
  for (const auto& site : site_dirs) {
    for (const auto& entry : list_dir(site)) {
      std::string package, key;
      if (!split_dist_info(entry, package, key)) continue;
      // Symlink mode: the METADATA link names the exact archive.
      std::error_code ec;
      fs::path target = fs::read_symlink(site / entry / "METADATA", ec);
      bool exact = false;
      if (!ec) {
        std::string t = target.string();
        auto pos = t.find("/archive-v0/");
        if (pos != std::string::npos) {
          std::string id = t.substr(pos + 12, t.find('/', pos + 12) - pos - 12);
          if (auto alias = a.alias_of.find(id); alias != a.alias_of.end()) id = alias->second;
          if (a.package_of.count(id)) {
            ids.insert(id);
            exact = true;
          }
        }
      }
      if (!exact) {
        auto it = a.ids_of_distinfo.find(key);
        if (it != a.ids_of_distinfo.end()) ids.insert(it->second.begin(), it->second.end());
      }
    }
  }
  return ids;
}

bool is_bucket_skipped(const std::string& top) {
  // Temporary build environments and `uv run --with` environments are not
  // part of what a sync needs offline.
  return top.rfind("builds-v", 0) == 0 || top.rfind("environments-v", 0) == 0 ||
         top.rfind(".tmp", 0) == 0;
}

}  // namespace

bool CachePart::includes(const std::string& rel, bool is_dir) const {
  // At or below a listed path?
  std::string prefix = rel;
  for (;;) {
    if (paths.count(prefix)) return true;
    auto slash = prefix.rfind('/');
    if (slash == std::string::npos) break;
    prefix.resize(slash);
  }
  if (!is_dir) return false;
  // A directory above a listed path?
  auto it = paths.lower_bound(rel + "/");
  return it != paths.end() && it->compare(0, rel.size() + 1, rel + "/") == 0;
}

std::string cache_part_name(const CachePart& part) {
  if (part.users.empty()) return "common";
  std::string names;
  for (const auto& u : part.users) names += (names.empty() ? "" : "+") + u;
  return (part.users.size() == 1 ? "env:" : "shared:") + names;
}

namespace {

/// Which environments use a file outside archive-v0: those of the archive
/// ids it names, else those of a package directory in its path. False when
/// neither attributes it. `ec` is the walk's error code (a read error ends the walk).
bool attribute_file(const fs::directory_entry& file, const std::string& rel, const Archives& a,
                    const std::map<std::string, std::set<std::string>>& users_of_package,
                    std::set<std::string>& users, std::error_code& ec) {
  bool attributed = false;
  if (file.is_regular_file(ec) && file.file_size(ec) < (1 << 20)) {
    std::ifstream in(file.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const auto& w : words_in(bytes)) {
      auto u = a.users_of.find(w);
      if (u != a.users_of.end()) {
        users.insert(u->second.begin(), u->second.end());
        attributed = true;
      } else if (a.package_of.count(w)) {
        attributed = true;  // names an archive no enabled env uses
      }
    }
  }
  if (attributed) return true;
  std::size_t pos = 0;
  while (pos <= rel.size()) {
    auto slash = rel.find('/', pos);
    std::string seg = rel.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    auto p = users_of_package.find(normalize_python_name(seg));
    if (p != users_of_package.end()) {
      users.insert(p->second.begin(), p->second.end());
      return true;
    }
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return false;
}

/// common, then shared (larger sets first), then single environments.
void sort_parts(std::vector<CachePart>& parts) {
  std::sort(parts.begin(), parts.end(), [](const CachePart& x, const CachePart& y) {
    if (x.users.size() != y.users.size()) {
      auto rank = [](const CachePart& p) {
        return p.users.empty() ? 0 : p.users.size() == 1 ? 2 : 1;
      };
      if (rank(x) != rank(y)) return rank(x) < rank(y);
      return x.users.size() > y.users.size();
    }
    return x.users < y.users;
  });
}

}  // namespace

std::vector<CachePart> partition_uv_cache(const fs::path& root,
                                          const std::map<std::string, fs::path>& envs) {
  Archives a = scan_archives(root);
  std::map<std::string, std::set<std::string>> users_of_package;
  for (const auto& [env, venv] : envs) {
    for (const auto& id : ids_used_by(venv, a)) {
      a.users_of[id].insert(env);
      users_of_package[a.package_of[id]].insert(env);
    }
  }

  std::map<std::set<std::string>, std::set<std::string>> parts;
  auto add = [&](const std::set<std::string>& users, const std::string& rel) {
    parts[users].insert(rel);
  };

  for (const auto& [id, users] : a.users_of) add(users, "archive-v0/" + id);

  // Everything outside archive-v0: attribute each file by the archive ids it
  // names, else by a package directory in its path, else it is common when it
  // sits in a bucket every sync reads (root files, interpreter info).
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
       !ec && it != end; it.increment(ec)) {
    std::string rel = it->path().lexically_relative(root).generic_string();
    std::string top = rel.substr(0, rel.find('/'));
    if (top == "archive-v0" || is_bucket_skipped(top)) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(ec) && !it->is_symlink(ec)) continue;
    std::set<std::string> users;
    if (attribute_file(*it, rel, a, users_of_package, users, ec)) {
      if (!users.empty()) add(users, rel);  // else: only unused archives need it
      continue;
    }
    bool root_file = rel.find('/') == std::string::npos;
    bool common_bucket = top.rfind("interpreter-v", 0) == 0 ||
                         (top.rfind("sdists-v", 0) == 0 && rel.find('/', top.size() + 1) == std::string::npos) ;
    if (root_file || common_bucket) add({}, rel);
  }
  if (ec) throw Error("cannot read uv cache " + root.string() + ": " + ec.message());

  std::vector<CachePart> out;
  for (auto& [users, paths] : parts) out.push_back(CachePart{users, std::move(paths)});
  sort_parts(out);
  return out;
}

namespace {

/// 16 URL-safe base64 characters of the SHA-256 of what identifies an
/// archive: the same length and alphabet as uv's own ids.
std::string derived_id(const fs::path& archive) {
  std::string material;
  for (const auto& entry : list_dir(archive)) {
    std::string package, key;
    material += entry + "\n";
    if (split_dist_info(entry, package, key)) {
      try {
        material += read_file(archive / entry / "RECORD");
      } catch (const Error&) {
      }
    }
  }
  Digest d = sha256_of(material);
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string id;
  const std::string& hex = d.hex();
  for (std::size_t i = 0; id.size() < 16; i += 2) {
    int byte = std::stoi(hex.substr(i, 2), nullptr, 16);
    id += kAlphabet[byte & 63];
  }
  return id;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
}

}  // namespace

int canonicalize_archive_ids(const fs::path& root) {
  std::map<std::string, std::string> renamed;  // old id -> new id
  for (const auto& id : list_dir(root / "archive-v0")) {
    fs::path dir = root / "archive-v0" / id;
    std::error_code ec;
    if (is_alias_link(dir) || !fs::is_directory(dir, ec)) continue;  // an alias, or not an archive
    std::string want = derived_id(dir);
    if (want == id || want.size() != id.size()) continue;
    fs::path target = root / "archive-v0" / want;
    if (fs::exists(target, ec)) {
      fs::remove_all(dir, ec);  // the same content unpacked twice: keep one
    } else if (::rename(dir.c_str(), target.c_str()) != 0) {
      throw_errno("cannot rename " + dir.string());
    }
    // The venvs uv just made link to the old name: it stays, as an alias.
    if (::symlink(want.c_str(), dir.c_str()) != 0) throw_errno("cannot link " + dir.string());
    renamed[id] = want;
  }
  if (renamed.empty()) return 0;

  // uv's pointer files name archives by id.
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::string rel = it->path().lexically_relative(root).generic_string();
    if (rel.rfind("archive-v0", 0) == 0) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_symlink(ec)) {
      // uv 0.13 also links wheels-v*/.../<version>-<tag> -> ../../archive-v0/<id>.
      std::string target = fs::read_symlink(it->path(), ec).string();
      std::string fixed = target;
      for (const auto& [from, to] : renamed) replace_all(fixed, "archive-v0/" + from, "archive-v0/" + to);
      if (fixed != target) {
        fs::path tmp = temp_path_beside(it->path());
        fs::create_symlink(fixed, tmp);
        if (::rename(tmp.c_str(), it->path().c_str()) != 0)
          throw_errno("cannot replace " + it->path().string());
      }
      continue;
    }
    if (!it->is_regular_file(ec) || it->file_size(ec) > (1 << 20)) continue;
    std::string bytes = read_file(it->path());
    std::string patched = bytes;
    for (const auto& [from, to] : renamed) replace_all(patched, from, to);
    if (patched != bytes) write_file_atomic(it->path(), patched);
  }
  if (ec) throw Error("cannot read uv cache " + root.string() + ": " + ec.message());
  return static_cast<int>(renamed.size());
}

std::map<std::string, std::string> archive_aliases(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& id : list_dir(root / "archive-v0")) {
    fs::path p = root / "archive-v0" / id;
    if (!is_alias_link(p)) continue;
    std::error_code ec;
    std::string target = fs::read_symlink(p, ec).string();
    // Only our own aliases: a sibling's plain name of the same length.
    if (!ec && target.size() == id.size() && target.find('/') == std::string::npos) out[id] = target;
  }
  return out;
}

std::function<std::string(const std::string&)> archive_link_mapper(const fs::path& root,
                                                                   const std::string& image_cache_dir) {
  auto aliases = archive_aliases(root);
  if (aliases.empty()) return nullptr;
  return [aliases = std::move(aliases), prefix = image_cache_dir + "/archive-v0/"](const std::string& target) {
    if (target.compare(0, prefix.size(), prefix) != 0) return target;
    std::size_t end = target.find('/', prefix.size());
    auto it = aliases.find(target.substr(prefix.size(), end == std::string::npos ? end : end - prefix.size()));
    if (it == aliases.end()) return target;
    return prefix + it->second + (end == std::string::npos ? std::string() : target.substr(end));
  };
}

}  // namespace dockless
