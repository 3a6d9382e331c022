// Tests for layers/overlay_layer (overlay upper dir -> OCI layer) and the
// unpacker's overlay format (OCI layer -> overlay lower dir). The layer is
// read back with libarchive; the [.root] cases build kernel-notation upper
// dirs by hand and, best proof, mount a real overlay, make changes through
// it, and mount the unpacked layer as a lower dir to see the same tree.
#include "layers/overlay_layer.h"

#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "layers/tar_writer.h"
#include "layers/unpacker.h"
#include "tests/layer_tar_entries.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;

namespace {

using dockless::ChangeLayerOptions;
using dockless::Error;
using dockless::IdRange;
using dockless::OwnerMap;
using dockless::test::layer_entry;
using dockless::test::layer_paths;
using dockless::test::LayerEntry;
using dockless::test::read_layer_entries;
using dockless::test::StringByteSink;
using dockless::test::TempDir;
using dockless::test::write_text;

std::string layer_of(const fs::path& upper, const ChangeLayerOptions& options = {}) {
  StringByteSink sink;
  dockless::write_overlay_layer(upper, options, sink);
  CHECK(sink.finishes == 1);
  return sink.bytes;
}

void make_socket(const fs::path& p) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, p.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  ::close(fd);
}

void set_xattr(const fs::path& p, const std::string& name, const std::string& value) {
  INFO("setxattr " << name << " on " << p << ": " << std::strerror(errno));
  REQUIRE(::lsetxattr(p.c_str(), name.c_str(), value.data(), value.size(), 0) == 0);
}

std::string get_xattr(const fs::path& p, const std::string& name) {
  char buf[256];
  ssize_t n = ::lgetxattr(p.c_str(), name.c_str(), buf, sizeof buf);
  return n < 0 ? std::string("<none>") : std::string(buf, static_cast<std::size_t>(n));
}

std::string le32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}

// security.capability with cap_net_raw permitted+effective; v3 carries a rootid.
std::string capability(int revision, std::uint32_t rootid = 0) {
  std::string v = le32(revision == 3 ? 0x03000001 : 0x02000001) + le32(1u << 13) + le32(0) +
                  le32(0) + le32(0);
  return revision == 3 ? v + le32(rootid) : v;
}

// fuse-overlayfs notation: whiteouts and opaque markers are plain files.
void make_fuse_style_upper(const fs::path& up) {
  write_text(up / ".wh.gone", "");
  write_text(up / "d" / ".wh..wh..opq", "");
  write_text(up / "d" / "-first", "sorts before the marker\n");
  write_text(up / "d" / "z", "zed\n");
  write_text(up / "etc" / "conf", "setuid tool\n");
  fs::permissions(up / "etc" / "conf", static_cast<fs::perms>(04755));
  fs::create_symlink("conf", up / "etc" / "link");
  write_text(up / "etc" / "hard1", "linked\n");
  fs::create_hard_link(up / "etc" / "hard1", up / "etc" / "hard2");
  REQUIRE(::mkfifo((up / "fifo").c_str(), 0640) == 0);
  make_socket(up / "sock");
}

TEST_CASE("fuse-overlayfs whiteouts pass through, opaque marker right after its dir",
          "[overlay_layer]") {
  TempDir t;
  const fs::path up = t / "upper";
  make_fuse_style_upper(up);
  auto entries = read_layer_entries(layer_of(up));
  CHECK(layer_paths(entries) ==
        std::vector<std::string>{".wh.gone", "d", "d/.wh..wh..opq", "d/-first", "d/z", "etc",
                                 "etc/conf", "etc/hard1", "etc/hard2", "etc/link", "fifo"});
  CHECK(layer_entry(entries, ".wh.gone").type == AE_IFREG);
  CHECK(layer_entry(entries, "etc/conf").perm == 04755);
  CHECK(layer_entry(entries, "etc/conf").data == "setuid tool\n");
  CHECK(layer_entry(entries, "etc/link").symlink == "conf");
  CHECK(layer_entry(entries, "etc/hard2").hardlink == "etc/hard1");
  CHECK(layer_entry(entries, "fifo").type == AE_IFIFO);
  for (const auto& e : entries) {
    INFO(e.path);
    CHECK(e.mtime == dockless::kDefaultMtimeClamp);
    CHECK(e.uid == static_cast<std::int64_t>(::getuid()));  // ids kept, not 0
  }
  // Same upper dir, same bytes.
  CHECK(layer_of(up) == layer_of(up));
}

TEST_CASE("owner map turns host ids into container ids; an unmapped id is an error",
          "[overlay_layer]") {
  TempDir t;
  write_text(t / "upper" / "f", "x\n");
  const std::uint32_t me = ::getuid(), my_group = ::getgid();
  ChangeLayerOptions opt;
  opt.owner_map = OwnerMap::from_ranges({{0, me, 1}}, {{7, my_group, 1}});
  auto entries = read_layer_entries(layer_of(t / "upper", opt));
  CHECK(layer_entry(entries, "f").uid == 0);
  CHECK(layer_entry(entries, "f").gid == 7);

  opt.owner_map = OwnerMap::from_ranges({{0, me + 1, 10}}, {{0, my_group, 1}});
  StringByteSink sink;
  CHECK_THROWS_WITH(dockless::write_overlay_layer(t / "upper", opt, sink),
                    Catch::Contains((t / "upper" / "f").string()) &&
                        Catch::Contains("uid " + std::to_string(me)) &&
                        Catch::Contains("no id inside the container"));
}

// Kernel notation: whiteout devices, opaque xattr, overlay's own xattrs.
void make_kernel_style_upper(const fs::path& up) {
  fs::create_directories(up / "d");
  REQUIRE(::mknod((up / "gone").c_str(), S_IFCHR | 0, makedev(0, 0)) == 0);
  REQUIRE(::mknod((up / "d" / "gone-too").c_str(), S_IFCHR | 0, makedev(0, 0)) == 0);
  set_xattr(up / "d", "trusted.overlay.opaque", "y");
  write_text(up / "d" / "-new", "new\n");
  write_text(up / "bin" / "ping", "ping\n");
  set_xattr(up / "bin", "trusted.overlay.origin", "opaque-handle");
  set_xattr(up / "bin" / "ping", "user.note", "hello");
  REQUIRE(::mknod((up / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
  // Written in a user namespace: everything owned by subuids.
  for (const auto& e : fs::recursive_directory_iterator(up))
    REQUIRE(::lchown(e.path().c_str(), 100000, 100000) == 0);
  REQUIRE(::chown((up / "bin" / "ping").c_str(), 100000, 101000) == 0);
  // After chown, which drops file capabilities.
  set_xattr(up / "bin" / "ping", "security.capability", capability(3, 100000));
}

TEST_CASE("kernel overlay whiteouts, opaque dirs, private xattrs, subuid owners",
          "[.root]") {
  TempDir t;
  const fs::path up = t / "upper";
  make_kernel_style_upper(up);
  ChangeLayerOptions opt;
  opt.owner_map = OwnerMap::from_ranges({{0, 100000, 65536}}, {{0, 100000, 65536}});
  auto entries = read_layer_entries(layer_of(up, opt));
  CHECK(layer_paths(entries) == std::vector<std::string>{".wh.gone", "bin", "bin/ping", "d",
                                                         "d/.wh..wh..opq", "d/-new",
                                                         "d/.wh.gone-too", "null"});
  CHECK(layer_entry(entries, "d").uid == 0);
  for (const char* marker : {".wh.gone", "d/.wh..wh..opq", "d/.wh.gone-too"}) {
    const LayerEntry& m = layer_entry(entries, marker);
    INFO(marker);
    CHECK(m.type == AE_IFREG);
    CHECK(m.perm == 0644);
    CHECK(m.uid == 0);
    CHECK(m.data.empty());
    CHECK(m.xattrs.empty());
  }
  const LayerEntry& ping = layer_entry(entries, "bin/ping");
  CHECK(ping.uid == 0);
  CHECK(ping.gid == 1000);
  // xattrs off: only the capability, turned into the container root's v2.
  CHECK(ping.xattrs == std::map<std::string, std::string>{{"security.capability", capability(2)}});
  CHECK(layer_entry(entries, "bin").xattrs.empty());
  CHECK(layer_entry(entries, "d").xattrs.empty());
  CHECK(layer_entry(entries, "null").type == AE_IFCHR);
  CHECK(layer_entry(entries, "null").rdevminor == 3);

  opt.xattrs = true;
  entries = read_layer_entries(layer_of(up, opt));
  CHECK(layer_entry(entries, "bin/ping").xattrs.count("user.note") == 1);
  CHECK(layer_entry(entries, "bin").xattrs.empty());  // trusted.overlay.origin never
  CHECK(layer_entry(entries, "d").xattrs.empty());

  REQUIRE(::chown((up / "d" / "-new").c_str(), 300000, 100000) == 0);
  StringByteSink sink;
  CHECK_THROWS_WITH(dockless::write_overlay_layer(up, opt, sink),
                    Catch::Contains("-new") && Catch::Contains("300000"));
}

TEST_CASE("a redirected dir or a metacopy file is refused", "[.root]") {
  TempDir t;
  fs::create_directories(t / "upper" / "moved");
  set_xattr(t / "upper" / "moved", "trusted.overlay.redirect", "/old");
  StringByteSink sink;
  CHECK_THROWS_WITH(dockless::write_overlay_layer(t / "upper", {}, sink),
                    Catch::Contains("redirect_dir=off"));
}

// One line per entry below root: type, mode, owner, rdev, content or link
// target, and the opaque xattrs: what an overlay makes of the directory.
std::map<std::string, std::string> describe_tree(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const fs::path p = it->path();
    struct stat st;
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    std::ostringstream d;
    d << std::oct << st.st_mode << std::dec;
    // A whiteout's owner means nothing to overlayfs (layers write them 0:0).
    if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(0, 0)) d << " " << st.st_uid << ":" << st.st_gid;
    if (S_ISCHR(st.st_mode)) d << " dev " << major(st.st_rdev) << "," << minor(st.st_rdev);
    if (S_ISLNK(st.st_mode)) d << " -> " << fs::read_symlink(p).string();
    if (S_ISREG(st.st_mode)) {
      std::ifstream in(p, std::ios::binary);
      d << " " << std::string(std::istreambuf_iterator<char>(in), {});
    }
    if (S_ISDIR(st.st_mode))
      d << " opaque=" << get_xattr(p, "trusted.overlay.opaque") << "/"
        << get_xattr(p, "user.overlay.opaque");
    out[fs::relative(p, root).string()] = d.str();
  }
  return out;
}

std::string write_layer_file(const fs::path& upper, const fs::path& file) {
  std::string bytes = layer_of(upper);
  std::ofstream(file, std::ios::binary) << bytes;
  return bytes;
}

TEST_CASE("overlay-format unpack gives back the upper dir (user.overlay.opaque)",
          "[overlay_layer]") {
  TempDir t;
  const fs::path up = t / "upper";
  make_fuse_style_upper(up);
  fs::remove(up / "sock");
  write_layer_file(up, t / "layer.tar");
  dockless::UnpackOptions opt;
  opt.overlay_format = true;
  opt.opaque_xattr = "user.overlay.opaque";
  fs::create_directory(t / "lower");
  dockless::UnpackStats stats = dockless::unpack_layer(t / "layer.tar", t / "lower", opt);
  CHECK(stats.whiteouts == 2);
  auto tree = describe_tree(t / "lower");
  CHECK(tree.count(".wh.gone") == 0);
  CHECK(tree.at("gone").rfind("20000 dev", 0) == 0);  // S_IFCHR, mode 0
  CHECK(tree.at("gone").find("dev 0,0") != std::string::npos);
  CHECK(tree.count("d/.wh..wh..opq") == 0);
  CHECK(tree.at("d").find("opaque=<none>/y") != std::string::npos);
  CHECK(tree.at("etc/conf").find("setuid tool") != std::string::npos);
  struct stat a, b;
  REQUIRE(::stat((t / "lower" / "etc" / "hard1").c_str(), &a) == 0);
  REQUIRE(::stat((t / "lower" / "etc" / "hard2").c_str(), &b) == 0);
  CHECK(a.st_ino == b.st_ino);
}

TEST_CASE("kernel upper dir -> layer -> overlay-format unpack: same upper dir", "[.root]") {
  TempDir t;
  const fs::path up = t / "upper";
  make_kernel_style_upper(up);
  ::removexattr((up / "bin").c_str(), "trusted.overlay.origin");  // never round-trips
  ::removexattr((up / "bin" / "ping").c_str(), "security.capability");
  ::removexattr((up / "bin" / "ping").c_str(), "user.note");
  write_layer_file(up, t / "layer.tar");
  dockless::UnpackOptions opt;
  opt.overlay_format = true;
  fs::create_directory(t / "lower");
  dockless::unpack_layer(t / "layer.tar", t / "lower", opt);
  auto before = describe_tree(up), after = describe_tree(t / "lower");
  // Directory mtimes and modes aside, the unpacked tree is the upper dir.
  for (const auto& [path, what] : before) {
    INFO(path);
    CHECK(after[path] == what);
  }
  CHECK(after.size() == before.size());
}

TEST_CASE("overlay-format unpack never sets overlay's own xattrs from a layer", "[.root]") {
  TempDir t;
  write_text(t / "src" / "f", "f\n");
  set_xattr(t / "src" / "f", "user.overlay.metacopy", "");
  set_xattr(t / "src" / "f", "user.kept", "k");
  dockless::TarOptions to;
  to.xattrs = true;
  StringByteSink sink;
  dockless::write_directory_tar(t / "src", to, sink);
  std::ofstream(t / "layer.tar", std::ios::binary) << sink.bytes;
  dockless::UnpackOptions opt;
  opt.overlay_format = true;
  fs::create_directory(t / "lower");
  dockless::unpack_layer(t / "layer.tar", t / "lower", opt);
  CHECK(get_xattr(t / "lower" / "f", "user.overlay.metacopy") == "<none>");
  CHECK(get_xattr(t / "lower" / "f", "user.kept") == "k");
}

void mount_overlay(const std::string& options, const fs::path& at) {
  fs::create_directories(at);
  INFO("mount overlay " << options << ": " << std::strerror(errno));
  REQUIRE(::mount("overlay", at.c_str(), "overlay", 0, options.c_str()) == 0);
}

TEST_CASE("a real kernel overlay: changes -> layer -> lower dir shows the same tree",
          "[.root]") {
  TempDir t;
  const fs::path lo = t / "lo", up = t / "up", work = t / "work", merged = t / "merged";
  write_text(lo / "keep.txt", "keep\n");
  write_text(lo / "gone.txt", "gone\n");
  write_text(lo / "olddir" / "a", "a\n");
  write_text(lo / "edit.txt", "old\n");
  write_text(lo / "sub" / "x", "x\n");
  fs::create_directories(up);
  fs::create_directories(work);
  mount_overlay("lowerdir=" + lo.string() + ",upperdir=" + up.string() + ",workdir=" +
                    work.string() + ",redirect_dir=off,metacopy=off",
                merged);
  fs::remove(merged / "gone.txt");
  fs::remove_all(merged / "olddir");
  write_text(merged / "olddir" / "new", "new\n");
  write_text(merged / "edit.txt", "edited\n");
  REQUIRE(::chown((merged / "sub" / "x").c_str(), 1000, 1000) == 0);
  REQUIRE(::mkfifo((merged / "fifo").c_str(), 0600) == 0);
  auto merged_view = describe_tree(merged);
  REQUIRE(::umount(merged.c_str()) == 0);

  ChangeLayerOptions opt;
  opt.xattrs = true;  // and still no trusted.overlay.*
  std::string bytes = layer_of(up, opt);
  std::ofstream(t / "layer.tar", std::ios::binary) << bytes;
  auto entries = read_layer_entries(bytes);
  CHECK(layer_paths(entries) == std::vector<std::string>{".wh.gone.txt", "edit.txt", "fifo",
                                                         "olddir", "olddir/.wh..wh..opq",
                                                         "olddir/new", "sub", "sub/x"});
  CHECK(layer_entry(entries, "sub/x").uid == 1000);
  CHECK(layer_entry(entries, "edit.txt").data == "edited\n");
  for (const auto& e : entries) {
    INFO(e.path);
    for (const auto& [name, value] : e.xattrs) CHECK(name.find("overlay.") == std::string::npos);
  }

  dockless::UnpackOptions uo;
  uo.overlay_format = true;
  fs::create_directories(t / "layer");
  dockless::unpack_layer(t / "layer.tar", t / "layer", uo);
  mount_overlay("lowerdir=" + (t / "layer").string() + ":" + lo.string(), t / "again");
  auto again = describe_tree(t / "again");
  ::umount((t / "again").c_str());
  CHECK(again == merged_view);
}

}  // namespace
