#include "src/cli/cli.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "base/error.h"
#include "base/file_util.h"
#include "src/build/build_args.h"
#include "src/build/build_command.h"
#include "src/cache/cache_command.h"
#include "src/cache/cache_dir.h"
#include "src/cache/cache_lock.h"
#include "src/build/import_command.h"
#include "src/build/platform_uv.h"
#include "src/build/sbom.h"
#include "src/cli/completion.h"
#include "src/cli/man_page.h"
#include "src/cli/progress_printer.h"
#include "src/sandbox/id_namespace.h"
#include "src/transfer/bundle.h"
#include "src/transfer/inspect_command.h"
#include "src/transfer/transfer.h"

namespace dockless {

namespace {

/// Raw option text as CLI11 fills it; turned into typed options afterwards so
/// every validation error is a UsageError with our wording.
struct ImportArgs {
  std::string rootfs, output, platform, compression = "gzip", workdir, user, entrypoint, cmd, chown;
  int level = 0;
  std::vector<std::string> env, labels;
};

struct InspectArgs {
  std::string image, format = "both", platform;
};

Platform platform_option(const std::string& text) {
  if (text.empty()) return Platform::host();
  try {
    return Platform::parse(text);
  } catch (const Error& e) {
    throw UsageError(std::string("--platform: ") + e.what());
  }
}

struct BuildArgs {
  std::string dir, source, file, git, git_ref, isolation = "userns", compression = "gzip";
  std::vector<std::string> uvs;
  std::vector<std::string> sets, skip, outputs, tags, cache_from, args, contexts, secrets, index_mirrors,
      wheels_from;
  std::string cache_to;
  bool push = false, force = false, explain = false, no_cache = false, offline = false, sbom = false;
  int level = 0;
};

/// Options of every command that talks to a registry.
struct RegistryArgs {
  std::vector<std::string> insecure;
  std::string ca_cert, authfile, creds, platform, report, chunk_size, cache_dir;
  int jobs = 4;
  int retries = 3;
  int stall_timeout = 30;
  std::string progress = "auto";
  bool quiet = false, all_platforms = false, referrers = false;
};

constexpr const char* kProgressHelp =
    "How progress looks: auto (tty on a terminal, else plain), plain, tty or json (one object a line)";

void add_progress_option(CLI::App* cmd, std::string& progress) {
  cmd->add_option("--progress", progress, kProgressHelp)->type_name("MODE");
}

/// --cache-dir, for every command that uses dockless's cache.
void add_cache_dir_option(CLI::App* cmd, std::string& cache_dir) {
  cmd->add_option("--cache-dir", cache_dir, "dockless's cache (default: $XDG_CACHE_HOME/dockless)");
}

std::filesystem::path cache_dir_or_default(const std::string& cache_dir) {
  return cache_dir.empty() ? default_cache_dir() : std::filesystem::path(cache_dir);
}

void add_registry_options(CLI::App* cmd, RegistryArgs& a) {
  cmd->add_option("--insecure-registry", a.insecure,
                  "HOST[:PORT] that may use plain HTTP or unverified TLS (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--ca-cert", a.ca_cert, "PEM file of a CA to trust besides the system's");
  cmd->add_option("--authfile", a.authfile, "Credentials file (containers auth.json or docker config.json)");
  cmd->add_option("--creds", a.creds, "USER:PASS for every registry (or DOCKLESS_USERNAME/DOCKLESS_PASSWORD)");
  cmd->add_option("--platform", a.platform, "os/arch[/variant] to pick from an index (copy/pull/push: default the whole index)");
  cmd->add_flag("--all-platforms", a.all_platforms, "Keep every platform of an index (copy/pull/push: the default)");
  cmd->add_option("-j,--jobs", a.jobs, "Parallel blob transfers, and uv runs of a build's environments (default 4)");
  cmd->add_option("--retries", a.retries, "Retries of a failed request (default 3)");
  cmd->add_option("--stall-timeout", a.stall_timeout,
                  "Seconds a transfer may stay under 1 KiB/s before it fails (default 30)");
  cmd->add_option("--chunk-size", a.chunk_size, "Upload blobs in chunks of this size (e.g. 8M); default: one request");
  cmd->add_flag("-q,--quiet", a.quiet, "No progress output");
  add_progress_option(cmd, a.progress);
  cmd->add_option("--report", a.report, "Write a JSON report of every blob transferred, mounted or skipped");
  add_cache_dir_option(cmd, a.cache_dir);
}

/// What copy, pull and push add to the registry options.
void add_copy_options(CLI::App* cmd, RegistryArgs& a) {
  cmd->add_flag("--referrers", a.referrers,
                "Bring the referrers (SBOMs, signatures) of the copied manifests along");
}

std::uint64_t parse_size(const std::string& text, const char* option) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit = text.substr(i);
  std::uint64_t mult = unit.empty() || unit == "B"          ? 1
                       : unit == "K" || unit == "KiB" || unit == "k" ? 1024
                       : unit == "M" || unit == "MiB"        ? 1024 * 1024
                       : unit == "G" || unit == "GiB"        ? 1024ULL * 1024 * 1024
                                                             : 0;
  if (i == 0 || i > 12 || mult == 0)
    throw UsageError(std::string(option) + " \"" + text + "\": expected a size like 5242880, 512K or 8M");
  return std::stoull(text.substr(0, i)) * mult;
}

TransferOptions to_transfer_options(const RegistryArgs& a) {
  TransferOptions o;
  o.registry.insecure_hosts = a.insecure;
  if (!a.ca_cert.empty()) o.registry.ca_pem = read_file(a.ca_cert);
  if (a.retries < 0 || a.retries > 20) throw UsageError("--retries must be between 0 and 20");
  o.registry.max_attempts = a.retries + 1;
  if (a.stall_timeout < 1 || a.stall_timeout > 3600)
    throw UsageError("--stall-timeout must be between 1 and 3600 seconds");
  o.registry.stall_timeout = std::chrono::seconds(a.stall_timeout);
  o.registry.token_timeout = std::chrono::seconds(a.stall_timeout);
  if (!a.creds.empty()) o.keychain.explicit_creds = parse_creds(a.creds);
  o.keychain.authfile = a.authfile;
  o.platform = platform_option(a.platform);
  o.all_platforms = a.all_platforms;
  if (a.jobs < 1 || a.jobs > 64) throw UsageError("--jobs must be between 1 and 64");
  o.jobs = a.jobs;
  if (!a.chunk_size.empty()) o.chunk_size = parse_size(a.chunk_size, "--chunk-size");
  o.report_file = a.report;
  o.cache_dir = cache_dir_or_default(a.cache_dir);
  return o;
}

/// --keep-days: a whole number of days, 0 (everything goes) to 100 years.
int parse_keep_days(const std::string& text) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(text) > 36500)
    throw UsageError("--keep-days \"" + text + "\": expected a whole number of days from 0 to 36500");
  return std::stoi(text);
}

std::pair<uid_t, gid_t> parse_owner(const std::string& text) {
  auto colon = text.find(':');
  std::string u = text.substr(0, colon);
  std::string g = colon == std::string::npos ? u : text.substr(colon + 1);
  auto number = [&](const std::string& s) {
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
      throw UsageError("--chown \"" + text + "\": expected numeric UID[:GID]");
    return static_cast<unsigned>(std::stoul(s));
  };
  return {number(u), number(g)};
}

ImportOptions to_import_options(const ImportArgs& a) {
  ImportOptions o;
  o.rootfs = a.rootfs;
  o.output = LayoutRef::parse(a.output);
  for (const auto& e : a.env) o.settings.env.push_back(parse_key_value(e, "--env"));
  for (const auto& l : a.labels) o.settings.labels.insert(parse_key_value(l, "--label"));
  if (!a.workdir.empty()) o.settings.workdir = a.workdir;
  if (!a.user.empty()) o.settings.user = a.user;
  if (!a.entrypoint.empty()) o.settings.entrypoint = parse_command(a.entrypoint, "--entrypoint");
  if (!a.cmd.empty()) o.settings.cmd = parse_command(a.cmd, "--cmd");
  o.platform = platform_option(a.platform);
  try {
    o.compression.kind = parse_compression(a.compression);
  } catch (const Error& e) {
    throw UsageError(std::string("--compression: ") + e.what());
  }
  o.compression.level = a.level;
  if (!a.chown.empty()) o.chown = parse_owner(a.chown);
  return o;
}

InspectOptions to_inspect_options(const InspectArgs& a) {
  InspectOptions o;
  o.image = LayoutRef::parse(a.image);
  if (a.format == "manifest") o.format = InspectFormat::kManifest;
  else if (a.format == "config") o.format = InspectFormat::kConfig;
  else if (a.format == "both") o.format = InspectFormat::kBoth;
  else throw UsageError("--format \"" + a.format + "\": expected manifest, config or both");
  o.platform = platform_option(a.platform);
  return o;
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

/// Every subcommand and the raw option text CLI11 fills in. CLI11 keeps
/// references to these fields, so one Commands lives (unmoved) for a whole
/// run_cli.
struct Commands {
  CLI::App* import = nullptr;
  ImportArgs imp;
  bool import_quiet = false;
  std::string import_progress = "auto";

  CLI::App* inspect = nullptr;
  InspectArgs ins;

  CLI::App *pull = nullptr, *push = nullptr, *copy = nullptr;
  RegistryArgs pull_args, push_args, copy_args;
  std::string pull_ref, pull_output, push_src, push_ref, copy_src, copy_dst;

  CLI::App *bundle = nullptr, *unbundle = nullptr;
  RegistryArgs bundle_args, unbundle_args;
  std::vector<std::string> bundle_images, bundle_caches, bundle_pythons;
  std::string bundle_wheels, bundle_wheels_ref, bundle_output, unbundle_src, unbundle_to;
  bool unbundle_dry_run = false;

  CLI::App* build = nullptr;
  RegistryArgs build_args;
  BuildArgs bld;

  CLI::App *cache_ls = nullptr, *cache_prune = nullptr;
  std::string cache_dir, keep_days = "0";
  bool cache_verbose = false, dry_run = false;

  CLI::App* sbom = nullptr;
  RegistryArgs sbom_args;
  std::string sbom_image;

  CLI::App* help = nullptr;
  std::string help_topic;

  CLI::App *completion = nullptr, *man = nullptr;
  std::string completion_shell;
};

// code-limits: table
void add_import_command(CLI::App& app, Commands& c) {
  ImportArgs& imp = c.imp;
  CLI::App* cmd = c.import = app.add_subcommand(
      "import", "Import a root filesystem (directory or tar[.gz|.zst]) as a one-layer image");
  cmd->add_option("rootfs", imp.rootfs, "Root filesystem: a directory or a tar file")->required();
  cmd->add_option("-o,--output", imp.output, "Where to write: oci:DIR[:TAG] (TAG: latest)")->required();
  cmd->add_option("--env", imp.env, "Environment variable KEY=VALUE (repeatable)")->allow_extra_args(false);
  cmd->add_option("--label", imp.labels, "Label KEY=VALUE (repeatable)")->allow_extra_args(false);
  cmd->add_option("--workdir", imp.workdir, "Working directory of the container");
  cmd->add_option("--user", imp.user, "User (and group) the container runs as");
  cmd->add_option("--entrypoint", imp.entrypoint, "Entrypoint: JSON array, or a string run by /bin/sh -c");
  cmd->add_option("--cmd", imp.cmd, "Command: JSON array, or a string run by /bin/sh -c");
  cmd->add_option("--platform", imp.platform, "os/arch[/variant] (default: this machine's)");
  cmd->add_option("--compression", imp.compression, "Layer compression: gzip, zstd or none");
  cmd->add_option("--compression-level", imp.level, "gzip 1-3 (ISA-L), zstd 1-19; 0 = default");
  cmd->add_flag("-q,--quiet", c.import_quiet, "Accepted for symmetry: import prints only the digest");
  add_progress_option(cmd, c.import_progress);
  cmd->add_option("--chown", imp.chown,
                  "Write every entry as owned by UID[:GID] (default: keep the files' owners)");
}

// code-limits: table
void add_inspect_command(CLI::App& app, Commands& c) {
  CLI::App* cmd = c.inspect = app.add_subcommand("inspect", "Print an image's manifest and config as JSON");
  cmd->add_option("image", c.ins.image, "The image: oci:DIR[:TAG]")->required();
  cmd->add_option("--format", c.ins.format, "manifest, config or both (default)");
  cmd->add_option("--platform", c.ins.platform,
                  "Platform to pick when the tag names an index (default: this machine's)");
}

// code-limits: table
void add_transfer_commands(CLI::App& app, Commands& c) {
  c.pull = app.add_subcommand("pull", "Pull an image, index or artifact from a registry");
  c.pull->add_option("reference", c.pull_ref, "Image reference, e.g. localhost:5000/app:1")->required();
  c.pull->add_option("-o,--output", c.pull_output, "oci:DIR[:TAG] or docker-archive:FILE[:REF]")->required();
  add_registry_options(c.pull, c.pull_args);
  add_copy_options(c.pull, c.pull_args);

  c.push = app.add_subcommand("push", "Push an image, index or artifact to a registry");
  c.push->add_option("source", c.push_src, "oci:DIR[:TAG] or docker-archive:FILE[:REF]")->required();
  c.push->add_option("reference", c.push_ref, "Destination, e.g. localhost:5000/app:1")->required();
  add_registry_options(c.push, c.push_args);
  add_copy_options(c.push, c.push_args);

  c.copy = app.add_subcommand(
      "copy", "Copy an image, index or artifact between oci:DIR[:TAG], docker-archive:FILE[:REF] and [docker://]REF");
  c.copy->add_option("source", c.copy_src, "Where the image is")->required();
  c.copy->add_option("destination", c.copy_dst, "Where it goes")->required();
  add_registry_options(c.copy, c.copy_args);
  add_copy_options(c.copy, c.copy_args);
}

// code-limits: table
void add_bundle_commands(CLI::App& app, Commands& c) {
  CLI::App* b = c.bundle = app.add_subcommand(
      "bundle", "Write the images, build caches and wheels a build in an air gap needs as one OCI layout");
  b->add_option("--image", c.bundle_images, "An image to carry (REF, repeatable; the whole index by default)")
      ->allow_extra_args(false);
  b->add_option("--cache", c.bundle_caches, "A build cache written by build --cache-to (REF, repeatable)")
      ->allow_extra_args(false);
  b->add_option("--wheels", c.bundle_wheels, "PROJECT_DIR: carry the wheels and sdists of its uv.lock");
  b->add_option("--wheels-ref", c.bundle_wheels_ref, "REPO[:TAG] of the wheelhouse (default wheels/<dir name>:latest)");
  b->add_option("--python-archive", c.bundle_pythons, "A Python archive file to carry (repeatable)")
      ->allow_extra_args(false);
  b->add_option("-o,--output", c.bundle_output, "DIR, or FILE.tar")->required();
  add_registry_options(b, c.bundle_args);
  add_copy_options(b, c.bundle_args);

  CLI::App* u = c.unbundle = app.add_subcommand(
      "unbundle", "Push everything a bundle holds to a registry, under a prefix, same tags and digests");
  u->add_option("bundle", c.unbundle_src, "The bundle: DIR or FILE.tar")->required();
  u->add_option("--to", c.unbundle_to, "REGISTRY[/PREFIX], e.g. registry.local:5000/mirror")->required();
  u->add_flag("--dry-run", c.unbundle_dry_run, "Only list what would go where");
  add_registry_options(u, c.unbundle_args);
}

// code-limits: table
void add_build_command(CLI::App& app, Commands& c) {
  BuildArgs& bld = c.bld;
  CLI::App* cmd = c.build = app.add_subcommand(
      "build", "Build a uv project's image: base, uv, uv cache, one layer per venv, source");
  cmd->add_option("dir", bld.dir, "Project directory (default: .)");
  cmd->add_option("--source", bld.source, "Project directory (same as DIR)");
  cmd->add_option("-f,--file", bld.file, "Spec file (default: DIR/dockless.toml, else [tool.dockless] in pyproject.toml)");
  cmd->add_option("--set", bld.sets, "Override a spec key: KEY=VALUE, e.g. image.base=localhost:5000/py:12 (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--arg", bld.args, "Build arg NAME=VALUE for ${NAME} in the spec; overrides [args] (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--context", bld.contexts, "Named context NAME=DIR for bind mounts with context = NAME (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--secret", bld.secrets, "Secret id=NAME,src=FILE for secret mounts; never in a layer (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--git", bld.git, "Build from this git repository instead of a local tree");
  cmd->add_option("--git-ref", bld.git_ref, "Branch, tag or commit of --git (default: its default branch)");
  cmd->add_option("--skip", bld.skip, "Leave out venvs with this name or tag, and this cache extra (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("-o,--output", bld.outputs, "oci:DIR[:TAG] or docker-archive:FILE[:REF] (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("-t,--tag", bld.tags, "Image reference to name (and with --push, push) the image (repeatable)")
      ->allow_extra_args(false);
  cmd->add_flag("--push", bld.push, "Push to every --tag");
  cmd->add_option("--isolation", bld.isolation, "How uv runs: userns (default), chroot (root, no namespaces) or host");
  cmd->add_flag("--force", bld.force, "Allow --isolation host outside a container");
  cmd->add_option("--uv", bld.uvs,
                  "uv binary to run and ship (default: uv on PATH); PLATFORM=PATH: the uv shipped in that "
                  "platform's image (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--compression", bld.compression, "Layer compression: gzip (default), zstd or none");
  cmd->add_option("--compression-level", bld.level, "gzip 1-3 (ISA-L), zstd 1-19; 0 = default");
  cmd->add_flag("--explain-cache", bld.explain, "Print the inputs of every cache key");
  cmd->add_flag("--no-cache", bld.no_cache, "Rebuild every venv and layer (the uv download cache stays)");
  cmd->add_option("--cache-from", bld.cache_from, "Registry ref of a build cache to reuse layers from (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--cache-to", bld.cache_to, "Registry ref to write this build's cache to (layers + a cache manifest)");
  cmd->add_option("--index-mirror", bld.index_mirrors,
                  "ORIGINAL=MIRROR: uv fetches uv.lock's URLs that start with ORIGINAL from MIRROR (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--wheels-from", bld.wheels_from,
                  "REGISTRY/REPO[:TAG] or oci:DIR[:TAG] of a wheelhouse: uv.lock's files it holds come from it "
                  "(repeatable)")
      ->allow_extra_args(false);
  cmd->add_flag("--offline", bld.offline,
                "No network but the registries named: uv runs offline, steps without network, no remote --git");
  cmd->add_flag("--sbom", bld.sbom, "Attach a CycloneDX SBOM to every oci: output and push (an OCI referrer)");
  add_registry_options(cmd, c.build_args);
}

// code-limits: table
void add_cache_commands(CLI::App& app, Commands& c) {
  CLI::App* cache_cmd = app.add_subcommand("cache", "Show or prune dockless's cache");
  cache_cmd->require_subcommand(1);
  c.cache_ls = cache_cmd->add_subcommand(
      "ls", "Show what the cache holds: layer entries, blobs, venvs, snapshots, uv caches, git mirrors");
  add_cache_dir_option(c.cache_ls, c.cache_dir);
  c.cache_ls->add_flag("-v,--verbose", c.cache_verbose, "List every item");
  c.cache_prune = cache_cmd->add_subcommand(
      "prune", "Remove what no build used in the last --keep-days days (waits for running builds)");
  add_cache_dir_option(c.cache_prune, c.cache_dir);
  c.cache_prune->add_option("--keep-days", c.keep_days,
                            "Keep what was used in the last N days (default 0: remove everything)")
      ->type_name("N");
  c.cache_prune->add_flag("--dry-run", c.dry_run, "Only print what would be removed");
  c.cache_prune->add_flag("-v,--verbose", c.cache_verbose, "Print every item removed");
}

/// The progress display the user asked for, on stderr (stdout carries the
/// digest a command prints).
ProgressStyle progress_style(const RegistryArgs& args) {
  return choose_progress_style(args.progress, args.quiet, stderr);
}

// The printer goes (settling its live lines) before the digest reaches
// stdout, often the same terminal: a later redraw would erase the digest.
int run_copy_command(const std::string& src, const std::string& dst, const RegistryArgs& args) {
  TransferOptions options = to_transfer_options(args);
  // An index is copied whole (every child, same digest), as crane does;
  // --platform picks one manifest, as skopeo does without --all. A
  // docker-archive holds one image: this machine's platform by default.
  if (args.all_platforms && !args.platform.empty())
    throw UsageError("--platform and --all-platforms exclude each other");
  const ImageLocation dst_location = ImageLocation::parse(dst);
  options.all_platforms = args.platform.empty() && !dst_location.is_archive();
  options.referrers = args.referrers;
  ProgressStyle style = progress_style(args);
  CacheLock in_use = CacheLock::shared(options.cache_dir);
  Digest d = [&] {
    ProgressPrinter printer(style, stderr);
    options.progress = &printer;
    return run_copy(ImageLocation::parse(src), dst_location, options);
  }();
  std::cout << d.str() << "\n";
  return 0;
}

/// bundle and unbundle: the summary on stdout after the printer settles.
int run_bundle_command(const Commands& c) {
  const bool bundling = c.bundle->parsed();
  const RegistryArgs& args = bundling ? c.bundle_args : c.unbundle_args;
  if (!args.report.empty())  // the blob report is pull's, push's and copy's
    throw UsageError(std::string("--report is not supported by ") + (bundling ? "bundle" : "unbundle") +
                     ": it prints its summary on stdout");
  if (args.all_platforms && !args.platform.empty())
    throw UsageError("--platform and --all-platforms exclude each other");
  TransferOptions options = to_transfer_options(args);
  options.all_platforms = args.platform.empty();
  options.referrers = args.referrers;
  ProgressStyle style = progress_style(args);
  CacheLock in_use = CacheLock::shared(options.cache_dir);
  std::string summary = [&] {
    ProgressPrinter printer(style, stderr);
    options.progress = &printer;
    if (bundling) {
      BundleOptions o{options, c.bundle_images, c.bundle_caches, c.bundle_wheels, c.bundle_wheels_ref, {},
                      c.bundle_output};
      for (const auto& f : c.bundle_pythons) o.python_archives.emplace_back(f);
      return "bundle " + c.bundle_output + ": " + run_bundle(o).str();
    }
    UnbundleSummary s = run_unbundle({options, c.unbundle_src, c.unbundle_to, c.unbundle_dry_run});
    std::string out;
    for (const auto& line : s.plan) out += line + "\n";
    return out + (c.unbundle_dry_run ? "would push: " : "unbundle: ") + s.str();
  }();
  std::cout << summary << "\n";
  return 0;
}

int run_pull_command(const Commands& c) {
  ImageLocation src = ImageLocation::parse(c.pull_ref);
  if (!src.is_registry()) throw UsageError("pull: \"" + c.pull_ref + "\" is not a registry reference");
  ImageLocation dst = ImageLocation::parse(c.pull_output);
  if (dst.is_registry()) throw UsageError("pull --output: expected oci:DIR[:TAG] or docker-archive:FILE[:REF]");
  return run_copy_command(c.pull_ref, c.pull_output, c.pull_args);
}

int run_push_command(const Commands& c) {
  ImageLocation src = ImageLocation::parse(c.push_src);
  if (src.is_registry())
    throw UsageError("push: the source must be oci:DIR[:TAG] or docker-archive:FILE[:REF] (use copy between registries)");
  ImageLocation dst = ImageLocation::parse(c.push_ref);
  if (!dst.is_registry()) throw UsageError("push: \"" + c.push_ref + "\" is not a registry reference");
  return run_copy_command(c.push_src, c.push_ref, c.push_args);
}

int run_cache_prune_command(const Commands& c) {
  PruneOptions o;
  o.keep_days = parse_keep_days(c.keep_days);
  o.cache_dir = cache_dir_or_default(c.cache_dir);
  o.dry_run = c.dry_run;
  ProgressPrinter printer(choose_progress_style("auto", false, stderr), stderr);
  Progress progress(&printer);
  o.on_wait = [&progress] { progress.note("waiting for running dockless commands to finish"); };
  o.remove_tree = [](const std::filesystem::path& dir) { remove_tree_as_mapped_root(dir); };
  PruneResult r = prune_cache(o);
  std::cout << format_prune_result(r, c.cache_verbose, o.now) << std::flush;
  if (!r.failures.empty())
    throw Error("could not remove " + std::to_string(r.failures.size()) + " item(s); the first: " +
                r.failures.front());
  return 0;
}

BuildOptions to_build_options(const BuildArgs& bld, const RegistryArgs& build_args) {
  BuildOptions o;
  if (!bld.dir.empty() && !bld.source.empty() && bld.dir != bld.source)
    throw UsageError("give the project directory once: DIR or --source DIR");
  o.project_dir = !bld.source.empty() ? bld.source : !bld.dir.empty() ? bld.dir : ".";
  o.spec_file = bld.file;
  o.overrides = bld.sets;
  for (const auto& a : bld.args) o.build_args.push_back(parse_arg_option(a));
  for (const auto& c : bld.contexts) add_context_option(o.step_inputs, c);
  for (const auto& s : bld.secrets) add_secret_option(o.step_inputs, s);
  o.git_url = bld.git;
  o.git_ref = bld.git_ref;
  if (!bld.git_ref.empty() && bld.git.empty()) throw UsageError("--git-ref needs --git URL");
  o.skip = bld.skip;
  o.outputs = bld.outputs;
  o.tags = bld.tags;
  o.push = bld.push;
  o.platform = build_args.platform;
  o.isolation = parse_isolation(bld.isolation);
  o.force_host = bld.force;
  for (const auto& u : bld.uvs) {
    auto [platform, path] = parse_uv_option(u);
    if (!platform.empty()) {
      o.platform_uvs.emplace_back(platform, path);
    } else if (!o.uv_binary.empty()) {
      throw UsageError("--uv " + u + ": give the host's uv once (--uv PATH); a target's as --uv PLATFORM=PATH");
    } else {
      o.uv_binary = path;
    }
  }
  try {
    o.compression.kind = parse_compression(bld.compression);
  } catch (const Error& e) {
    throw UsageError(std::string("--compression: ") + e.what());
  }
  o.compression.level = bld.level;
  RegistryArgs reg = build_args;
  reg.platform.clear();  // the build's platform is o.platform; the base is picked for it
  o.transfer = to_transfer_options(reg);
  // A list (linux/amd64,linux/arm64) is checked by the build, which picks each platform's base.
  if (!o.platform.empty() && o.platform.find(',') == std::string::npos)
    o.transfer.platform = platform_option(o.platform);
  o.report_file = build_args.report;  // for build: every layer, its digest, cache hit and time
  o.transfer.report_file.clear();
  o.explain_cache = bld.explain;
  o.no_cache = bld.no_cache;
  o.cache_from = bld.cache_from;
  o.cache_to = bld.cache_to;
  for (const auto& m : bld.index_mirrors) o.index_mirrors.push_back(parse_index_mirror_option(m));
  o.wheels_from = bld.wheels_from;
  o.offline = bld.offline;
  o.sbom = bld.sbom;
  return o;
}

int run_build_command(const Commands& c) {
  BuildOptions o = to_build_options(c.bld, c.build_args);
  ProgressStyle style = progress_style(c.build_args);
  CacheLock in_use = CacheLock::shared(o.transfer.cache_dir);
  Digest d = [&] {  // the printer settles before the digest is printed, as in run_copy_command
    ProgressPrinter printer(style, stderr);
    o.transfer.progress = &printer;
    return run_build(o);
  }();
  std::cout << d.str() << "\n";
  return 0;
}

/// `dockless help [SUBCOMMAND]`, and what a bare `dockless` prints.
int run_help(CLI::App& app, const Commands& c) {
  // app.help() would describe the selected subcommand ("help" itself).
  if (!c.help->parsed() || c.help_topic.empty()) {
    std::cout << app.get_formatter()->make_help(&app, "dockless", CLI::AppFormatMode::Normal);
    return 0;
  }
  for (CLI::App* sub : app.get_subcommands({}))
    if (sub->get_name() == c.help_topic) {
      std::cout << sub->help();
      return 0;
    }
  throw UsageError("no subcommand \"" + c.help_topic + "\" (see 'dockless help')");
}

/// Runs the subcommand the command line chose.
int run_selected(CLI::App& app, const Commands& c) {
  if (c.import->parsed()) {
    choose_progress_style(c.import_progress, c.import_quiet, stderr);  // only checks the word
    Digest d = run_import(to_import_options(c.imp));
    std::cout << d.str() << "\n";
    return 0;
  }
  if (c.inspect->parsed()) {
    std::cout << run_inspect(to_inspect_options(c.ins));
    return 0;
  }
  if (c.pull->parsed()) return run_pull_command(c);
  if (c.push->parsed()) return run_push_command(c);
  if (c.copy->parsed()) return run_copy_command(c.copy_src, c.copy_dst, c.copy_args);
  if (c.bundle->parsed() || c.unbundle->parsed()) return run_bundle_command(c);
  if (c.cache_ls->parsed()) {
    auto now = std::chrono::system_clock::now();
    std::cout << format_cache_ls(take_cache_inventory(cache_dir_or_default(c.cache_dir)), c.cache_verbose, now);
    return 0;
  }
  if (c.cache_prune->parsed()) return run_cache_prune_command(c);
  if (c.build->parsed()) return run_build_command(c);
  if (c.completion->parsed()) {
    CliCommand tree = describe_cli(app);
    std::cout << (c.completion_shell == "bash" ? bash_completion(tree) : zsh_completion(tree));
    return 0;
  }
  if (c.man->parsed()) {
    std::cout << man_page(describe_cli(app), DOCKLESS_VERSION);
    return 0;
  }
  if (c.sbom->parsed()) {
    if (!c.sbom_args.report.empty()) throw UsageError("--report is not supported by sbom");
    std::cout << run_sbom(ImageLocation::parse(c.sbom_image), to_transfer_options(c.sbom_args));
    return 0;
  }
  return run_help(app, c);
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"dockless: a rootless, daemonless OCI image builder for uv projects", "dockless"};
  app.set_version_flag("--version", std::string("dockless ") + DOCKLESS_VERSION);
  app.require_subcommand(0, 1);
  app.fallthrough(false);

  Commands c;
  add_import_command(app, c);
  add_inspect_command(app, c);
  add_transfer_commands(app, c);
  add_bundle_commands(app, c);
  add_build_command(app, c);
  add_cache_commands(app, c);
  c.sbom = app.add_subcommand("sbom", "Print the CycloneDX SBOM attached to an image by build --sbom");
  c.sbom->add_option("image", c.sbom_image, "[docker://]REF or oci:DIR[:TAG]")->required();
  add_registry_options(c.sbom, c.sbom_args);
  c.completion = app.add_subcommand("completion", "Print a shell completion script: bash or zsh");
  c.completion->add_option("shell", c.completion_shell, "bash or zsh")
      ->required()->check(CLI::IsMember({"bash", "zsh"}));
  // Hidden (group ""): scripts/package.sh makes dockless.1 with it.
  c.man = app.add_subcommand("man-page", "Print the man page (roff)")->group("");
  c.help = app.add_subcommand("help", "Show help for dockless or a subcommand");
  c.help->add_option("subcommand", c.help_topic, "Subcommand to describe");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version: to stdout
    std::string where = app.get_subcommands().empty()
                            ? std::string("dockless --help")
                            : "dockless " + app.get_subcommands().front()->get_name() + " --help";
    throw UsageError(one_line(e.what()) + " (see '" + where + "')");
  }
  return run_selected(app, c);
}

}  // namespace dockless
