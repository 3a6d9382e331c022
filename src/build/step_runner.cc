#include "src/build/step_runner.h"

#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <memory>
#include <optional>
#include <sstream>

#include "base/error.h"
#include "base/file_lock.h"
#include "base/file_util.h"
#include "layers/hashing_sink.h"
#include "layers/overlay_layer.h"
#include "layers/tree_diff.h"
#include "layers/unpacker.h"
#include "oci/digest.h"
#include "src/cache/last_used.h"
#include "src/sandbox/host_tools.h"
#include "src/sandbox/id_namespace.h"
#include "src/sandbox/layer_stack.h"
#include "src/build/foreign_platform_build.h"
#include "src/sandbox/rootfs_snapshot.h"
#include "src/sandbox/unmapped_ids.h"

namespace dockless {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStepPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// The opaque marker of the overlay-format dirs dockless unpacks: what the
// kernel overlay uses in a user namespace (userxattr), where steps run.
constexpr const char* kOpaqueXattr = "user.overlay.opaque";
constexpr std::size_t kLastLines = 12;
constexpr std::size_t kMaxQuotedLine = 300;

/// Where a bind mount's content is on the host: the project, or a --context.
fs::path bind_source(const BuildState& s, const StepMount& m) {
  fs::path root = m.context.empty() ? s.source.project_root : s.opt.step_inputs.contexts.at(m.context);
  return m.source == "." ? root : root / m.source;
}

/// A file's or directory's content as a digest: the tar of a directory
/// (names, modes, bytes, links; owners and times normalised), or a file's
/// bytes and whether it is executable.
std::string content_digest(const BuildState& s, const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw_errno("cannot read " + path.string());
  if (!S_ISDIR(st.st_mode))
    return sha256_of(read_file(path)).str() + ((st.st_mode & 0111) ? " +x" : "");
  HashingSink probe(nullptr);
  write_directory_tar(path, s.layer_tar(), probe);
  return probe.digest().str();
}

fs::path layer_dir(const BuildState& s, const Digest& diff_id) {
  return s.cache_dir / "layer-dirs" / diff_id.hex();
}

/// Unpacks a layer of the store as an overlay lower dir at `dir` (made
/// whole under a temp name, then renamed; another build may win the race).
/// As a user with subordinate ids, in the id namespace: owners as the step
/// that made the layer left them in its upper dir.
void unpack_layer_dir(const BuildState& s, const LayerBlob& blob, const fs::path& dir) {
  fs::create_directories(dir.parent_path());
  fs::path tmp = temp_path_beside(dir);
  fs::create_directories(tmp);
  UnpackOptions u;
  u.overlay_format = true;
  u.opaque_xattr = kOpaqueXattr;
  try {
    unpack_layers_as_owners(s.store, {blob}, tmp, u);
  } catch (...) {
    remove_tree_as_mapped_root(tmp);
    throw;
  }
  if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    remove_tree_as_mapped_root(tmp);
    if (!path_exists(dir)) throw_errno("cannot rename to " + dir.string());
  }
}

/// "0 1000 1\n1 100000 65536\n" -> ranges.
std::vector<IdRange> parse_id_map(const std::string& text) {
  std::vector<IdRange> out;
  std::istringstream in(text);
  IdRange r;
  while (in >> r.container_first >> r.host_first >> r.count) out.push_back(r);
  return out;
}

/// Files of an upper dir written in a user namespace belong to host ids;
/// the layer holds the ids the step saw. An identity map (root) needs none.
OwnerMap owner_map_of(const SandboxResult& r) {
  auto uids = parse_id_map(r.uid_map), gids = parse_id_map(r.gid_map);
  auto identity = [](const std::vector<IdRange>& m) {
    for (const auto& x : m)
      if (x.container_first != x.host_first) return false;
    return true;
  };
  if (identity(uids) && identity(gids)) return {};
  return OwnerMap::from_ranges(uids, gids);
}

/// The mounts of a step, and what must live as long as the run: copies of
/// writable binds, cache locks.
struct StepMounts {
  std::vector<BindMount> binds;
  std::vector<TmpfsMount> tmpfs;
  std::vector<FileLock> locks;
};

fs::path cache_mount_dir(const BuildState& s, const StepMount& m) {
  fs::path dir = s.cache_dir / "step-caches" / sha256_of(m.id).hex().substr(0, 32);
  if (!path_exists(dir)) {
    fs::path tmp = temp_path_beside(dir);
    fs::create_directories(tmp);
    ::chmod(tmp.c_str(), m.mode.value_or(0755));
    if ((m.uid || m.gid) && ::geteuid() == 0 &&
        ::chown(tmp.c_str(), m.uid.value_or(0), m.gid.value_or(0)) != 0)
      throw_errno("cannot chown cache mount " + m.id);
    if (::rename(tmp.c_str(), dir.c_str()) != 0 && !path_exists(dir)) throw_errno("cannot create " + dir.string());
    remove_tree(tmp);
  }
  return dir;
}

StepMounts step_mounts(const BuildState& s, const StepSpec& step, const fs::path& scratch) {
  StepMounts out;
  for (std::size_t i = 0; i < step.mounts.size(); ++i) {
    const StepMount& m = step.mounts[i];
    switch (m.type) {
      case StepMount::Type::kBind: {
        fs::path host = bind_source(s, m);
        if (!m.readonly) {
          // Writes go to a copy: the project and contexts are never changed.
          fs::path copy = scratch / ("bind-" + std::to_string(i));
          fs::copy(host, copy, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
          host = copy;
        }
        out.binds.push_back({host, m.target, m.readonly});
        break;
      }
      case StepMount::Type::kCache: {
        fs::path dir = cache_mount_dir(s, m);
        mark_used(dir);
        if (m.locked) out.locks.emplace_back(dir.string() + ".lock", LockMode::kExclusive);
        out.binds.push_back({dir, m.target, false});
        break;
      }
      case StepMount::Type::kSecret: {
        auto it = s.opt.step_inputs.secrets.find(m.id);
        if (it == s.opt.step_inputs.secrets.end()) break;  // required ones were checked before
        out.binds.push_back({it->second, m.target, true});
        break;
      }
      case StepMount::Type::kTmpfs:
        out.tmpfs.push_back({m.target, m.size.value_or(0)});
        break;
    }
  }
  return out;
}

std::string failure_message(const StepSpec& step, const SandboxResult& r, const std::deque<std::string>& last) {
  std::string msg = "step \"" + step.name + "\" failed with exit code " + std::to_string(r.status);
  if (!last.empty()) {
    msg += "; its last lines: ";
    for (std::size_t i = 0; i < last.size(); ++i) msg += (i ? " | " : "") + last[i];
  }
  if (r.single_id_map)
    msg += "; note: the sandbox maps only one user id (no /etc/subuid and /etc/subgid range, or no "
           "newuidmap), so a step that changes owners fails (apt: add a range, or pass "
           "-o APT::Sandbox::User=root)";
  return msg;
}

/// Writes the tar of what the step changed to `out` (finish() included).
void write_changes(BuildState& s, const SandboxResult& r, const fs::path& upper,
                   const std::vector<fs::path>& lowers, const OwnerMap& owners, ByteSink& out) {
  ChangeLayerOptions o;
  o.mtime_clamp = s.clamp;
  o.owner_map = owners;
  if (r.changes == SandboxResult::Changes::kOverlayUpper) {
    write_overlay_layer(upper, o, out);
    return;
  }
  // A whole tree (chroot mode): compare it with the tree it started from.
  fs::path before = s.rootfs;
  if (!lowers.empty()) {
    before = s.work_dir / "step-before";
    remove_tree(before);
    fs::create_directories(before.parent_path());
    // Reflinks where the filesystem has them; the snapshot itself stays read-only.
    sandbox_detail::copy_tree(s.rootfs, before, "step layers: ");
    for (auto it = lowers.rbegin(); it != lowers.rend(); ++it)
      sandbox_detail::apply_overlay_layer(*it, before, "step layers: ");
  }
  TreeDiffOptions d;
  d.layer = o;
  d.exclude = r.sandbox_paths;
  write_tree_diff_layer(before, upper, d, out);
}

/// Bytes to a pipe, for write_changes in a child.
class FdSink : public ByteSink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  void write(const void* data, std::size_t size) override { write_all(fd_, data, size, "the layer pipe"); }
  void finish() override {}

 private:
  int fd_;
};

/// The layer of what the step changed, from the sandbox's result.
LayerBlob write_change_layer(BuildState& s, const SandboxSpec& sb, const SandboxResult& r) {
  if (!step_files_need_id_namespace(sb))
    return s.write_one([&](ByteSink& sink) {
      write_changes(s, r, sb.upper_dir, sb.lower_layers, owner_map_of(r), sink);
    });
  // As a user, files of subordinate ids (apt's 0700 lists/partial) are out
  // of reach: read them where they are mapped, with the owners the step saw.
  return s.write_one([&](ByteSink& sink) {
    run_in_id_namespace(
        sb, [&](int fd) {
          FdSink out(fd);
          write_changes(s, r, sb.upper_dir, sb.lower_layers, OwnerMap{}, out);
        },
        [&](const char* data, std::size_t size) { sink.write(data, size); });
    sink.finish();
  });
}

/// Keeps the step's change as an overlay lower dir for the steps and uv
/// runs above it: the upper dir itself, or the layer unpacked.
void keep_layer_dir(BuildState& s, const SandboxSpec& sb, const SandboxResult& r, const LayerBlob& blob) {
  const fs::path& upper = sb.upper_dir;
  fs::path dir = layer_dir(s, blob.diff_id);
  if (path_exists(dir)) return remove_step_tree(sb, upper);
  fs::create_directories(dir.parent_path());
  if (r.changes == SandboxResult::Changes::kOverlayUpper && r.opaque_xattr == kOpaqueXattr &&
      ::rename(upper.c_str(), dir.c_str()) == 0)
    return;
  remove_step_tree(sb, upper);
  unpack_layer_dir(s, blob, dir);
}

}  // namespace

std::map<std::string, std::string> bind_mount_digests(const BuildState& s) {
  std::map<std::string, std::string> out;
  for (const auto& step : s.spec().steps) {
    if (step.skipped) continue;
    for (const auto& m : step.mounts)
      if (m.type == StepMount::Type::kBind) out[m.origin] = content_digest(s, bind_source(s, m));
  }
  return out;
}

std::vector<fs::path> lower_dirs(BuildState& s) {
  std::vector<fs::path> out;
  for (auto it = s.layers.rbegin(); it != s.layers.rend(); ++it) {
    fs::path dir = layer_dir(s, it->blob.diff_id);
    if (!path_exists(dir)) {
      s.cache.fetch({CachedLayer{it->name, it->blob, {}}});
      unpack_layer_dir(s, it->blob, dir);
    }
    mark_used(dir);  // for `dockless cache prune --keep-days`
    out.push_back(dir);
  }
  return out;
}

std::vector<CachedLayer> run_step(BuildState& s, const LayerSlot& slot) {
  const StepSpec& step = s.spec().steps.at(static_cast<std::size_t>(slot.step));
  check_step_can_run(s, step.name);
  if (s.rootfs.empty()) s.rootfs = base_rootfs(s.base, s.cache_dir, s.transfer, s.store);
  fs::path scratch = s.work_dir / ("step-" + std::to_string(slot.step));
  remove_tree(scratch);
  fs::create_directories(scratch);
  StepMounts mounts = step_mounts(s, step, scratch);
  std::deque<std::string> last;
  UnmappedIdScanner ids;
  SandboxSpec sb;
  sb.isolation = s.opt.isolation;
  sb.force_host = s.opt.force_host;
  sb.rootfs = s.rootfs;
  sb.lower_layers = lower_dirs(s);
  sb.upper_dir = scratch / "upper";
  sb.scratch = scratch / "sandbox";
  sb.binds = mounts.binds;
  sb.tmpfs = mounts.tmpfs;
  sb.argv = step.shell;
  sb.argv.push_back(step.run);
  sb.env = {kStepPath};
  for (const auto& [name, value] : step.env) sb.env.push_back(name + "=" + value);
  sb.workdir = step.workdir.empty() ? "/" : step.workdir;
  sb.user = step.user;
  // --offline: no step reaches the network (its key still says what the spec says).
  sb.network = step.network == StepNetwork::kNone || s.opt.offline ? Network::kNone : Network::kHost;
  sb.on_output = [&](std::string_view line) {
    // The error line quotes these: a megabyte-long output line must not make it one.
    last.emplace_back(line.substr(0, kMaxQuotedLine));
    if (last.size() > kLastLines) last.pop_front();
    ids.line(line);
    s.note("[" + step.name + "] " + std::string(line));
  };
  sb.on_note = [&](std::string_view note) { s.note("[" + step.name + "] " + std::string(note)); };
  fs::create_directories(sb.scratch);
  // A failed step leaves no upper dir (as a user, with files it cannot remove).
  struct ScratchGuard {
    const SandboxSpec& sb;
    const fs::path& dir;
    bool done = false;
    ~ScratchGuard() {
      if (!done) remove_step_tree(sb, dir);
    }
  } scratch_guard{sb, scratch};
  auto t = Clock::now();
  SandboxResult r = run_sandbox(sb);
  if (r.status != 0 && r.single_id_map && ids.found()) {
    UnmappedId id = *ids.found();
    // chown does not say which id: a user the step added is the likely one.
    if (auto added = unmapped_new_user(sb, false); id.id.empty() && added)
      id = {added->id, added->context.substr(0, added->context.size() - 1) + "; " + id.context + ")", false};
    throw Error(unmapped_id_message(sb, step.name, "failed with exit code " + std::to_string(r.status), id,
                                    r.uid_map));
  }
  if (r.status != 0) throw Error(failure_message(step, r, last));
  s.note("step \"" + step.name + "\" ran in " + format_seconds(seconds_since(t)));
  if (r.single_id_map) {
    // Its layer would give root what belongs to another user: no layer.
    if (auto id = unmapped_new_user(sb, true))
      throw Error(unmapped_id_message(sb, step.name, "made a directory another user must own", *id, r.uid_map));
    s.warn("step \"" + step.name + "\" ran with one user id mapped (no /etc/subuid and /etc/subgid range "
           "for this user, or no newuidmap): every file it wrote is owned by root in its layer");
  }
  LayerBlob blob = write_change_layer(s, sb, r);
  keep_layer_dir(s, sb, r, blob);
  scratch_guard.done = true;
  remove_step_tree(sb, scratch);
  ++s.step_runs;
  return {CachedLayer{slot.name, blob, {}}};
}

}  // namespace dockless
