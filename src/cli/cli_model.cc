#include "src/cli/cli_model.h"

#include <CLI/CLI.hpp>

namespace dockless {

namespace {

CliOption describe_option(const CLI::Option& opt) {
  CliOption o;
  for (const std::string& s : opt.get_snames()) o.names.push_back("-" + s);
  for (const std::string& l : opt.get_lnames()) o.names.push_back("--" + l);
  if (!opt.nonpositional()) o.positional = opt.get_name();
  // A flag takes no items; everything else reads the next word.
  o.takes_value = opt.get_expected_max() != 0;
  if (o.takes_value) o.type_name = opt.get_type_name();
  o.description = opt.get_description();
  return o;
}

CliCommand describe(const CLI::App& app, const std::string& path) {
  CliCommand c;
  c.path = path;
  c.description = app.get_description();
  for (const CLI::Option* opt : app.get_options({})) {
    if (opt->get_group().empty()) continue;  // hidden
    c.options.push_back(describe_option(*opt));
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); }))
    c.subcommands.push_back(describe(*sub, path.empty() ? sub->get_name() : path + " " + sub->get_name()));
  return c;
}

void collect(const CliCommand& c, std::vector<const CliCommand*>& out) {
  out.push_back(&c);
  for (const CliCommand& s : c.subcommands) collect(s, out);
}

}  // namespace

CliCommand describe_cli(const CLI::App& app) { return describe(app, ""); }

std::vector<const CliCommand*> flatten(const CliCommand& root) {
  std::vector<const CliCommand*> out;
  collect(root, out);
  return out;
}

}  // namespace dockless
