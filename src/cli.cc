#include "src/cli.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "oci/error.h"
#include "src/import_command.h"
#include "src/inspect_command.h"

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

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"dockless: a rootless, daemonless OCI image builder for uv projects", "dockless"};
  app.set_version_flag("--version", std::string("dockless ") + DOCKLESS_VERSION);
  app.require_subcommand(0, 1);
  app.fallthrough(false);

  ImportArgs imp;
  CLI::App* import_cmd = app.add_subcommand(
      "import", "Import a root filesystem (directory or tar[.gz|.zst]) as a one-layer image");
  import_cmd->add_option("rootfs", imp.rootfs, "Root filesystem: a directory or a tar file")
      ->required();
  import_cmd->add_option("-o,--output", imp.output, "Where to write: oci:DIR[:TAG] (TAG: latest)")
      ->required();
  import_cmd->add_option("--env", imp.env, "Environment variable KEY=VALUE (repeatable)")
      ->allow_extra_args(false);
  import_cmd->add_option("--label", imp.labels, "Label KEY=VALUE (repeatable)")
      ->allow_extra_args(false);
  import_cmd->add_option("--workdir", imp.workdir, "Working directory of the container");
  import_cmd->add_option("--user", imp.user, "User (and group) the container runs as");
  import_cmd->add_option("--entrypoint", imp.entrypoint,
                         "Entrypoint: JSON array, or a string run by /bin/sh -c");
  import_cmd->add_option("--cmd", imp.cmd, "Command: JSON array, or a string run by /bin/sh -c");
  import_cmd->add_option("--platform", imp.platform, "os/arch[/variant] (default: this machine's)");
  import_cmd->add_option("--compression", imp.compression, "Layer compression: gzip, zstd or none");
  import_cmd->add_option("--compression-level", imp.level,
                         "gzip 1-3 (ISA-L), zstd 1-19; 0 = default");
  import_cmd->add_option("--chown", imp.chown,
                         "Write every entry as owned by UID[:GID] (default: keep the files' owners)");

  InspectArgs ins;
  CLI::App* inspect_cmd =
      app.add_subcommand("inspect", "Print an image's manifest and config as JSON");
  inspect_cmd->add_option("image", ins.image, "The image: oci:DIR[:TAG]")->required();
  inspect_cmd->add_option("--format", ins.format, "manifest, config or both (default)");
  inspect_cmd->add_option("--platform", ins.platform,
                          "Platform to pick when the tag names an index (default: this machine's)");

  std::string help_topic;
  CLI::App* help_cmd = app.add_subcommand("help", "Show help for dockless or a subcommand");
  help_cmd->add_option("subcommand", help_topic, "Subcommand to describe");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version: to stdout
    std::string where = app.get_subcommands().empty()
                            ? std::string("dockless --help")
                            : "dockless " + app.get_subcommands().front()->get_name() + " --help";
    throw UsageError(one_line(e.what()) + " (see '" + where + "')");
  }

  if (import_cmd->parsed()) {
    Digest d = run_import(to_import_options(imp));
    std::cout << d.str() << "\n";
    return 0;
  }
  if (inspect_cmd->parsed()) {
    std::cout << run_inspect(to_inspect_options(ins));
    return 0;
  }
  if (help_cmd->parsed() && !help_topic.empty()) {
    for (CLI::App* sub : app.get_subcommands({}))
      if (sub->get_name() == help_topic) {
        std::cout << sub->help();
        return 0;
      }
    throw UsageError("no subcommand \"" + help_topic + "\" (see 'dockless help')");
  }
  std::cout << app.help();
  return 0;
}

}  // namespace dockless
