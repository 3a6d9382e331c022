// The sandbox against a real Debian 12 + python3 root filesystem (the fixture
// of scripts/fixtures/debian-rootfs.sh). Every case that runs something checks
// what reached the host: the bind dirs, and that the rootfs is unchanged.
// Unprivileged cases fork, drop to uid 65534 and report through a pipe.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/file_util.h"
#include "src/sandbox/sandbox.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using dockless::BindMount;
using dockless::Error;
using dockless::Isolation;
using dockless::RootfsMethod;
using dockless::SandboxSpec;
using dockless::run_in_sandbox;
using dockless::test::TempDir;
using dockless::test::write_text;

namespace {

constexpr uid_t kNobody = 65534;

// The Debian rootfs: $DOCKLESS_TEST_ROOTFS, else the fixture script (root
// only), else its cache. No fixture is a failure, never a skip.
fs::path fixture_rootfs() {
  static fs::path cached;
  if (!cached.empty()) return cached;
  if (const char* env = std::getenv("DOCKLESS_TEST_ROOTFS"); env != nullptr && *env != '\0') {
    if (!fs::is_regular_file(fs::path(env) / "usr/bin/python3"))
      FAIL("DOCKLESS_TEST_ROOTFS=" << env << " has no usr/bin/python3");
    return cached = env;
  }
  fs::path script = fs::path(__FILE__).parent_path().parent_path() / "scripts/fixtures/debian-rootfs.sh";
  if (::geteuid() == 0 && fs::exists(script)) {
    std::string cmd = "bash '" + script.string() + "'";
    if (FILE* p = ::popen(cmd.c_str(), "r"); p != nullptr) {
      char buf[4096];
      std::string out;
      while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
      ::pclose(p);
      while (!out.empty() && out.back() == '\n') out.pop_back();
      if (!out.empty() && fs::is_regular_file(fs::path(out) / "usr/bin/python3")) return cached = out;
    }
  }
  const char* dir = std::getenv("DOCKLESS_FIXTURES");
  fs::path fixtures = dir != nullptr && *dir != '\0' ? dir : "/var/cache/dockless/fixtures";
  if (fs::exists(fixtures / "debian12-py-rootfs.stamp") &&
      fs::is_regular_file(fixtures / "debian12-py-rootfs/usr/bin/python3"))
    return cached = fixtures / "debian12-py-rootfs";
  FAIL("no Debian 12 rootfs fixture: set DOCKLESS_TEST_ROOTFS=DIR, or build it as root with "
       "`bash scripts/fixtures/debian-rootfs.sh` (needs debootstrap and the Debian mirror)");
  return {};
}

const std::vector<std::string> kEnv = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root",
                                       "LANG=C.UTF-8"};

SandboxSpec make_spec(const fs::path& scratch, std::vector<std::string> argv,
                      Isolation iso = Isolation::kUserns) {
  SandboxSpec s;
  s.isolation = iso;
  s.rootfs = fixture_rootfs();
  s.scratch = scratch;
  s.argv = std::move(argv);
  s.env = kEnv;
  return s;
}

struct Result {
  int status = -1;
  std::vector<std::string> lines;
  std::vector<std::string> notes;
};

Result run(SandboxSpec spec) {
  Result r;
  spec.on_output = [&](std::string_view l) { r.lines.emplace_back(l); };
  spec.on_note = [&](std::string_view n) { r.notes.emplace_back(n); };
  r.status = run_in_sandbox(spec);
  return r;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

// Every path of the rootfs with type, mode, size, owner and mtime.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    std::ostringstream v;
    v << st.st_mode << ' ' << st.st_size << ' ' << st.st_uid << ' ' << st.st_mtim.tv_sec << '.'
      << st.st_mtim.tv_nsec;
    out[it->path().lexically_relative(root).string()] = v.str();
  }
  struct stat st;
  ::lstat(root.c_str(), &st);
  out["."] = std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
  return out;
}

bool mounted_under(const fs::path& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.find(dir.string()) != std::string::npos) return true;
  return false;
}

std::vector<std::string> host_lines(const char* file) {
  std::vector<std::string> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// Runs fn in a forked child and returns what it wrote to the pipe. The child
// never returns into Catch2.
template <typename Fn>
std::string in_child(Fn fn) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::string out;
    try {
      out = fn();
    } catch (const std::exception& e) {
      out = std::string("exception: ") + e.what();
    }
    dockless::write_all(fds[1], out.data(), out.size(), "pipe");
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  REQUIRE(WIFEXITED(st));
  return out;
}

void become_nobody() {
  if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
    throw std::runtime_error("cannot drop to uid 65534");
  // A program started by exec is dumpable; one that changed its uids is not
  // until it execs, and its /proc files (uid_map of its children) would stay
  // root's.
  ::prctl(PR_SET_DUMPABLE, 1);
}

// The unprivileged cases run as 65534 when the tests run as root (they fork
// and drop), else as the user running the tests.
uid_t unprivileged_uid() { return ::geteuid() == 0 ? kNobody : ::geteuid(); }
void drop_if_root() {
  if (::geteuid() == 0) become_nobody();
}
void give_to_unprivileged(const fs::path& p) {
  if (::geteuid() == 0 && ::chown(p.c_str(), kNobody, kNobody) != 0)
    throw std::runtime_error("chown " + p.string());
}

// Cases that need root (chroot mode, mounts in the test itself) carry the
// hidden tag [.root], not [sandbox]: only the unit_root meson test runs
// them, and meson reports it skipped without root. Run by hand without root
// they fail, never pass.
void require_root(const char* what) {
  if (::geteuid() != 0) FAIL("needs root: " << what << " (meson test unit_root skips without it)");
}

// Runs of blanks made one space, none at line starts (as in /proc/PID/uid_map).
std::string squeeze(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ' ' || c == '\t') {
      if (!out.empty() && out.back() != ' ' && out.back() != '\n') out += ' ';
    } else {
      if (c == '\n' && !out.empty() && out.back() == ' ') out.pop_back();
      out += c;
    }
  }
  return out;
}

std::string describe(const Result& r) {
  return "status=" + std::to_string(r.status) + "\n" + join(r.lines);
}

// Whether any process runs with exactly this command line.
bool process_running(const std::string& cmdline) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::ifstream in(e.path() / "cmdline");
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(s.begin(), s.end(), '\0', ' ');
    if (s == cmdline + " ") return true;
  }
  return false;
}

const char* kPyCase1 =
    "import os,sys; print(os.getuid()); open('/opt/out/hello','w').write('hi'); "
    "open('/etc/x','w').write('x'); print(open('/etc/x').read())";

}  // namespace

TEST_CASE("parse_isolation and running_in_container", "[sandbox]") {
  CHECK(dockless::parse_isolation("userns") == Isolation::kUserns);
  CHECK(dockless::parse_isolation("chroot") == Isolation::kChroot);
  CHECK(dockless::parse_isolation("host") == Isolation::kHost);
  CHECK_THROWS_AS(dockless::parse_isolation("docker"), dockless::UsageError);
  bool marker = fs::exists("/.dockerenv") || fs::exists("/run/.containerenv");
  if (marker) CHECK(dockless::running_in_container());
}

TEST_CASE("userns: uid 0 inside; bind output reaches the host; rootfs untouched", "[sandbox]") {
  fs::path rootfs = fixture_rootfs();
  TempDir tmp;
  fs::create_directories(tmp / "out");
  fs::create_directories(tmp / "scratch");
  auto before = snapshot(rootfs);
  SandboxSpec spec = make_spec(tmp / "scratch", {"python3", "-c", kPyCase1});
  spec.binds = {{tmp / "out", "/opt/out"}};
  Result r = run(spec);
  INFO(describe(r) << join(r.notes));
  CHECK(r.status == 0);
  CHECK(r.lines == std::vector<std::string>{"0", "x"});
  CHECK(dockless::read_file(tmp / "out/hello") == "hi");
  CHECK_FALSE(fs::exists(rootfs / "etc/x"));
  CHECK_FALSE(fs::exists(rootfs / "opt/out"));
  CHECK(snapshot(rootfs) == before);
  // No mount left on the host, and the per-run dir (upper layer) is gone.
  CHECK_FALSE(mounted_under(tmp.path()));
  CHECK(fs::is_empty(tmp / "scratch"));
}

TEST_CASE("userns: each rootfs method works", "[sandbox]") {
  fs::path rootfs = fixture_rootfs();
  std::vector<RootfsMethod> methods = {RootfsMethod::kOverlay, RootfsMethod::kCopy};
  if (::access("/usr/bin/fuse-overlayfs", X_OK) == 0) methods.push_back(RootfsMethod::kFuseOverlayfs);
  auto before = snapshot(rootfs);
  for (RootfsMethod m : methods) {
    TempDir tmp;
    fs::create_directories(tmp / "out");
    SandboxSpec spec = make_spec(tmp / "scratch", {"python3", "-c", kPyCase1});
    spec.binds = {{tmp / "out", "/opt/out"}};
    spec.rootfs_method = m;
    if (m == RootfsMethod::kFuseOverlayfs && ::access("/dev/fuse", R_OK | W_OK) != 0) {
      CHECK_THROWS_WITH(run(spec), Catch::StartsWith("sandbox (userns): mount fuse-overlayfs on ") &&
                                       Catch::Contains("/dev/fuse"));
      continue;
    }
    if (m == RootfsMethod::kCopy && ::geteuid() != 0) {
      // A user cannot copy root's unreadable files (/etc/shadow): the copy
      // fallback needs a rootfs the user can read, as its own snapshots are.
      CHECK_THROWS_WITH(run(spec), Catch::StartsWith("sandbox (userns): copy ") &&
                                       Catch::Contains("Permission denied (and "));
      continue;
    }
    Result r = run(spec);
    INFO("method " << static_cast<int>(m) << "\n" << describe(r));
    CHECK(r.status == 0);
    CHECK(r.lines == std::vector<std::string>{"0", "x"});
    CHECK(dockless::read_file(tmp / "out/hello") == "hi");
    CHECK_FALSE(mounted_under(tmp.path()));
  }
  CHECK(snapshot(rootfs) == before);
}

TEST_CASE("userns: a read-only bind cannot be written", "[sandbox]") {
  TempDir tmp;
  write_text(tmp / "ro/data.txt", "orig");
  SandboxSpec spec = make_spec(
      tmp / "scratch",
      {"python3", "-c",
       "import errno\nprint(open('/src/data.txt').read())\n"
       "for p in ('/src/data.txt', '/src/new'):\n"
       "  try:\n    open(p, 'w').write('x'); print('written')\n"
       "  except OSError as e: print(errno.errorcode[e.errno])"});
  spec.binds = {{tmp / "ro", "/src", true}};
  Result r = run(spec);
  INFO(describe(r));
  CHECK(r.status == 0);
  CHECK(r.lines == std::vector<std::string>{"orig", "EROFS", "EROFS"});
  CHECK(dockless::read_file(tmp / "ro/data.txt") == "orig");
  CHECK_FALSE(fs::exists(tmp / "ro/new"));
}

TEST_CASE("userns: exit status and death by signal", "[sandbox]") {
  TempDir tmp;
  CHECK(run(make_spec(tmp.path(), {"sh", "-c", "exit 7"})).status == 7);
  CHECK(run(make_spec(tmp.path(), {"sh", "-c", "kill -9 $$"})).status == 128 + 9);
  CHECK(run(make_spec(tmp.path(), {"true"})).status == 0);
}

TEST_CASE("userns: output lines in order, last one without newline", "[sandbox]") {
  TempDir tmp;
  Result r = run(make_spec(tmp.path(), {"sh", "-c", "echo one; echo two >&2; printf 'three\\n\\nlast'"}));
  CHECK(r.status == 0);
  CHECK(r.lines == std::vector<std::string>{"one", "two", "three", "", "last"});
}

TEST_CASE("userns: much output and parallel sandboxes from threads", "[sandbox]") {
  TempDir tmp;
  Result big = run(make_spec(tmp.path(), {"seq", "1", "200000"}));
  CHECK(big.status == 0);
  REQUIRE(big.lines.size() == 200000);
  CHECK(big.lines.front() == "1");
  CHECK(big.lines.back() == "200000");

  // fork() from a multithreaded process: each run must see only its own
  // output and finish although the others' children hold copies of fds.
  constexpr int kThreads = 4;
  std::vector<Result> results(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        SandboxSpec spec = make_spec(
            tmp / ("s" + std::to_string(t)),
            {"sh", "-c", "for i in $(seq 1 300); do echo T" + std::to_string(t) + "-$i; done; exit " +
                             std::to_string(t)});
        results[static_cast<std::size_t>(t)] = run(spec);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(t)] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    const Result& r = results[static_cast<std::size_t>(t)];
    INFO("thread " << t << ": " << errors[static_cast<std::size_t>(t)]);
    CHECK(errors[static_cast<std::size_t>(t)].empty());
    CHECK(r.status == t);
    REQUIRE(r.lines.size() == 300);
    CHECK(r.lines.front() == "T" + std::to_string(t) + "-1");
    CHECK(r.lines.back() == "T" + std::to_string(t) + "-300");
  }
}

TEST_CASE("userns: the environment is exactly spec.env, PATH from it", "[sandbox]") {
  TempDir tmp;
  ::setenv("DOCKLESS_SANDBOX_LEAK", "1", 1);
  SandboxSpec spec = make_spec(tmp.path(), {"env"});
  spec.env = {"PATH=/nonexistent:/usr/bin", "A=1", "B=two words"};
  Result r = run(spec);
  ::unsetenv("DOCKLESS_SANDBOX_LEAK");
  CHECK(r.status == 0);
  CHECK(r.lines == spec.env);
}

TEST_CASE("userns: /tmp /proc /dev resolv.conf and workdir", "[sandbox]") {
  TempDir tmp;
  SandboxSpec spec = make_spec(
      tmp.path(),
      {"sh", "-c",
       "ls -A /tmp | wc -l; touch /tmp/w && echo tmp-writable; test -e /proc/self/status && "
       "echo proc; echo $$; echo x >/dev/null && echo devnull; head -c 5 /dev/urandom | wc -c; "
       "pwd; echo ---; cat /etc/resolv.conf"});
  spec.workdir = "/work/dir";
  Result r = run(spec);
  INFO(describe(r));
  REQUIRE(r.status == 0);
  REQUIRE(r.lines.size() >= 8);
  CHECK(r.lines[0] == "0");
  CHECK(r.lines[1] == "tmp-writable");
  CHECK(r.lines[2] == "proc");
  CHECK(r.lines[3] == "2");  // pid 1 is the sandbox's init: a pid namespace
  CHECK(r.lines[4] == "devnull");
  CHECK(r.lines[5] == "5");
  CHECK(r.lines[6] == "/work/dir");
  CHECK(r.lines[7] == "---");
  std::vector<std::string> resolv(r.lines.begin() + 8, r.lines.end());
  CHECK(resolv == host_lines("/etc/resolv.conf"));
}

TEST_CASE("userns: the host's / is not visible", "[sandbox]") {
  TempDir tmp;
  // /var/tmp exists in the image too, so only the marker tells them apart.
  std::string tmpl = "/var/tmp/dockless-marker-XXXXXX";
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  write_text(fs::path(tmpl) / "marker", "host");
  std::string script = "for p in " + tmpl + "/marker /work/main /root/.cache/dockless-none " +
                       tmp.path().string() + "; do test -e $p && echo visible $p; done; echo done";
  Result r = run(make_spec(tmp / "scratch", {"sh", "-c", script}));
  fs::remove_all(tmpl);
  CHECK(r.status == 0);
  CHECK(r.lines == std::vector<std::string>{"done"});
}

TEST_CASE("userns: a missing command or a bad bind is a clear Error", "[sandbox]") {
  TempDir tmp;
  CHECK_THROWS_WITH(run(make_spec(tmp.path(), {"no-such-command-xyz"})),
                    Catch::Contains("run 'no-such-command-xyz'") &&
                        Catch::Contains("No such file or directory"));
  CHECK_THROWS_WITH(run(make_spec(tmp.path(), {"/opt/none/bin/tool"})),
                    Catch::Contains("/opt/none/bin/tool"));
  SandboxSpec spec = make_spec(tmp.path(), {"true"});
  fs::create_directories(tmp / "dir");
  spec.binds = {{tmp / "dir", "/etc/passwd"}};  // a dir over a file
  CHECK_THROWS_WITH(run(spec), Catch::StartsWith("sandbox (userns): bind ") &&
                                   Catch::Contains("/etc/passwd") &&
                                   Catch::Contains("try --isolation chroot"));
  spec.binds = {{tmp / "missing", "/opt/x"}};
  CHECK_THROWS_AS(run(spec), Error);
}

TEST_CASE("userns: an exception in on_output kills the command", "[sandbox]") {
  TempDir tmp;
  for (Isolation iso : {Isolation::kUserns, Isolation::kChroot}) {
    if (iso == Isolation::kChroot && ::geteuid() != 0) continue;
    SandboxSpec spec = make_spec(tmp / "scratch", {"sh", "-c", "echo start; exec sleep 876543"}, iso);
    spec.on_output = [](std::string_view) { throw std::runtime_error("stop"); };
    CHECK_THROWS_WITH(run_in_sandbox(spec), "stop");
    CHECK_FALSE(process_running("sleep 876543"));
    CHECK(fs::is_empty(tmp / "scratch"));
  }
}

TEST_CASE("chroot: same job as userns; bind dirs back in place", "[.root]") {
  require_root("chroot mode");
  fs::path rootfs = fixture_rootfs();
  TempDir tmp;
  write_text(tmp / "out/keep", "kept");
  write_text(tmp / "ro/data.txt", "orig");
  auto before = snapshot(rootfs);
  SandboxSpec spec = make_spec(
      tmp / "scratch",
      {"python3", "-c",
       std::string(kPyCase1) +
           "\nopen('/src/data.txt','w').write('changed')\nprint(open('/opt/out/keep').read())"},
      Isolation::kChroot);
  spec.binds = {{tmp / "out", "/opt/out"}, {tmp / "ro", "/src", true}};
  Result r = run(spec);
  INFO(describe(r) << join(r.notes));
  CHECK(r.status == 0);
  CHECK(r.lines == std::vector<std::string>{"0", "x", "kept"});
  CHECK(dockless::read_file(tmp / "out/hello") == "hi");
  CHECK(dockless::read_file(tmp / "out/keep") == "kept");
  CHECK(dockless::read_file(tmp / "ro/data.txt") == "orig");  // read-only binds are copies
  CHECK(snapshot(rootfs) == before);
  CHECK(fs::is_empty(tmp / "scratch"));

  // Exit codes, /dev nodes, resolv.conf, env.
  Result s = run(make_spec(tmp / "scratch",
                           {"sh", "-c", "echo x >/dev/null && echo devnull; ls -A /tmp | wc -l; "
                                        "cat /etc/resolv.conf; exit 3"},
                           Isolation::kChroot));
  CHECK(s.status == 3);
  std::vector<std::string> want = {"devnull", "0"};
  for (auto& l : host_lines("/etc/resolv.conf")) want.push_back(l);
  CHECK(s.lines == want);
  CHECK_THROWS_WITH(run(make_spec(tmp / "scratch", {"no-such-command-xyz"}, Isolation::kChroot)),
                    Catch::StartsWith("sandbox (chroot): run 'no-such-command-xyz'"));
  // The bind is back even when the command fails to start.
  spec.argv = {"no-such-command-xyz"};
  CHECK_THROWS_AS(run(spec), Error);
  CHECK(dockless::read_file(tmp / "out/keep") == "kept");
}

TEST_CASE("chroot: a bind on another filesystem is copied in and back", "[.root]") {
  require_root("chroot mode");
  TempDir tmp;
  std::string tmpl = "/dev/shm/dockless-bind-XXXXXX";  // tmpfs: rename(2) gives EXDEV
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  write_text(fs::path(tmpl) / "old", "old");
  SandboxSpec spec = make_spec(tmp / "scratch", {"sh", "-c", "rm /out/old; echo new >/out/new"},
                               Isolation::kChroot);
  spec.binds = {{tmpl, "/out"}};
  Result r = run(spec);
  bool has_new = fs::exists(fs::path(tmpl) / "new");
  bool has_old = fs::exists(fs::path(tmpl) / "old");
  fs::remove_all(tmpl);
  CHECK(r.status == 0);
  CHECK(has_new);
  CHECK_FALSE(has_old);
}

TEST_CASE("chroot: refused when not root", "[sandbox]") {
  TempDir tmp;
  std::string out = in_child([&]() -> std::string {
    drop_if_root();
    try {
      run_in_sandbox(make_spec(tmp.path(), {"true"}, Isolation::kChroot));
      return "ran";
    } catch (const Error& e) {
      return e.what();
    }
  });
  CHECK_THAT(out, Catch::StartsWith("sandbox (chroot): needs root"));
}

TEST_CASE("host: refused outside a container unless forced", "[.root]") {
  require_root("host mode outside a container (the test chroots to get there)");
  TempDir tmp;
  // "Outside a container": chroot into an empty dir, where no marker exists.
  fs::create_directories(tmp / "empty/dev");
  REQUIRE(::mknod((tmp / "empty/dev/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
  std::string out = in_child([&]() -> std::string {
    if (::chroot((tmp / "empty").c_str()) != 0 || ::chdir("/") != 0) return "chroot failed";
    ::unsetenv("container");
    std::string result = dockless::running_in_container() ? "in-container;" : "outside;";
    SandboxSpec spec;
    spec.isolation = Isolation::kHost;
    spec.argv = {"true"};
    for (bool force : {false, true}) {
      spec.force_host = force;
      try {
        run_in_sandbox(spec);
        result += "ran;";
      } catch (const Error& e) {
        result += e.what() + std::string(";");
      }
    }
    return result;
  });
  INFO(out);
  CHECK_THAT(out, Catch::StartsWith("outside;sandbox (host): refusing to run"));
  // Forced, it gets as far as running `true` (absent in the empty dir).
  CHECK_THAT(out, Catch::EndsWith("sandbox (host): run 'true' (PATH=/usr/local/sbin:/usr/local/bin:"
                                  "/usr/sbin:/usr/bin:/sbin:/bin): No such file or directory;"));
}

TEST_CASE("host: binds must be in place", "[sandbox]") {
  TempDir tmp;
  SandboxSpec spec;
  spec.isolation = Isolation::kHost;
  spec.force_host = !dockless::running_in_container();
  spec.argv = {"sh", "-c", "pwd; echo $A; echo hi >" + (tmp / "out/f").string()};
  spec.env = {"PATH=/usr/bin:/bin", "A=a"};
  spec.workdir = tmp.path().string();
  fs::create_directories(tmp / "out");
  spec.binds = {{tmp / "out", (tmp / "out").string()}};
  Result r = run(spec);
  CHECK(r.status == 0);
  CHECK(r.lines == std::vector<std::string>{tmp.path().string(), "a"});
  CHECK(dockless::read_file(tmp / "out/f") == "hi\n");
  spec.binds = {{tmp / "out", "/opt/out"}};
  CHECK_THROWS_WITH(run(spec), Catch::Contains("image paths as they are"));
}

TEST_CASE("userns unprivileged: a rootfs the user owns (rootless unpack)", "[sandbox]") {
  TempDir tmp;
  ::chmod(tmp.path().c_str(), 0777);
  fs::path rootfs = tmp / "rootfs";
  std::string uid = std::to_string(unprivileged_uid());
  // Not root: cp skips the few unreadable files (/etc/shadow); python needs none.
  int rc = std::system(("cp -a " + fixture_rootfs().string() + " " + rootfs.string() +
                        " 2>/dev/null && chown -R " + uid + ":" + uid + " " + rootfs.string())
                           .c_str());
  REQUIRE((rc == 0 || ::geteuid() != 0));
  REQUIRE(fs::is_regular_file(rootfs / "usr/bin/python3"));
  for (const char* d : {"out", "out2", "scratch"}) {
    fs::create_directories(tmp / d);
    give_to_unprivileged(tmp / d);
  }
  // A hostile image: an absolute symlink to a host dir, and a bind below it.
  // The bind must land in the image's /var/tmp/..., never in the host dir.
  std::string victim = "/var/tmp/dockless-victim-XXXXXX";
  REQUIRE(::mkdtemp(victim.data()) != nullptr);
  ::chmod(victim.c_str(), 0777);
  fs::create_symlink(victim, rootfs / "evil");
  auto before = snapshot(rootfs);
  auto spec_for = [&](Isolation iso) {
    SandboxSpec spec = make_spec(tmp / "scratch", {"sh", "-c",
                                                   "python3 -c \"" + std::string(kPyCase1) +
                                                       "\"; ls -A /tmp | wc -l; test -e "
                                                       "/proc/self/status && echo proc; echo $$; "
                                                       "cat /proc/self/uid_map; echo e >/evil/sub/f"},
                                 iso);
    spec.rootfs = rootfs;
    spec.binds = {{tmp / "out", "/opt/out"}, {tmp / "out2", "/evil/sub"}};
    return spec;
  };
  std::string out = in_child([&]() -> std::string {
    drop_if_root();
    Result r = run(spec_for(Isolation::kUserns));
    return describe(r) + join(r.notes);
  });
  bool victim_empty = fs::is_empty(victim);
  if (::geteuid() == 0) {
    Result c = run(spec_for(Isolation::kChroot));
    CHECK(c.status == 0);
    victim_empty = victim_empty && fs::is_empty(victim);
  }
  fs::remove_all(victim);
  CHECK(victim_empty);
  CHECK(dockless::read_file(tmp / "out2/f") == "e\n");
  INFO(out);
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  REQUIRE(lines.size() >= 7);
  CHECK(lines[0] == "status=0");
  CHECK(lines[1] == "0");  // root inside
  CHECK(lines[2] == "x");  // /etc/x written (into the upper layer)
  CHECK(lines[3] == "0");
  CHECK(lines[4] == "proc");
  CHECK(lines[5] == "2");
  CHECK(squeeze(lines[6]) == "0 " + uid + " 1");  // no subuid range: one id
  struct stat st;
  REQUIRE(::stat((tmp / "out/hello").c_str(), &st) == 0);
  CHECK(st.st_uid == unprivileged_uid());
  CHECK(snapshot(rootfs) == before);
  CHECK(fs::is_empty(tmp / "scratch"));
}

TEST_CASE("userns unprivileged: the root-owned fixture as it is", "[sandbox]") {
  TempDir tmp;
  ::chmod(tmp.path().c_str(), 0777);
  for (const char* d : {"out", "scratch"}) {
    fs::create_directories(tmp / d);
    give_to_unprivileged(tmp / d);
  }
  std::string out = in_child([&]() -> std::string {
    drop_if_root();
    SandboxSpec spec = make_spec(
        tmp / "scratch",
        {"python3", "-c",
         "import os\nprint(os.getuid())\nopen('/opt/out/hello','w').write('hi')\n"
         "for p in ('/etc/x', '/root/x', '/tmp/x'):\n"
         "  try:\n    open(p,'w').write('x'); print('ok')\n"
         "  except OSError as e: print(e.strerror)"});
    spec.binds = {{tmp / "out", "/opt/out"}};
    Result r = run(spec);
    return describe(r) + join(r.notes);
  });
  INFO(out);
  // Files of unmapped owners (host root) are "nobody" inside: readable as
  // their mode allows, but root in the namespace cannot write into their
  // dirs (/root, 0700). /etc is writable because the sandbox made it in the
  // upper layer for the resolv.conf mount point. Real builds run on
  // snapshots the user unpacked, so the user owns everything.
  CHECK_THAT(out, Catch::StartsWith("status=0\n0\nok\nPermission denied\nok\n"));
  CHECK(dockless::read_file(tmp / "out/hello") == "hi");
}

TEST_CASE("userns as uid 65534 with a subuid range: newuidmap maps 1..65536", "[.root]") {
  require_root("a private /etc/subuid for uid 65534");
  if (::access("/usr/bin/newuidmap", X_OK) != 0) FAIL("newuidmap is not installed (package uidmap)");
  TempDir tmp;
  ::chmod(tmp.path().c_str(), 0777);
  fs::path rootfs = tmp / "rootfs";
  REQUIRE(std::system(("cp -a " + fixture_rootfs().string() + " " + rootfs.string() +
                       " && chown -R 65534:65534 " + rootfs.string())
                          .c_str()) == 0);
  fs::create_directories(tmp / "scratch");
  REQUIRE(::chown((tmp / "scratch").c_str(), kNobody, kNobody) == 0);
  const passwd* pw = ::getpwuid(kNobody);
  REQUIRE(pw != nullptr);
  write_text(tmp / "subid", std::string(pw->pw_name) + ":200000:65536\n");
  std::string out = in_child([&]() -> std::string {
    // /etc/subuid and /etc/subgid replaced in a private mount namespace only.
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount((tmp / "subid").c_str(), "/etc/subuid", nullptr, MS_BIND, nullptr) != 0 ||
        ::mount((tmp / "subid").c_str(), "/etc/subgid", nullptr, MS_BIND, nullptr) != 0)
      return "cannot set up /etc/subuid";
    become_nobody();
    SandboxSpec spec = make_spec(
        tmp / "scratch", {"sh", "-c",
                          "id -u; touch /tmp/f && chown 1000:1000 /tmp/f && stat -c %u:%g /tmp/f; "
                          "cat /proc/self/uid_map /proc/self/gid_map; "
                          // Left in the upper layer, owned by a subordinate id.
                          "mkdir -p /var/x/y && touch /var/x/y/f && chown -R 1000:1000 /var/x && "
                          "chmod 700 /var/x /var/x/y"});
    spec.rootfs = rootfs;
    Result r = run(spec);
    return describe(r) + join(r.notes);
  });
  INFO(out);
  CHECK(squeeze(out) ==
        "status=0\n0\n1000:1000\n0 65534 1\n1 200000 65536\n0 65534 1\n1 200000 65536\n");
  CHECK(fs::is_empty(tmp / "scratch"));  // removed as root of a namespace with the same maps
}

TEST_CASE("userns refused by seccomp: a clear Error that names the way out", "[sandbox]") {
  TempDir tmp;
  std::string out = in_child([&]() -> std::string {
    // What the default profile of some Kubernetes pods does to unshare(2).
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_unshare, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog = {static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
      return "cannot install the seccomp filter";
    try {
      run_in_sandbox(make_spec(tmp.path(), {"true"}));
      return "ran";
    } catch (const Error& e) {
      return e.what();
    }
  });
  CHECK(out ==
        "sandbox (userns): create user, mount and pid namespaces: Operation not permitted; "
        "try --isolation chroot (as root) or --isolation host");
}

TEST_CASE("userns: kernel overlay refused (scratch on overlayfs) falls back", "[.root]") {
  require_root("an overlay mount for the scratch dir");
  TempDir tmp;
  for (bool hide_fuse : {false, true}) {
    std::string out = in_child([&]() -> std::string {
      // Scratch inside an overlay mount, as in a Docker container without a
      // volume: the kernel refuses an overlay upper dir there.
      fs::path ov = tmp / (hide_fuse ? "ov2" : "ov1");
      for (const char* d : {"l", "u", "w", "m"}) fs::create_directories(ov / d);
      std::string opts = "lowerdir=" + (ov / "l").string() + ",upperdir=" + (ov / "u").string() +
                         ",workdir=" + (ov / "w").string();
      if (::unshare(CLONE_NEWNS) != 0 ||
          ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
          ::mount("overlay", (ov / "m").c_str(), "overlay", 0, opts.c_str()) != 0)
        return "cannot mount the test overlay";
      if (hide_fuse && ::access("/usr/bin/fuse-overlayfs", F_OK) == 0 &&
          ::mount("/etc/hostname", "/usr/bin/fuse-overlayfs", nullptr, MS_BIND, nullptr) != 0)
        return "cannot hide fuse-overlayfs";
      fs::create_directories(ov / "m/out");
      SandboxSpec spec = make_spec(ov / "m/scratch", {"python3", "-c", kPyCase1});
      spec.binds = {{ov / "m/out", "/opt/out"}};
      Result r = run(spec);
      return describe(r) + join(r.notes) + "hello=" + dockless::read_file(ov / "m/out/hello");
    });
    INFO(out);
    CHECK_THAT(out, Catch::StartsWith("status=0\n0\nx\nsandbox (userns): mount overlay on "));
    if (!hide_fuse && ::access("/usr/bin/fuse-overlayfs", X_OK) == 0)
      CHECK_THAT(out, Catch::Contains("; using fuse-overlayfs\nhello=hi"));
    else
      CHECK_THAT(out, Catch::Contains("; using a private copy of the rootfs\nhello=hi"));
  }
}

TEST_CASE("sandbox start-up time", "[sandbox][.bench]") {
  TempDir tmp;
  for (Isolation iso : {Isolation::kUserns, Isolation::kChroot}) {
    for (RootfsMethod m : {RootfsMethod::kOverlay, RootfsMethod::kFuseOverlayfs, RootfsMethod::kCopy}) {
      if (iso == Isolation::kChroot && m != RootfsMethod::kOverlay) continue;
      SandboxSpec spec = make_spec(tmp.path(), {"python3", "-c", "pass"}, iso);
      spec.rootfs_method = m;
      try {
        run(spec);  // warm the page cache
      } catch (const Error& e) {
        WARN("not measured: " << e.what());
        continue;
      }
      constexpr int kRuns = 5;
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < kRuns; ++i) REQUIRE(run(spec).status == 0);
      auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      WARN((iso == Isolation::kUserns ? "userns" : "chroot")
           << (iso == Isolation::kUserns ? std::string(" method ") + std::to_string(static_cast<int>(m)) : "")
           << ": python3 -c pass takes " << ms / kRuns << " ms");
    }
  }
  SandboxSpec bare = make_spec(tmp.path(), {"/usr/bin/python3", "-c", "pass"}, Isolation::kHost);
  bare.force_host = true;
  bare.env = {"PATH=/usr/bin:/bin"};
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) run(bare);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  WARN("host: python3 -c pass takes " << ms / 5 << " ms");
}

// ---------------------------------------------------------------------------
// Build steps: lower layers, a kept upper dir, mounts that leave nothing,
// network = none, user = ..., the single-id flag.

namespace {

using dockless::Network;
using dockless::SandboxResult;
using dockless::TmpfsMount;
using Changes = SandboxResult::Changes;

bool is_whiteout(const fs::path& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

std::string xattr(const fs::path& p, const std::string& name) {
  char buf[64];
  ssize_t n = ::lgetxattr(p.c_str(), name.c_str(), buf, sizeof buf);
  return n < 0 ? "" : std::string(buf, static_cast<std::size_t>(n));
}

// Every path below dir, relative, sorted.
std::vector<std::string> tree_of(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out.push_back(e.path().lexically_relative(dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

// Every redirect or metacopy xattr below dir: a layer cannot express them.
// (origin and impure are bookkeeping the layer writer drops.)
std::vector<std::string> overlay_xattrs(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    char names[4096];
    ssize_t n = ::llistxattr(e.path().c_str(), names, sizeof names);
    for (ssize_t i = 0; i < n;) {
      std::string name(names + i);
      i += static_cast<ssize_t>(name.size()) + 1;
      if (name.find("overlay.redirect") != std::string::npos ||
          name.find("overlay.metacopy") != std::string::npos)
        out.push_back(e.path().string() + " " + name);
    }
  }
  return out;
}

struct StepRun {
  SandboxResult result;
  std::vector<std::string> lines;
};

StepRun run_step(SandboxSpec spec) {
  StepRun r;
  spec.on_output = [&](std::string_view l) { r.lines.emplace_back(l); };
  r.result = dockless::run_sandbox(spec);
  return r;
}

const char* kStep1 =
    "echo new >/etc/created && rm /etc/issue && rm -rf /etc/skel && mkdir /etc/skel && "
    "echo only >/etc/skel/only && echo s >/scratch/s && cat /run/secrets/token && "
    "echo c >>/cache/count && mkdir -p /opt && echo a >/opt/a && echo a2 >/opt/a2 && "
    "mv /etc/default /opt/default && chmod 600 /etc/debian_version";

// The first step of the stacking cases: its upper dir at dir/"l1".
SandboxSpec step1_spec(const fs::path& dir, Isolation iso = Isolation::kUserns) {
  write_text(dir / "secret", "s3cret");
  fs::create_directories(dir / "cache");
  fs::create_directories(dir / "scratch");
  SandboxSpec spec = make_spec(dir / "scratch", {"sh", "-c", kStep1}, iso);
  spec.upper_dir = dir / "l1";
  spec.binds = {{dir / "secret", "/run/secrets/token", true}, {dir / "cache", "/cache"}};
  spec.tmpfs = {{"/scratch", 1 << 20}};
  return spec;
}

}  // namespace

TEST_CASE("steps: the upper dir keeps the changes, mounts leave nothing", "[sandbox]") {
  fs::path rootfs = fixture_rootfs();
  auto before = snapshot(rootfs);
  TempDir tmp;
  StepRun r = run_step(step1_spec(tmp.path()));
  INFO(join(r.lines));
  REQUIRE(r.result.status == 0);
  CHECK(r.lines == std::vector<std::string>{"s3cret"});
  CHECK(r.result.changes == Changes::kOverlayUpper);
  CHECK(r.result.single_id_map == false);  // root maps every id
  // Root in a user namespace: the kernel overlay needs userxattr.
  CHECK(r.result.opaque_xattr == "user.overlay.opaque");
  fs::path up = tmp / "l1";
  CHECK(dockless::read_file(up / "etc/created") == "new\n");
  CHECK(is_whiteout(up / "etc/issue"));
  CHECK(xattr(up / "etc/skel", r.result.opaque_xattr) == "y");
  CHECK(tree_of(up / "etc/skel") == std::vector<std::string>{"only"});
  CHECK(xattr(up / "etc", r.result.opaque_xattr).empty());
  // The tmpfs, the secret and the cache are nowhere in the layer; neither
  // are the mount points the sandbox made (/scratch, /run/secrets, /cache,
  // /etc/resolv.conf and /etc/hosts, which the fixture lacks).
  // A moved dir is copied (no redirect), a chmod copies the file up whole
  // (no metacopy).
  CHECK(is_whiteout(up / "etc/default"));
  CHECK(fs::is_regular_file(up / "opt/default/useradd"));
  CHECK(fs::file_size(up / "etc/debian_version") == fs::file_size(rootfs / "etc/debian_version"));
  std::vector<std::string> paths = tree_of(up);
  paths.erase(std::remove_if(paths.begin(), paths.end(),
                             [](const std::string& p) { return p.rfind("opt/default/", 0) == 0; }),
              paths.end());
  CHECK(paths == std::vector<std::string>{"etc", "etc/created", "etc/debian_version", "etc/default",
                                          "etc/issue", "etc/skel", "etc/skel/only", "opt", "opt/a",
                                          "opt/a2", "opt/default"});
  INFO(join(overlay_xattrs(up)));
  CHECK(overlay_xattrs(up).empty());
  CHECK(dockless::read_file(tmp / "cache/count") == "c\n");
  for (const char* p : {"scratch", "run/secrets/token", "cache", "tmp", "proc", "dev"}) {
    INFO(p);
    CHECK(std::find(r.result.sandbox_paths.begin(), r.result.sandbox_paths.end(), p) !=
          r.result.sandbox_paths.end());
  }
  CHECK_FALSE(fs::exists(tmp.path().string() + "/l1.work"));
  CHECK(fs::is_empty(tmp / "scratch"));
  CHECK_FALSE(mounted_under(tmp.path()));
  CHECK(snapshot(rootfs) == before);
}

TEST_CASE("steps: lower layers stack (kernel overlay and the private copy)", "[sandbox]") {
  TempDir tmp;
  REQUIRE(run_step(step1_spec(tmp.path())).result.status == 0);
  SandboxSpec s2 = make_spec(tmp / "scratch", {"sh", "-c", "rm /opt/a2 /etc/issue.net && echo b >/opt/b"});
  s2.lower_layers = {tmp / "l1"};
  s2.upper_dir = tmp / "l2";
  REQUIRE(run_step(s2).result.status == 0);
  CHECK(is_whiteout(tmp / "l2/opt/a2"));
  CHECK(is_whiteout(tmp / "l2/etc/issue.net"));
  const char* look =
      "cat /opt/a /opt/b; ls -A /etc/skel; for f in /opt/a2 /etc/issue /etc/issue.net; do "
      "test -e $f && echo \"$f there\"; done; head -c 6 /etc/os-release; echo";
  const std::vector<std::string> want = {"a", "b", "only", "PRETTY"};
  for (RootfsMethod m : {RootfsMethod::kOverlay, RootfsMethod::kCopy}) {
    SandboxSpec s3 = make_spec(tmp / "scratch", {"sh", "-c", look});
    s3.lower_layers = {tmp / "l2", tmp / "l1"};
    s3.rootfs_method = m;
    s3.upper_dir = tmp / (m == RootfsMethod::kCopy ? "l3copy" : "l3");
    s3.tmpfs = {{"/scratch2/t", 0}};
    StepRun r = run_step(s3);
    INFO("method " << static_cast<int>(m) << "\n" << join(r.lines));
    CHECK(r.result.status == 0);
    CHECK(r.lines == want);
    if (m == RootfsMethod::kCopy) {
      // The whole root after the run, to diff against the lower tree.
      CHECK(r.result.changes == Changes::kFullTree);
      CHECK(dockless::read_file(tmp / "l3copy/opt/b") == "b\n");
      CHECK_FALSE(fs::exists(tmp / "l3copy/etc/issue"));
      CHECK(fs::exists(tmp / "l3copy/etc/os-release"));
      CHECK_FALSE(fs::exists(tmp / "l3copy/scratch2"));  // a mount point, not a change
    } else {
      CHECK(r.result.changes == Changes::kOverlayUpper);
      CHECK(tree_of(tmp / "l3").empty());  // it only read
    }
  }
  // Without upper_dir nothing is kept, as before.
  SandboxSpec s4 = make_spec(tmp / "scratch", {"sh", "-c", look});
  s4.lower_layers = {tmp / "l2", tmp / "l1"};
  StepRun r4 = run_step(s4);
  CHECK(r4.lines == want);
  CHECK(r4.result.changes == Changes::kNone);
  CHECK(fs::is_empty(tmp / "scratch"));
}

TEST_CASE("steps: network = none has only loopback, and it is up", "[sandbox]") {
  TempDir tmp;
  const char* cmd =
      "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; python3 -c \"import socket\n"
      "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
      "socket.create_connection(s.getsockname()); print('loopback ok')\"";
  SandboxSpec spec = make_spec(tmp.path(), {"sh", "-c", cmd});
  spec.network = Network::kNone;
  Result r = run(spec);
  INFO(describe(r));
  CHECK(r.status == 0);
  CHECK(r.lines == std::vector<std::string>{"lo", "loopback ok"});
  // The host's network, as before, when not asked.
  spec.network = Network::kHost;
  Result h = run(spec);
  std::size_t host_ifaces = host_lines("/proc/net/dev").size() - 2;
  CHECK(h.lines.size() == host_ifaces + 1);
}

TEST_CASE("steps: user = NAME, UID:GID, a user an earlier layer made", "[sandbox]") {
  TempDir tmp;
  SandboxSpec add = make_spec(
      tmp / "scratch",
      {"sh", "-c",
       "echo 'builder:x:1234:1235::/home/builder:/bin/sh' >>/etc/passwd && "
       "echo 'builder:x:1235:' >>/etc/group && echo 'extra:x:1300:builder' >>/etc/group"});
  add.upper_dir = tmp / "users";
  REQUIRE(run_step(add).result.status == 0);
  const char* cmd = "id -u; id -g; id -G; echo $HOME";
  auto as = [&](const std::string& user, std::vector<std::string> env = {}) {
    SandboxSpec s = make_spec(tmp / "scratch", {"sh", "-c", cmd});
    s.env = {"PATH=/usr/bin:/bin"};
    s.env.insert(s.env.end(), env.begin(), env.end());
    s.lower_layers = {tmp / "users"};
    s.user = user;
    Result r = run(s);
    return describe(r);
  };
  CHECK(as("nobody") == "status=0\n65534\n65534\n65534\n/nonexistent\n");
  CHECK(as("builder") == "status=0\n1234\n1235\n1235 1300\n/home/builder\n");
  CHECK(as("builder:extra") == "status=0\n1234\n1300\n1300\n/home/builder\n");
  CHECK(as("4321:99", {"HOME=/h"}) == "status=0\n4321\n99\n99\n/h\n");
  CHECK_THROWS_WITH(as("nosuch"), Catch::Contains("user 'nosuch' is not in the image's /etc/passwd"));
}

TEST_CASE("steps unprivileged: overlay upper kept, single id flagged", "[sandbox]") {
  TempDir tmp;
  ::chmod(tmp.path().c_str(), 0777);
  for (const char* d : {"scratch", "layers"}) {
    fs::create_directories(tmp / d);
    give_to_unprivileged(tmp / d);
  }
  std::string out = in_child([&]() -> std::string {
    drop_if_root();
    SandboxSpec spec = make_spec(tmp / "scratch",
                                 {"sh", "-c", "echo hi >/etc/created && rm /etc/issue && id -u"});
    spec.upper_dir = tmp / "layers/l1";
    SandboxResult r = dockless::run_sandbox(spec);
    std::string text = "status=" + std::to_string(r.status) + " single=" +
                       std::to_string(r.single_id_map) + " xattr=" + r.opaque_xattr + "\n";
    spec.user = "nobody";
    spec.upper_dir.clear();
    spec.argv = {"true"};
    try {
      dockless::run_sandbox(spec);
    } catch (const Error& e) {
      text += e.what();
    }
    return text;
  });
  INFO(out);
  fs::path up = tmp / "layers/l1";
  CHECK_THAT(out, Catch::StartsWith("status=0 single=1 xattr=user.overlay.opaque\n"
                                    "sandbox (userns): switch to user 'nobody' (uid 65534, gid "
                                    "65534): Invalid argument (only one id is mapped"));
  CHECK(dockless::read_file(up / "etc/created") == "hi\n");
  CHECK(is_whiteout(up / "etc/issue"));
  CHECK(tree_of(up) == std::vector<std::string>{"etc", "etc/created", "etc/issue"});
  CHECK(fs::is_empty(tmp / "scratch"));
}

TEST_CASE("steps in chroot mode: layers applied, the copy kept", "[.root]") {
  require_root("chroot mode");
  TempDir tmp;
  REQUIRE(run_step(step1_spec(tmp.path())).result.status == 0);  // userns makes layer 1
  fs::path rootfs = fixture_rootfs();
  auto before = snapshot(rootfs);
  SandboxSpec spec = step1_spec(tmp.path(), Isolation::kChroot);
  spec.argv = {"sh", "-c",
               "cat /opt/a; ls -A /etc/skel; test -e /etc/issue || echo no-issue; "
               "echo s >/scratch/s; cat /run/secrets/token; echo; echo two >/opt/two; "
               "tail -n +3 /proc/net/dev 2>/dev/null | wc -l; id -u"};
  spec.lower_layers = {tmp / "l1"};
  spec.upper_dir = tmp / "copy";
  spec.network = Network::kNone;
  spec.user = "root";
  StepRun r = run_step(spec);
  INFO(join(r.lines));
  CHECK(r.result.status == 0);
  // No /proc in chroot mode, so no interface count: "0".
  CHECK(r.lines == std::vector<std::string>{"a", "only", "no-issue", "s3cret", "0", "0"});
  CHECK(r.result.changes == Changes::kFullTree);
  fs::path copy = tmp / "copy";
  CHECK(dockless::read_file(copy / "opt/two") == "two\n");
  CHECK(dockless::read_file(copy / "opt/a") == "a\n");
  CHECK_FALSE(fs::exists(copy / "etc/issue"));
  CHECK(tree_of(copy / "etc/skel") == std::vector<std::string>{"only"});
  // Neither the tmpfs nor the binds (nor their mount point dirs) stay, and
  // no overlay bookkeeping either.
  for (const char* p : {"scratch", "run/secrets", "cache"}) CHECK_FALSE(fs::exists(copy / p));
  CHECK(xattr(copy / "etc/skel", "user.overlay.opaque").empty());
  CHECK(dockless::read_file(tmp / "secret") == "s3cret");
  CHECK(snapshot(rootfs) == before);
  // As nobody, in a network namespace of its own.
  spec.upper_dir.clear();
  spec.user = "nobody";
  spec.env = {"PATH=/usr/bin:/bin"};  // HOME from passwd when the env has none
  spec.argv = {"sh", "-c", "id -u; echo $HOME"};
  StepRun n = run_step(spec);
  CHECK(n.lines == std::vector<std::string>{"65534", "/nonexistent"});
}

TEST_CASE("steps with fuse-overlayfs: the upper dir in its format", "[.root]") {
  require_root("/dev/fuse is root's here");
  if (::access("/usr/bin/fuse-overlayfs", X_OK) != 0) FAIL("fuse-overlayfs is not installed");
  TempDir tmp;
  SandboxSpec spec = step1_spec(tmp.path());
  spec.rootfs_method = RootfsMethod::kFuseOverlayfs;
  StepRun r = run_step(spec);
  INFO(join(r.lines));
  REQUIRE(r.result.status == 0);
  CHECK(r.result.changes == Changes::kOverlayUpper);
  fs::path up = tmp / "l1";
  // The kernel's format: char-device whiteouts, opaque by xattr only.
  CHECK(is_whiteout(up / "etc/issue"));
  CHECK(tree_of(up / "etc/skel") == std::vector<std::string>{"only"});
  CHECK(xattr(up / "etc/skel", r.result.opaque_xattr) == "y");
  CHECK(dockless::read_file(up / "etc/created") == "new\n");
  CHECK_FALSE(fs::exists(up / "scratch"));
  CHECK_FALSE(fs::exists(up / "cache"));
  CHECK(r.result.opaque_xattr == "user.fuseoverlayfs.opaque");
}

#include "src/sandbox/layer_stack.h"
#include "src/sandbox/step_user.h"

TEST_CASE("steps: users resolved from passwd and group text", "[sandbox]") {
  using dockless::sandbox_detail::resolve_step_user;
  const std::string passwd = "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n";
  const std::string group = "root:x:0:\nbob:x:1000:\nwheel:x:10:alice,bob\nsudo:x:27:bob\n";
  auto bob = resolve_step_user("bob", passwd, group);
  CHECK(bob.uid == 1000);
  CHECK(bob.gid == 1000);
  CHECK(bob.groups == std::vector<gid_t>{1000, 10, 27});
  CHECK(bob.home == "/home/bob");
  auto numeric = resolve_step_user("1000:wheel", passwd, group);
  CHECK(numeric.gid == 10);
  CHECK(numeric.home == "/home/bob");
  auto unknown = resolve_step_user("4242", passwd, group);  // as runtimes do: gid 0, HOME /
  CHECK((unknown.uid == 4242 && unknown.gid == 0 && unknown.home == "/"));
  CHECK_THROWS_WITH(resolve_step_user("bob:nogroup", passwd, group),
                    "group 'nogroup' is not in the image's /etc/group");
  CHECK_THROWS_AS(resolve_step_user(":10", passwd, group), dockless::UsageError);
}

TEST_CASE("steps: lookups through layers honour whiteouts and opaque dirs", "[sandbox]") {
  using dockless::sandbox_detail::find_in_stack;
  TempDir tmp;
  write_text(tmp / "base/etc/passwd", "base");
  write_text(tmp / "base/opt/keep/f", "k");
  write_text(tmp / "base/opt/hide/f", "h");
  write_text(tmp / "l1/etc/passwd", "l1");
  write_text(tmp / "l2/opt/hide/g", "g");
  fs::create_directories(tmp / "l2/etc");
  REQUIRE(::setxattr((tmp / "l2/opt/hide").c_str(), "user.overlay.opaque", "y", 1, 0) == 0);
  std::vector<fs::path> layers = {tmp / "l2", tmp / "l1"};
  CHECK(find_in_stack(layers, tmp / "base", "etc/passwd") == tmp / "l1/etc/passwd");
  CHECK(find_in_stack(layers, tmp / "base", "opt/keep/f") == tmp / "base/opt/keep/f");
  CHECK(find_in_stack(layers, tmp / "base", "opt/hide/g") == tmp / "l2/opt/hide/g");
  CHECK_FALSE(find_in_stack(layers, tmp / "base", "opt/hide/f"));  // under an opaque dir
  if (::geteuid() == 0) {
    REQUIRE(::mknod((tmp / "l2/etc/passwd").c_str(), S_IFCHR, makedev(0, 0)) == 0);
    CHECK_FALSE(find_in_stack(layers, tmp / "base", "etc/passwd"));
  }
  write_text(tmp / "l3/opt/.wh.keep", "");  // fuse-overlayfs without mknod
  CHECK_FALSE(find_in_stack({tmp / "l3"}, tmp / "base", "opt/keep/f"));
}

TEST_CASE("steps: applying a layer onto a tree keeps hard links apart", "[sandbox]") {
  using dockless::sandbox_detail::apply_overlay_layer;
  TempDir tmp;
  write_text(tmp / "tree/a", "old");
  fs::create_hard_link(tmp / "tree/a", tmp / "tree/b");
  write_text(tmp / "tree/d/x", "x");
  write_text(tmp / "tree/gone", "g");
  write_text(tmp / "layer/a", "new");
  write_text(tmp / "layer/n1", "n");
  fs::create_hard_link(tmp / "layer/n1", tmp / "layer/n2");
  write_text(tmp / "layer/d/y", "y");
  REQUIRE(::setxattr((tmp / "layer/d").c_str(), "user.overlay.opaque", "y", 1, 0) == 0);
  write_text(tmp / "layer/.wh.gone", "");
  apply_overlay_layer(tmp / "layer", tmp / "tree", "");
  CHECK(dockless::read_file(tmp / "tree/a") == "new");
  CHECK(dockless::read_file(tmp / "tree/b") == "old");  // the other name keeps its content
  CHECK(fs::equivalent(tmp / "tree/n1", tmp / "tree/n2"));
  CHECK(tree_of(tmp / "tree") == std::vector<std::string>{"a", "b", "d", "d/y", "n1", "n2"});
  CHECK(xattr(tmp / "tree/d", "user.overlay.opaque").empty());
}
