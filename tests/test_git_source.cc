// The git source against real git repositories made in temp dirs (file://
// URLs; the one network URL is a closed port on loopback).
#include <catch2/catch.hpp>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/error.h"
#include "src/build/git_source.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using dockless::Error;
using dockless::fetch_git_source;
using dockless::GitCheckout;
using dockless::GitSource;
using dockless::redact_url;
using dockless::test::TempDir;
using dockless::test::write_text;

namespace {

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// Runs a shell command; its stdout, trailing newline removed. Fails the test on a non-zero exit.
std::string sh(const std::string& cmd) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  int status = ::pclose(p);
  INFO("command: " << cmd << "\noutput: " << out);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

/// git in `repo`, with a fixed identity and none of the user's signing setup.
std::string git(const fs::path& repo, const std::string& args) {
  return sh("git -C " + quote(repo.string()) +
            " -c user.name=Test -c user.email=test@example.com -c commit.gpgsign=false -c tag.gpgsign=false " + args);
}

/// Sets environment variables for one scope (the tests run one at a time).
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const auto& [name, value] : vars) {
      const char* old = ::getenv(name);
      saved_.push_back({name, old ? std::optional<std::string>(old) : std::nullopt});
      ::setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, old] : saved_) {
      if (old) {
        ::setenv(name.c_str(), old->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

std::string error_of(const GitSource& src, const fs::path& cache, const fs::path& dest, bool keep = false) {
  try {
    fetch_git_source(src, cache, dest, keep);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

/// A repository: main (c1 -> c3), feature (c1 -> c2), annotated tag v1.0 at
/// c1, lightweight tag light at c2, an executable file and a symlink.
struct Repo {
  TempDir tmp;
  fs::path src = tmp / "src";
  fs::path cache = tmp / "cache";
  std::string url = "file://" + src.string();
  std::string c1, c2, c3;

  Repo() {
    sh("git init -q -b main " + quote(src.string()));
    write_text(src / "README.md", "hello\n");
    write_text(src / "bin" / "run.sh", "#!/bin/sh\necho run\n");
    fs::permissions(src / "bin" / "run.sh", fs::perms(0755));
    fs::create_symlink("README.md", src / "link");
    fs::create_symlink("../README.md", src / "bin" / "readme-link");
    write_text(src / "sub" / "dir" / "deep.txt", "deep\n");
    git(src, "add -A");
    git(src, "commit -q -m one");
    c1 = git(src, "rev-parse HEAD");
    git(src, "tag -a v1.0 -m 'release 1.0'");
    git(src, "checkout -q -b feature");
    write_text(src / "feature.txt", "feature\n");
    git(src, "add -A");
    git(src, "commit -q -m two");
    c2 = git(src, "rev-parse HEAD");
    git(src, "tag light");
    git(src, "checkout -q main");
    write_text(src / "README.md", "hello again\n");
    git(src, "commit -q -am three");
    c3 = git(src, "rev-parse HEAD");
  }
};

/// path -> "kind:content-or-target[:x]" for everything below root but .git.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const std::string rel = fs::relative(it->path(), root).string();
    if (rel == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    struct stat st {};
    REQUIRE(::lstat(it->path().c_str(), &st) == 0);
    if (S_ISLNK(st.st_mode)) {
      out[rel] = "link:" + fs::read_symlink(it->path()).string();
    } else if (S_ISDIR(st.st_mode)) {
      out[rel] = "dir";
    } else {
      std::ifstream in(it->path(), std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      out[rel] = "file:" + ss.str() + ((st.st_mode & S_IXUSR) ? ":x" : "");
    }
  }
  return out;
}

/// What `git archive` of the commit holds, extracted by tar.
std::map<std::string, std::string> archive_of(const Repo& repo, const std::string& commit, const fs::path& where) {
  fs::create_directories(where);
  sh("git -C " + quote(repo.src.string()) + " archive --format=tar " + commit + " | tar -x -C " +
     quote(where.string()));
  return snapshot(where);
}

/// Modes are git's: 0644 or 0755 files, 0755 directories.
void check_modes(const fs::path& root) {
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    if (it->path().filename() == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    struct stat st {};
    REQUIRE(::lstat(it->path().c_str(), &st) == 0);
    INFO(it->path());
    if (S_ISDIR(st.st_mode)) CHECK((st.st_mode & 07777) == 0755);
    if (S_ISREG(st.st_mode)) CHECK(((st.st_mode & 07777) == 0644 || (st.st_mode & 07777) == 0755));
  }
}

}  // namespace

TEST_CASE("git source: every kind of ref exports that commit's tree", "[git_source]") {
  Repo repo;
  struct Case {
    std::string ref;
    std::string commit;
    std::string resolved;
  };
  const std::vector<Case> cases = {
      {"", repo.c3, "HEAD"},
      {"HEAD", repo.c3, "HEAD"},
      {"main", repo.c3, "refs/heads/main"},
      {"feature", repo.c2, "refs/heads/feature"},
      {"v1.0", repo.c1, "refs/tags/v1.0"},  // annotated: peeled to its commit
      {"light", repo.c2, "refs/tags/light"},
      {"refs/heads/feature", repo.c2, "refs/heads/feature"},
      {repo.c1, repo.c1, ""},
      {repo.c2.substr(0, 7), repo.c2, ""},
  };
  int n = 0;
  for (const Case& c : cases) {
    INFO("ref \"" << c.ref << "\"");
    const fs::path dest = repo.tmp / ("out" + std::to_string(n)) / "src";
    GitCheckout co = fetch_git_source({repo.url, c.ref}, repo.cache, dest, false);
    CHECK(co.commit == c.commit);
    CHECK(co.resolved_ref == c.resolved);
    CHECK(co.tree == dest);
    CHECK_FALSE(fs::exists(dest / ".git"));
    CHECK(snapshot(dest) == archive_of(repo, c.commit, repo.tmp / ("ref" + std::to_string(n))));
    check_modes(dest);
    ++n;
  }
  // The details git archive must keep.
  const fs::path dest = repo.tmp / "out0" / "src";
  CHECK(fs::is_symlink(dest / "link"));
  CHECK(fs::read_symlink(dest / "link") == "README.md");
  CHECK(fs::read_symlink(dest / "bin" / "readme-link") == "../README.md");
  struct stat st {};
  REQUIRE(::stat((dest / "bin" / "run.sh").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  REQUIRE(::stat((dest / "README.md").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
  // One mirror, bare, beside its lock file.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(repo.cache / "git")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  REQUIRE(names.size() == 2);
  CHECK(names[0].size() == 64 + 4);
  CHECK(names[1] == names[0] + ".lock");
  CHECK(sh("git -C " + quote((repo.cache / "git" / names[0]).string()) + " rev-parse --is-bare-repository") == "true");
}

TEST_CASE("git source: keep_git_dir makes a real repository at the commit", "[git_source]") {
  Repo repo;
  SECTION("a branch: HEAD on it, origin/<branch> upstream") {
    const fs::path dest = repo.tmp / "branch";
    GitCheckout co = fetch_git_source({repo.url, "feature"}, repo.cache, dest, true);
    CHECK(co.commit == repo.c2);
    CHECK(sh("git -C " + quote(dest.string()) + " rev-parse HEAD") == repo.c2);
    CHECK(sh("git -C " + quote(dest.string()) + " symbolic-ref HEAD") == "refs/heads/feature");
    CHECK(sh("git -C " + quote(dest.string()) + " rev-parse @{upstream}") == repo.c2);
    CHECK(sh("git -C " + quote(dest.string()) + " status --porcelain") == "");
    CHECK(sh("git -C " + quote(dest.string()) + " remote get-url origin") == repo.url);
    // Self-contained: no alternates into the cache, the whole history present.
    CHECK_FALSE(fs::exists(dest / ".git" / "objects" / "info" / "alternates"));
    CHECK(sh("git -C " + quote(dest.string()) + " rev-list --count HEAD") == "2");
    CHECK(sh("git -C " + quote(dest.string()) + " describe --tags") == "light");
    CHECK_FALSE(fs::exists(dest / ".git" / "logs"));
    CHECK(snapshot(dest) == archive_of(repo, repo.c2, repo.tmp / "ref"));
  }
  SECTION("a tag: detached HEAD, the tag present") {
    const fs::path dest = repo.tmp / "tag";
    fetch_git_source({repo.url, "v1.0"}, repo.cache, dest, true);
    CHECK(sh("git -C " + quote(dest.string()) + " rev-parse HEAD") == repo.c1);
    CHECK(sh("git -C " + quote(dest.string()) + " describe --tags --exact-match") == "v1.0");
    CHECK(sh("git -C " + quote(dest.string()) + " status --porcelain") == "");
    CHECK(sh("git -C " + quote(dest.string()) + " for-each-ref --format='%(refname)' refs/dockless") == "");
  }
}

TEST_CASE("git source: a second fetch picks up new commits, pruned branches", "[git_source]") {
  Repo repo;
  CHECK(fetch_git_source({repo.url, ""}, repo.cache, repo.tmp / "a", false).commit == repo.c3);
  write_text(repo.src / "new.txt", "new\n");
  git(repo.src, "add -A");
  git(repo.src, "commit -q -m four");
  const std::string c4 = git(repo.src, "rev-parse HEAD");
  GitCheckout co = fetch_git_source({repo.url, "main"}, repo.cache, repo.tmp / "b", false);
  CHECK(co.commit == c4);
  CHECK(fs::exists(repo.tmp / "b" / "new.txt"));
  CHECK(fetch_git_source({repo.url, ""}, repo.cache, repo.tmp / "c", false).commit == c4);

  git(repo.src, "branch -D feature");
  std::string err = error_of({repo.url, "feature"}, repo.cache, repo.tmp / "d");
  CHECK_THAT(err, Catch::Matchers::Contains("\"feature\" not found"));
  // A commit that is in the mirror needs no fetch, even once the source is gone.
  fs::rename(repo.src, repo.tmp / "moved");
  CHECK(fetch_git_source({repo.url, repo.c2}, repo.cache, repo.tmp / "e", false).commit == repo.c2);
}

TEST_CASE("git source: a commit no branch or tag reaches is fetched by id", "[git_source]") {
  Repo repo;
  git(repo.src, "checkout -q -b tmp");
  write_text(repo.src / "orphan.txt", "orphan\n");
  git(repo.src, "add -A");
  git(repo.src, "commit -q -m orphan");
  const std::string orphan = git(repo.src, "rev-parse HEAD");
  git(repo.src, "checkout -q main");
  git(repo.src, "branch -D tmp");
  git(repo.src, "config uploadpack.allowAnySHA1InWant true");
  GitCheckout co = fetch_git_source({repo.url, orphan}, repo.cache, repo.tmp / "out", false);
  CHECK(co.commit == orphan);
  CHECK(fs::exists(repo.tmp / "out" / "orphan.txt"));
}

TEST_CASE("git source: errors", "[git_source]") {
  using Catch::Matchers::Contains;
  Repo repo;
  SECTION("an unknown ref names the ref, the URL and what exists") {
    std::string err = error_of({repo.url, "featur"}, repo.cache, repo.tmp / "out");
    CHECK_THAT(err, Contains("\"featur\""));
    CHECK_THAT(err, Contains(repo.url));
    CHECK_THAT(err, Contains("branches: feature, main"));
    CHECK_THAT(err, Contains("tags: light, v1.0"));
    CHECK_FALSE(fs::exists(repo.tmp / "out"));
  }
  SECTION("an unreachable URL: the message names it without credentials") {
    ScopedEnv direct({{"no_proxy", "127.0.0.1"}, {"NO_PROXY", "127.0.0.1"}});  // loopback only, even behind a proxy
    std::string err = error_of({"https://user:secret@127.0.0.1:9/x.git", "main"}, repo.cache, repo.tmp / "out");
    INFO(err);
    CHECK_THAT(err, Contains("https://127.0.0.1:9/x.git"));
    CHECK_THAT(err, Contains("git fetch"));
    CHECK(err.find("secret") == std::string::npos);
    CHECK(err.find("user") == std::string::npos);
    CHECK_FALSE(fs::exists(repo.tmp / "out"));
  }
  SECTION("a repository that does not exist") {
    std::string err = error_of({(repo.tmp / "nothing").string(), ""}, repo.cache, repo.tmp / "out");
    CHECK_THAT(err, Contains((repo.tmp / "nothing").string()));
  }
  SECTION("dest must not exist") {
    fs::create_directories(repo.tmp / "out");
    CHECK_THAT(error_of({repo.url, "main"}, repo.cache, repo.tmp / "out"), Contains("already exists"));
  }
  SECTION("a malformed ref") {
    CHECK_THAT(error_of({repo.url, "main~1"}, repo.cache, repo.tmp / "out"), Contains("invalid git ref"));
    CHECK_THAT(error_of({repo.url, "--upload-pack=x"}, repo.cache, repo.tmp / "out"), Contains("invalid git ref"));
  }
}

TEST_CASE("git source: two threads fetching one URL both succeed", "[git_source]") {
  Repo repo;
  GitCheckout a, b;
  std::string err_a, err_b;
  auto run = [&](const fs::path& dest, GitCheckout& out, std::string& err) {
    try {
      out = fetch_git_source({repo.url, "main"}, repo.cache, dest, false);
    } catch (const std::exception& e) {
      err = e.what();
    }
  };
  std::thread t1(run, repo.tmp / "one", std::ref(a), std::ref(err_a));
  std::thread t2(run, repo.tmp / "two", std::ref(b), std::ref(err_b));
  t1.join();
  t2.join();
  CHECK(err_a == "");
  CHECK(err_b == "");
  CHECK(a.commit == repo.c3);
  CHECK(b.commit == repo.c3);
  CHECK(snapshot(repo.tmp / "one") == snapshot(repo.tmp / "two"));
}

TEST_CASE("git source: submodules", "[git_source]") {
  TempDir tmp;
  const fs::path lib = tmp / "lib", app = tmp / "app";
  sh("git init -q -b main " + quote(lib.string()));
  write_text(lib / "lib.txt", "lib\n");
  git(lib, "add -A");
  git(lib, "commit -q -m lib");
  const std::string lib_commit = git(lib, "rev-parse HEAD");
  sh("git init -q -b main " + quote(app.string()));
  write_text(app / "app.txt", "app\n");
  git(app, "-c protocol.file.allow=always submodule add -q ../lib vendor/lib");
  git(app, "commit -q -m app");
  write_text(lib / "lib.txt", "later\n");  // the gitlink, not the branch, decides
  git(lib, "commit -q -am later");
  const std::string url = "file://" + app.string();

  SECTION("git's policy refuses file:// submodules by default") {
    std::string err = error_of({url, ""}, tmp / "cache", tmp / "out");
    CHECK_THAT(err, Catch::Matchers::Contains("submodule vendor/lib"));
    CHECK_FALSE(fs::exists(tmp / "out"));
  }
  SECTION("allowed by the user's configuration: exported in place") {
    std::string err;
    {
      ScopedEnv allow({{"GIT_CONFIG_COUNT", "1"},
                       {"GIT_CONFIG_KEY_0", "protocol.file.allow"},
                       {"GIT_CONFIG_VALUE_0", "always"}});
      err = error_of({url, ""}, tmp / "cache", tmp / "out", true);
    }
    REQUIRE(err == "");
    std::ifstream in(tmp / "out" / "vendor" / "lib" / "lib.txt");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(text == "lib\n");
    CHECK_FALSE(fs::exists(tmp / "out" / "vendor" / "lib" / ".git"));
    CHECK(sh("git -C " + quote((tmp / "out").string()) + " status --porcelain") == "");
    CHECK(sh("git -C " + quote((tmp / "out").string()) + " ls-tree HEAD vendor/lib").find(lib_commit) !=
          std::string::npos);
  }
}

TEST_CASE("git source: a SHA-256 repository", "[git_source]") {
  TempDir tmp;
  const fs::path src = tmp / "src";
  sh("git init -q -b main --object-format=sha256 " + quote(src.string()));
  write_text(src / "a.txt", "a\n");
  git(src, "add -A");
  git(src, "commit -q -m a");
  const std::string commit = git(src, "rev-parse HEAD");
  GitCheckout co = fetch_git_source({"file://" + src.string(), ""}, tmp / "cache", tmp / "out", true);
  CHECK(co.commit == commit);
  CHECK(co.commit.size() == 64);
  CHECK(sh("git -C " + quote((tmp / "out").string()) + " rev-parse HEAD") == commit);
  CHECK(fs::exists(tmp / "out" / "a.txt"));
}

TEST_CASE("git source: redact_url", "[git_source]") {
  CHECK(redact_url("https://u:p@host/r") == "https://host/r");
  CHECK(redact_url("https://token@github.com/org/repo.git") == "https://github.com/org/repo.git");
  CHECK(redact_url("https://u:p@ss@host:8443/r?x=1") == "https://host:8443/r?x=1");
  CHECK(redact_url("ssh://git@host/r.git") == "ssh://host/r.git");
  CHECK(redact_url("https://host/path/with@sign") == "https://host/path/with@sign");
  CHECK(redact_url("git@github.com:org/repo.git") == "git@github.com:org/repo.git");
  CHECK(redact_url("/srv/git/repo.git") == "/srv/git/repo.git");
  CHECK(redact_url("file:///srv/git/repo.git") == "file:///srv/git/repo.git");
}
