// The build spec reader: locate the file, parse it with toml++, apply --set
// overrides to the parsed table, then walk the table once against a fixed key
// schema. Overrides go into the table (not into BuildSpec) so that they get
// exactly the same type checks and messages as keys written in the file.
#include "src/build/build_spec.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <memory>
#include <sstream>
#include <string_view>
#include <tuple>
#include <utility>

#include "base/error.h"
#include "src/build/build_args.h"
#include "src/build/lock_mirror.h"
#include "src/build/spec_reader.h"
#include "src/build/step_reader.h"

namespace dockless {
namespace {

namespace fs = std::filesystem;

using namespace toml_spec;  // NOLINT: the spec's own reading vocabulary

// Extra and group names: PEP 685 names before normalisation.
bool is_valid_extra(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return is_bare_char(c) || c == '.';
  });
}

// --set values for these keys are strings even when they look like TOML
// numbers or dates (uv.python=3.12, image.user=0, image.env.X=1).
bool is_string_key(const std::vector<std::string>& path) {
  static const std::vector<std::pair<std::string_view, std::string_view>> kStrings = {
      {"image", "base"},      {"image", "platform"}, {"image", "workdir"},
      {"image", "user"},      {"uv", "python"},      {"uv", "python-install-dir"},
      {"uv", "cache-dir"},    {"uv", "link-mode"},   {"uv", "uv-path"},
      {"uv", "python-platform"},
      {"source", "path"},     {"source", "git"},     {"source", "ref"},
      {"source", "dest"},     {"source", "ignore-file"}};
  if (path.size() == 2)
    return path[0] == "args" ||
           std::find(kStrings.begin(), kStrings.end(),
                     std::pair<std::string_view, std::string_view>(path[0], path[1])) != kStrings.end();
  if (path.size() == 3)
    return (path[0] == "image" && (path[1] == "env" || path[1] == "labels")) ||
           (path[0] == "venv" && path[2] == "path");
  return false;
}

// ---- overrides --------------------------------------------------------------

struct Override {
  std::string text;  ///< the whole argument, for messages
  std::string key;   ///< the key as written (trimmed): the location in messages
  std::vector<std::string> path;
  std::string value;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// KEY=VALUE where KEY is dotted TOML-style: bare segments, "double quoted"
// (\" and \\ escapes) or 'literal' ones. The first '=' outside quotes splits.
constexpr const char* kQuoteHint = " (quote a name that has dots or spaces: venv.\"a.b\".path)";

Override parse_override(const std::string& text) {
  auto bad = [&](const std::string& why) -> UsageError {
    return UsageError("--set " + text + ": " + why);
  };
  std::size_t eq = std::string::npos;
  char quote = 0;
  for (std::size_t i = 0; i < text.size() && eq == std::string::npos; ++i) {
    const char c = text[i];
    if (quote) {
      if (quote == '"' && c == '\\') ++i;
      else if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '=') {
      eq = i;
    }
  }
  if (eq == std::string::npos) throw bad("expected KEY=VALUE");
  Override o;
  o.text = text;
  o.key = std::string(trim(std::string_view(text).substr(0, eq)));
  o.value = text.substr(eq + 1);
  if (o.key.empty()) throw bad("empty key");

  const std::string_view k = o.key;
  std::size_t i = 0;
  auto skip_space = [&] {
    while (i < k.size() && is_space(k[i])) ++i;
  };
  while (true) {
    skip_space();
    if (i >= k.size()) throw bad("empty key segment");
    std::string seg;
    if (k[i] == '"' || k[i] == '\'') {
      const char q = k[i++];
      while (i < k.size() && k[i] != q) {
        if (q == '"' && k[i] == '\\' && i + 1 < k.size()) ++i;
        seg += k[i++];
      }
      if (i >= k.size()) throw bad("unterminated quote in key");
      ++i;
    } else {
      while (i < k.size() && is_bare_char(k[i])) seg += k[i++];
      if (seg.empty())
        throw bad(std::string("unexpected '") + k[i] + "' in key" + kQuoteHint);
    }
    o.path.push_back(std::move(seg));
    skip_space();
    if (i == k.size()) break;
    if (k[i] != '.')
      throw bad(std::string("unexpected '") + k[i] + "' in key" + kQuoteHint);
    ++i;
  }
  return o;
}

// The override's value as a one-key TOML document "x = VALUE", parsed with
// the override as its source path; a value that is not TOML (or not a string
// where a string is wanted) is taken as the plain string.
toml::table override_value_doc(const Override& o, toml::source_index seq) {
  const std::string source = std::string(kSetPrefix) + o.key;
  // Blank lines put the value's keys on line `seq`: an inline table given
  // with --set keeps its order, after earlier overrides' keys.
  const std::string pad(seq - 1, '\n');
  try {
    toml::table doc = toml::parse(pad + "x = " + o.value + "\n", std::string_view(source));
    if (doc.size() == 1) {
      const toml::node* n = doc.get("x");
      if (n && (n->is_string() || !is_string_key(o.path))) return doc;
    }
  } catch (const toml::parse_error&) {
    // Not TOML: a plain string, below.
  }
  try {
    return toml::parse(pad + "x = " + toml_quote(o.value) + "\n", std::string_view(source));
  } catch (const toml::parse_error& e) {
    throw UsageError("--set " + o.text + ": " + std::string(e.description()));
  }
}

void apply_override(toml::table& root, const Override& o, toml::source_index seq) {
  const std::string source = std::string(kSetPrefix) + o.key;
  // Keys made here sort after the file's keys, in override order (see in_file_order).
  const toml::source_region region{{seq, 1}, {seq, 1}, std::make_shared<const std::string>(source)};
  toml::table* t = &root;
  std::string walked;
  for (std::size_t i = 0; i + 1 < o.path.size(); ++i) {
    const std::string& seg = o.path[i];
    walked += (walked.empty() ? "" : ".") + key_segment(seg);
    toml::node* n = t->get(seg);
    if (!n) {
      auto [it, inserted] = t->insert(toml::key(seg, region), toml::table{});
      t = it->second.as_table();
    } else if (toml::table* sub = n->as_table()) {
      t = sub;
    } else {
      throw Error(source + ": " + walked + " is " + std::string(type_phrase(n->type())) + ", not a table");
    }
  }
  toml::table doc = override_value_doc(o, seq);
  doc.get("x")->visit([&](auto& value) {
    t->insert_or_assign(toml::key(o.path.back(), region), std::move(value));
  });
}

// ---- reading the table ------------------------------------------------------

using Ctx = std::vector<std::string>;

// An image path and where it was set, for the overlap checks.
struct PathUse {
  std::string label;  ///< "[venv.main] path"
  std::string value;
  std::string where;  ///< "" when it is a default
  enum class Role { kOther, kVenv, kSourceDest } role = Role::kOther;
};

class Reader : public SpecReader {
 public:
  using SpecReader::SpecReader;

  BuildSpec read(const toml::table& root) {
    BuildSpec spec;
    check_keys(root, {}, {"image", "uv", "cache", "source", "venv", "args", "step"});
    read_args(root, spec);
    read_image(root, spec.image);
    // An absent table reads as an empty one, so its defaults (the cache
    // dir, the source dest) still take part in the overlap checks.
    const toml::table none;
    auto or_none = [&](const toml::table* t) -> const toml::table& { return t ? *t : none; };
    read_uv(or_none(table(root, {}, "uv")), spec.uv);
    read_cache(or_none(table(root, {}, "cache")), spec.cache);
    read_source(or_none(table(root, {}, "source")), spec.source);
    read_venvs(or_none(table(root, {}, "venv")), spec.venvs);
    spec.steps = read_steps(*this, root.get("step"), args_);
    check_overlaps();
    check_link_mode(spec);
    for (const auto& [name, value] : cli_args_)
      if (!args_.used().contains(name) &&
          std::find(spec.unused_args.begin(), spec.unused_args.end(), name) == spec.unused_args.end())
        spec.unused_args.push_back(name);
    return spec;
  }

  void set_cli_args(std::vector<std::pair<std::string, std::string>> args) { cli_args_ = std::move(args); }

 private:
  // [args] defaults, then --arg values: the values ${NAME} takes everywhere.
  void read_args(const toml::table& root, BuildSpec& spec) {
    const Ctx ctx{"args"};
    if (const toml::node* n = get(root, {}, "args", Kind::StringTable)) {
      for (const auto& [k, v] : in_file_order(*n->as_table())) {
        if (!is_arg_name(k->str()))
          fail(k->source(), label(ctx) + ": invalid argument name " + toml_quote(k->str()) +
                                " (a letter or _, then letters, digits or _)");
        spec.args[std::string(k->str())] = str(v);
      }
    }
    for (const auto& [name, value] : cli_args_) spec.args[name] = value;
    args_ = SpecArgs(spec.args);
  }

  // Extras or groups: an array of valid names.
  void read_names(const toml::table& t, const Ctx& ctx, std::string_view key, std::vector<std::string>& out,
                  bool venv_name_rule) const {
    const toml::node* n = get(t, ctx, key, Kind::StringArray);
    if (!n) return;
    const auto* arr = n->as_array();
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const std::string v = str(arr->get(i));
      if (venv_name_rule ? !is_valid_name(v) : !is_valid_extra(v))
        fail(arr->get(i)->source(),
             key_ref(ctx, key) + ": invalid name " + toml_quote(v) +
                 (venv_name_rule ? " (must be non-empty, without \"/\" or whitespace)"
                                 : " (letters, digits, \"-\", \"_\" and \".\" only)"));
      out.push_back(v);
    }
  }

  // A path inside the image: absolute and normalised; remembered for the
  // overlap checks when `track`.
  void read_image_path(const toml::table& t, const Ctx& ctx, std::string_view key, std::string& out, bool track,
                       bool allow_empty = false) {
    const toml::node* n = get(t, ctx, key, Kind::String);
    if (n) {
      out = str(n);
      if (!(allow_empty && out.empty())) check_path(n->source(), key_ref(ctx, key), out);
    }
    if (track && !out.empty()) paths_.push_back({key_ref(ctx, key), out, n ? where(n->source()) : ""});
  }

  // entrypoint / cmd: an array, or a string for the shell.
  void read_command(const toml::table& t, const Ctx& ctx, std::string_view key,
                    std::optional<std::vector<std::string>>& out) const {
    const toml::node* n = get(t, ctx, key, Kind::Command);
    if (!n) return;
    if (n->is_string()) out = std::vector<std::string>{"/bin/sh", "-c", str(n)};
    else out = strings(n);
  }

  void read_image(const toml::table& root, BuildSpec::Image& img) {
    const toml::table* t = table(root, {}, "image");
    if (!t) throw Error(file() + ": missing required table " + label({"image"}) + " (with base = \"REFERENCE\")");
    const Ctx ctx{"image"};
    check_keys(*t, ctx,
               {"base", "platform", "platforms", "workdir", "env", "entrypoint", "cmd", "user", "labels", "sbom"});
    read_bool(*t, ctx, "sbom", img.sbom);

    const toml::node* base = get(*t, ctx, "base", Kind::String);
    if (!base) fail(root.find("image")->first.source(), label(ctx) + ": missing required key \"base\"");
    img.base = str(base);
    if (trim(img.base).empty()) fail(base->source(), key_ref(ctx, "base") + ": must not be empty");

    if (const toml::node* n = get(*t, ctx, "platform", Kind::String)) {
      img.platform = str(n);
      if (!img.platform.empty() && !is_platform(img.platform))
        fail(n->source(), key_ref(ctx, "platform") + ": " + toml_quote(img.platform) + " is not OS/ARCH[/VARIANT]");
    }
    read_platforms(*t, ctx, img);
    read_image_path(*t, ctx, "workdir", img.workdir, false, true);

    if (const toml::node* n = get(*t, ctx, "env", Kind::StringTable)) {
      for (const auto& [k, v] : in_file_order(*n->as_table())) {
        if (k->str().empty() || k->str().find('=') != std::string_view::npos)
          fail(k->source(), key_ref(ctx, "env") + ": invalid variable name " + toml_quote(k->str()));
        img.env.emplace_back(std::string(k->str()),
                             args_.substitute(*this, *v, key_ref(ctx, "env") + "." + key_segment(k->str())));
      }
    }
    read_command(*t, ctx, "entrypoint", img.entrypoint);
    read_command(*t, ctx, "cmd", img.cmd);
    read_string(*t, ctx, "user", img.user);
    if (const toml::node* n = get(*t, ctx, "labels", Kind::StringTable))
      for (const auto& [k, v] : *n->as_table())
        img.labels[std::string(k.str())] = args_.substitute(*this, v, key_ref(ctx, "labels") + "." + key_segment(k.str()));
  }

  // image.platforms = ["linux/amd64", "linux/arm64"]: one image each, in an index.
  void read_platforms(const toml::table& t, const Ctx& ctx, BuildSpec::Image& img) const {
    const toml::node* n = get(t, ctx, "platforms", Kind::StringArray);
    if (!n) return;
    if (!img.platform.empty())
      fail(n->source(), key_ref(ctx, "platforms") + ": give either " + key_ref(ctx, "platform") + " or " +
                            key_ref(ctx, "platforms") + ", not both");
    const auto* arr = n->as_array();
    if (arr->empty()) fail(n->source(), key_ref(ctx, "platforms") + ": must not be empty");
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const std::string v = str(arr->get(i));
      if (!is_platform(v))
        fail(arr->get(i)->source(), key_ref(ctx, "platforms") + ": " + toml_quote(v) + " is not OS/ARCH[/VARIANT]");
      if (std::find(img.platforms.begin(), img.platforms.end(), v) != img.platforms.end())
        fail(arr->get(i)->source(), key_ref(ctx, "platforms") + ": " + toml_quote(v) + " is listed twice");
      img.platforms.push_back(v);
    }
  }

  // os/arch[/variant]; the platform parser proper runs later, this only
  // catches typos while the line number is still known.
  static bool is_platform(std::string_view p) {
    int parts = 1;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= p.size(); ++i) {
      if (i < p.size() && is_space(p[i])) return false;
      if (i == p.size() || p[i] == '/') {
        if (i == start) return false;
        if (i < p.size()) ++parts;
        start = i + 1;
      }
    }
    return parts == 2 || parts == 3;
  }

  void read_uv(const toml::table& t, BuildSpec::Uv& uv) {
    const Ctx ctx{"uv"};
    check_keys(t, ctx, {"python", "python-install-dir", "check-lock", "cache-dir", "link-mode", "ship-cache",
                        "uv-path", "compile-bytecode", "index-mirrors", "python-platform"});
    read_string(t, ctx, "python-platform", uv.python_platform);
    if (const toml::node* n = get(t, ctx, "python", Kind::String)) {
      uv.python = str(n);
      if (!uv.python.empty() && uv.python.front() == '/') {
        check_path(n->source(), key_ref(ctx, "python"), uv.python);
      } else if (uv.python.empty() || std::any_of(uv.python.begin(), uv.python.end(), [](char c) {
                   return is_space(c) || c == '/';
                 })) {
        fail(n->source(), key_ref(ctx, "python") + ": " + toml_quote(uv.python) +
                              " is neither an absolute path nor a python version such as \"3.12\"");
      } else {
        uv.python_source = BuildSpec::Uv::PythonSource::kUvManaged;
      }
    }
    // Its own layer only when uv installs the interpreter.
    read_image_path(t, ctx, "python-install-dir", uv.python_install_dir,
                    uv.python_source == BuildSpec::Uv::PythonSource::kUvManaged);
    read_bool(t, ctx, "check-lock", uv.check_lock);
    // Untouched defaults are valid and distinct, but take part in the checks.
    read_image_path(t, ctx, "cache-dir", uv.cache_dir, true);
    if (const toml::node* n = get(t, ctx, "link-mode", Kind::String)) {
      uv.link_mode = str(n);
      if (uv.link_mode != "symlink" && uv.link_mode != "copy")
        fail(n->source(), key_ref(ctx, "link-mode") + ": expected \"symlink\" or \"copy\", got " +
                              toml_quote(uv.link_mode));
      link_mode_where_ = where(n->source());
    }
    if (const toml::node* n = get(t, ctx, "ship-cache", Kind::Bool)) {
      uv.ship_cache = n->value_or(true);
      ship_cache_where_ = where(n->source());
    }
    read_image_path(t, ctx, "uv-path", uv.uv_path, true, true);
    read_bool(t, ctx, "compile-bytecode", uv.compile_bytecode);
    read_index_mirrors(t, ctx, uv.index_mirrors);
    uv_ref_ = label(ctx);
  }

  // ORIGINAL = MIRROR URL prefixes (see lock_mirror.h), checked as --index-mirror checks them.
  void read_index_mirrors(const toml::table& t, const Ctx& ctx, std::map<std::string, std::string>& out) const {
    const toml::node* n = get(t, ctx, "index-mirrors", Kind::StringTable);
    if (!n) return;
    for (const auto& [k, v] : in_file_order(*n->as_table())) {
      const std::string ref = key_ref(ctx, "index-mirrors") + "." + key_segment(k->str());
      try {
        out[normalize_mirror_url(k->str(), "ORIGINAL")] = normalize_mirror_url(str(v), "MIRROR");
      } catch (const Error& e) {
        fail(v->source(), ref + ": " + e.what());
      }
    }
  }

  void read_cache(const toml::table& t, BuildSpec::Cache& cache) const {
    const Ctx ctx{"cache"};
    check_keys(t, ctx, {"extras", "groups"});
    read_names(t, ctx, "extras", cache.extras, false);
    read_names(t, ctx, "groups", cache.groups, false);
  }

  void read_source(const toml::table& t, BuildSpec::Source& src) {
    const Ctx ctx{"source"};
    check_keys(t, ctx, {"path", "git", "ref", "keep-git-dir", "dest", "ignore-file"});
    const toml::node* path = get(t, ctx, "path", Kind::String);
    if (path) {
      src.path = str(path);
      if (src.path.empty()) fail(path->source(), key_ref(ctx, "path") + ": must not be empty (\".\" is the project)");
    }
    read_string(t, ctx, "git", src.git);
    const toml::node* ref = get(t, ctx, "ref", Kind::String);
    if (ref) src.ref = str(ref);
    read_bool(t, ctx, "keep-git-dir", src.keep_git_dir);
    read_image_path(t, ctx, "dest", src.dest, true);
    paths_.back().role = PathUse::Role::kSourceDest;
    read_string(t, ctx, "ignore-file", src.ignore_file);

    // One source: a local tree or a repository, never a silent choice.
    if (!src.git.empty() && path)
      fail(path->source(), label(ctx) + ": path and git are exclusive (path is a local tree, git a repository URL)");
    if (!src.ref.empty() && src.git.empty())
      fail(ref->source(), key_ref(ctx, "ref") + ": needs git (a ref names a commit of the git repository)");
  }

  void read_venvs(const toml::table& t, std::vector<VenvSpec>& venvs) {
    const Ctx venv_ctx{"venv"};
    for (const auto& [k, v] : in_file_order(t)) {
      VenvSpec venv;
      venv.name = std::string(k->str());
      if (!is_valid_name(venv.name))
        fail(k->source(), key_ref(venv_ctx, venv.name) +
                              ": invalid venv name (must be non-empty, without \"/\" or whitespace)");
      const toml::table* vt = table(t, venv_ctx, venv.name);
      const Ctx ctx{"venv", venv.name};
      check_keys(*vt, ctx, {"path", "extras", "groups", "no-default-groups", "tags", "install-project"});
      if (!vt->get("path")) fail(k->source(), label(ctx) + ": missing required key \"path\"");
      read_image_path(*vt, ctx, "path", venv.path, true);
      paths_.back().role = PathUse::Role::kVenv;
      read_install_project(*vt, ctx, venv);
      read_names(*vt, ctx, "extras", venv.extras, false);
      if (const toml::node* g = get(*vt, ctx, "groups", Kind::Groups)) {
        if (g->is_string()) venv.all_groups = true;
        else read_names(*vt, ctx, "groups", venv.groups, false);
      }
      read_bool(*vt, ctx, "no-default-groups", venv.no_default_groups);
      read_names(*vt, ctx, "tags", venv.tags, true);
      venvs.push_back(std::move(venv));
    }
    // The project environment comes last: its layer goes on top.
    std::stable_partition(venvs.begin(), venvs.end(), [](const VenvSpec& v) { return !v.is_main(); });
  }

  void read_install_project(const toml::table& t, const Ctx& ctx, VenvSpec& venv) const {
    const toml::node* n = get(t, ctx, "install-project", Kind::StringOrBool);
    if (!n) return;
    using IP = VenvSpec::InstallProject;
    if (n->is_boolean()) {
      venv.install_project = n->value_or(false) ? IP::kYes : IP::kNo;
    } else if (str(n) == "editable") {
      venv.install_project = IP::kEditable;
    } else {
      fail(n->source(), key_ref(ctx, "install-project") + ": expected false, true or \"editable\", got " +
                            toml_quote(str(n)));
    }
  }

  // A venv inside the source dest is allowed (uv's Docker layout, /app/.venv):
  // its layer comes first and the source layer leaves that directory out.
  static bool venv_in_source(const PathUse& inner, const PathUse& outer) {
    return inner.role == PathUse::Role::kVenv && outer.role == PathUse::Role::kSourceDest;
  }

  // Each layer owns its directory: a venv inside the cache (or the cache
  // inside the source tree) would be shadowed by a bind mount at build time
  // and split over two layers in the image.
  void check_overlaps() const {
    for (std::size_t i = 0; i < paths_.size(); ++i) {
      for (std::size_t j = i + 1; j < paths_.size(); ++j) {
        const PathUse& a = paths_[i];
        const PathUse& b = paths_[j];
        auto say = [&](const PathUse& at, const PathUse& other, const std::string& msg) {
          const std::string& w = !at.where.empty() ? at.where : !other.where.empty() ? other.where : file();
          throw Error(w + ": " + msg);
        };
        auto show = [](const PathUse& p) { return p.label + " " + toml_quote(p.value); };
        if (a.value == b.value)
          say(b, a, b.label + " and " + a.label + " are the same path " + toml_quote(a.value));
        if (is_inside(b.value, a.value) && !venv_in_source(b, a)) say(b, a, show(b) + " is inside " + show(a));
        if (is_inside(a.value, b.value) && !venv_in_source(a, b)) say(a, b, show(a) + " is inside " + show(b));
      }
    }
  }

  void check_link_mode(const BuildSpec& spec) const {
    if (spec.uv.ship_cache || spec.uv.link_mode != "symlink" || spec.venvs.empty()) return;
    const std::string& w = !ship_cache_where_.empty() ? ship_cache_where_
                           : !link_mode_where_.empty() ? link_mode_where_
                                                       : file();
    throw Error(w + ": " + uv_ref_ +
                " ship-cache = false needs link-mode = \"copy\" (symlinked venvs point into the cache)");
  }

  std::vector<PathUse> paths_;
  std::vector<std::pair<std::string, std::string>> cli_args_;
  SpecArgs args_;
  std::string ship_cache_where_;
  std::string link_mode_where_;
  std::string uv_ref_ = "[uv]";
};

// ---- locating and parsing the file -------------------------------------------

std::string read_file(const fs::path& path, const std::string& shown) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error("cannot read " + shown + ": is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_errno("cannot read " + shown);
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) throw_errno("cannot read " + shown);
  return out.str();
}

toml::table parse_toml(const fs::path& path, const std::string& shown) {
  const std::string text = read_file(path, shown);
  try {
    return toml::parse(text, std::string_view(shown));
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw Error(shown + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " +
                std::string(e.description()));
  }
}

toml::table* dockless_table(toml::table& root) {
  toml::table* tool = root["tool"].as_table();
  return tool ? (*tool)["dockless"].as_table() : nullptr;
}

}  // namespace

BuildSpec load_build_spec(const fs::path& project_dir, const fs::path& spec_file,
                          const std::vector<std::string>& overrides,
                          const std::vector<std::pair<std::string, std::string>>& args) {
  // A malformed --set is a usage error whatever the file says: check first.
  std::vector<Override> parsed;
  for (const auto& o : overrides) parsed.push_back(parse_override(o));

  fs::path path;
  toml::table root;
  std::error_code ec;
  if (!spec_file.empty()) {
    path = spec_file;
  } else if (fs::exists(project_dir / "dockless.toml", ec)) {
    path = project_dir / "dockless.toml";
  } else if (fs::exists(project_dir / "pyproject.toml", ec)) {
    path = project_dir / "pyproject.toml";
  } else {
    throw Error("no dockless.toml or [tool.dockless] in pyproject.toml in " + project_dir.string());
  }
  const std::string shown = path.lexically_normal().string();
  root = parse_toml(path, shown);

  // pyproject form: by name, or a --spec file that has [tool.dockless] and
  // no [image] of its own. A discovered dockless.toml is always plain.
  const bool pyproject = path.filename() == "pyproject.toml" ||
                         (!spec_file.empty() && dockless_table(root) != nullptr && !root.contains("image"));
  toml::table* spec_root = &root;
  if (pyproject) {
    toml::node* tool = root.get("tool");
    toml::node* node = tool && tool->is_table() ? tool->as_table()->get("dockless") : nullptr;
    if (!node) {
      if (spec_file.empty())
        throw Error("no dockless.toml or [tool.dockless] in pyproject.toml in " + project_dir.string());
      throw Error(shown + ": no [tool.dockless] table");
    }
    if (!node->is_table())
      throw Error(shown + ":" + std::to_string(node->source().begin.line) + ":" +
                  std::to_string(node->source().begin.column) + ": [tool] dockless: expected a table, got " +
                  std::string(type_phrase(node->type())));
    spec_root = node->as_table();
  }

  toml::source_index seq = 0;
  for (const auto& o : parsed) apply_override(*spec_root, o, ++seq);

  Reader reader(shown, pyproject ? Ctx{"tool", "dockless"} : Ctx{});
  reader.set_cli_args(args);
  BuildSpec spec = reader.read(*spec_root);
  spec.file = fs::absolute(path).lexically_normal();
  return spec;
}

}  // namespace dockless
