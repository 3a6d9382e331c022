// [[step]] tables: keys, types, mounts and args; see step_reader.h.
#include "src/build/step_reader.h"

#include <algorithm>
#include <limits>
#include <set>

#include "base/error.h"

namespace dockless::toml_spec {
namespace {

const Keys kStepKeys = {"name", "at", "run", "shell", "env", "workdir", "user", "network", "mounts", "skip-if-empty"};
const Keys kMountTypes = {"bind", "cache", "secret", "tmpfs"};

// A relative path under a directory: no "/" in front, no "." or ".." inside
// ("." alone is the directory itself).
bool is_relative_inside(std::string_view p) {
  if (p == ".") return true;
  if (p.empty() || p.front() == '/') return false;
  return is_normalized("/" + std::string(p));
}

// "[[step]]" or "[[tool.dockless.step]]": what the user wrote.
std::string array_label(const SpecReader& r) { return "[[" + r.name({"step"}) + "]]"; }

class StepReader {
 public:
  StepReader(const SpecReader& r, SpecArgs& args) : r_(r), args_(args) {}

  StepSpec read(const toml::table& t, std::size_t index) {
    StepSpec step;
    const Ctx nameless{array_label(r_) + " " + std::to_string(index)};
    const toml::node* name = r_.get(t, nameless, "name", Kind::String);
    if (!name) r_.fail(t.source(), nameless.front() + ": missing required key \"name\"");
    step.name = SpecReader::str(name);
    if (step.name.empty() || std::any_of(step.name.begin(), step.name.end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        }))
      r_.fail(name->source(), r_.key_ref(nameless, "name") + ": must be non-empty, on one line");
    const Ctx ctx{array_label(r_), toml_quote(step.name)};
    r_.check_keys(t, ctx, kStepKeys);
    read_at(t, ctx, step);
    std::set<std::string> used;
    const toml::node* run = r_.get(t, ctx, "run", Kind::String);
    if (!run) r_.fail(t.source(), r_.label(ctx) + ": missing required key \"run\"");
    step.run = args_.substitute(r_, *run, r_.key_ref(ctx, "run"), &used);
    if (const toml::node* n = r_.get(t, ctx, "shell", Kind::StringArray)) {
      step.shell = SpecReader::strings(n);
      if (step.shell.empty() || step.shell.front().empty())
        r_.fail(n->source(), r_.key_ref(ctx, "shell") + ": must name a program, e.g. [\"sh\", \"-c\"]");
    }
    if (const toml::node* n = r_.get(t, ctx, "env", Kind::StringTable)) {
      for (const auto& [k, v] : in_file_order(*n->as_table())) {
        const std::string ref = r_.key_ref(ctx, "env") + "." + key_segment(k->str());
        if (k->str().empty() || k->str().find('=') != std::string_view::npos)
          r_.fail(k->source(), r_.key_ref(ctx, "env") + ": invalid variable name " + toml_quote(k->str()));
        step.env.emplace_back(std::string(k->str()), args_.substitute(r_, *v, ref, &used));
      }
    }
    if (const toml::node* n = r_.get(t, ctx, "workdir", Kind::String)) {
      step.workdir = SpecReader::str(n);
      r_.check_path(n->source(), r_.key_ref(ctx, "workdir"), step.workdir);
    }
    r_.read_string(t, ctx, "user", step.user);
    read_network(t, ctx, step);
    read_skip_if_empty(t, ctx, step, used);
    for (const auto& a : used) step.args[a] = args_.values().at(a);
    if (const toml::node* n = r_.get(t, ctx, "mounts", Kind::Array)) read_mounts(*n->as_array(), ctx, step);
    return step;
  }

 private:
  void read_at(const toml::table& t, const Ctx& ctx, StepSpec& step) const {
    const toml::node* n = r_.get(t, ctx, "at", Kind::String);
    if (!n) return;
    const std::string at = SpecReader::str(n);
    if (at == "base") step.at = StepStage::kBase;
    else if (at == "venvs") step.at = StepStage::kVenvs;
    else if (at == "source") step.at = StepStage::kSource;
    else r_.fail(n->source(), r_.key_ref(ctx, "at") + ": expected \"base\", \"venvs\" or \"source\", got " + toml_quote(at));
  }

  void read_network(const toml::table& t, const Ctx& ctx, StepSpec& step) const {
    const toml::node* n = r_.get(t, ctx, "network", Kind::String);
    if (!n) return;
    const std::string v = SpecReader::str(n);
    if (v == "host") step.network = StepNetwork::kHost;
    else if (v == "none") step.network = StepNetwork::kNone;
    else r_.fail(n->source(), r_.key_ref(ctx, "network") + ": expected \"host\" or \"none\", got " + toml_quote(v));
  }

  void read_skip_if_empty(const toml::table& t, const Ctx& ctx, StepSpec& step, std::set<std::string>& used) {
    const toml::node* n = r_.get(t, ctx, "skip-if-empty", Kind::String);
    if (!n) return;
    step.skip_if_empty = SpecReader::str(n);
    const std::string ref = r_.key_ref(ctx, "skip-if-empty");
    auto it = args_.values().find(step.skip_if_empty);
    if (it == args_.values().end())
      r_.fail(n->source(), ref + ": " + toml_quote(step.skip_if_empty) +
                               " is not a build arg (name one of [args], or pass --arg " + step.skip_if_empty +
                               "=VALUE)");
    args_.mark_used(step.skip_if_empty);
    used.insert(step.skip_if_empty);
    step.skipped = it->second.empty();
  }

  void read_mounts(const toml::array& mounts, const Ctx& step_ctx, StepSpec& step) const {
    std::set<std::string> targets;
    for (std::size_t i = 0; i < mounts.size(); ++i) {
      const toml::node& m = *mounts.get(i);
      Ctx ctx = step_ctx;
      ctx.push_back("mounts[" + std::to_string(i + 1) + "]");
      if (!m.is_table())
        r_.fail(m.source(), r_.label(ctx) + ": expected a table such as { type = \"cache\", target = \"/x\" }, got " +
                                std::string(type_phrase(m.type())));
      StepMount mount = read_mount(*m.as_table(), ctx);
      if (!targets.insert(mount.target).second)
        r_.fail(m.source(), r_.key_ref(ctx, "target") + ": another mount of this step has target " +
                                toml_quote(mount.target));
      step.mounts.push_back(std::move(mount));
    }
  }

  StepMount read_mount(const toml::table& t, const Ctx& ctx) const {
    StepMount m;
    m.origin = r_.where(t.source()) + ": " + r_.label(ctx);
    const toml::node* type = r_.get(t, ctx, "type", Kind::String);
    if (!type) r_.fail(t.source(), r_.label(ctx) + ": missing required key \"type\" (bind, cache, secret or tmpfs)");
    const std::string ty = SpecReader::str(type);
    Keys keys{"type", "target"};
    if (ty == "bind") {
      m.type = StepMount::Type::kBind;
      keys.insert(keys.end(), {"source", "context", "readonly"});
    } else if (ty == "cache") {
      m.type = StepMount::Type::kCache;
      keys.insert(keys.end(), {"id", "sharing", "mode", "uid", "gid"});
    } else if (ty == "secret") {
      m.type = StepMount::Type::kSecret;
      keys.insert(keys.end(), {"id", "required"});
    } else if (ty == "tmpfs") {
      m.type = StepMount::Type::kTmpfs;
      keys.push_back("size");
    } else {
      r_.fail(type->source(), r_.key_ref(ctx, "type") + ": unknown mount type " + toml_quote(ty) + " " +
                                  valid_keys_hint(ty, kMountTypes, "valid types"));
    }
    r_.check_keys(t, ctx, keys);
    const toml::node* target = r_.get(t, ctx, "target", Kind::String);
    if (target) {
      m.target = SpecReader::str(target);
      r_.check_path(target->source(), r_.key_ref(ctx, "target"), m.target);
      if (m.target == "/") r_.fail(target->source(), r_.key_ref(ctx, "target") + ": cannot be \"/\"");
    }
    switch (m.type) {
      case StepMount::Type::kBind: read_bind(t, ctx, m); break;
      case StepMount::Type::kCache: read_cache(t, ctx, m); break;
      case StepMount::Type::kSecret: read_secret(t, ctx, m); break;
      case StepMount::Type::kTmpfs: read_tmpfs(t, ctx, m); break;
    }
    if (m.target.empty()) r_.fail(t.source(), r_.label(ctx) + ": missing required key \"target\"");
    return m;
  }

  void read_bind(const toml::table& t, const Ctx& ctx, StepMount& m) const {
    if (const toml::node* n = r_.get(t, ctx, "source", Kind::String)) {
      m.source = SpecReader::str(n);
      if (!is_relative_inside(m.source))
        r_.fail(n->source(), r_.key_ref(ctx, "source") + ": " + toml_quote(m.source) +
                                 " must be a relative path without \".\", \"..\" or \"//\" (\".\" is the whole directory)");
    }
    if (const toml::node* n = r_.get(t, ctx, "context", Kind::String)) {
      m.context = SpecReader::str(n);
      if (!is_valid_name(m.context))
        r_.fail(n->source(), r_.key_ref(ctx, "context") + ": invalid context name " + toml_quote(m.context));
    }
    r_.read_bool(t, ctx, "readonly", m.readonly);
  }

  void read_cache(const toml::table& t, const Ctx& ctx, StepMount& m) const {
    r_.read_string(t, ctx, "id", m.id);
    if (t.get("id") && m.id.empty()) r_.fail(t.get("id")->source(), r_.key_ref(ctx, "id") + ": must not be empty");
    if (m.id.empty()) m.id = m.target;
    if (const toml::node* n = r_.get(t, ctx, "sharing", Kind::String)) {
      const std::string v = SpecReader::str(n);
      if (v != "shared" && v != "locked")
        r_.fail(n->source(), r_.key_ref(ctx, "sharing") + ": expected \"shared\" or \"locked\", got " + toml_quote(v));
      m.locked = v == "locked";
    }
    m.mode = read_number(t, ctx, "mode", 07777, true);
    m.uid = read_number(t, ctx, "uid", std::numeric_limits<std::uint32_t>::max() - 1, false);
    m.gid = read_number(t, ctx, "gid", std::numeric_limits<std::uint32_t>::max() - 1, false);
  }

  void read_secret(const toml::table& t, const Ctx& ctx, StepMount& m) const {
    const toml::node* id = r_.get(t, ctx, "id", Kind::String);
    if (!id) r_.fail(t.source(), r_.label(ctx) + ": missing required key \"id\" (the NAME of --secret id=NAME,src=FILE)");
    m.id = SpecReader::str(id);
    if (!is_valid_name(m.id)) r_.fail(id->source(), r_.key_ref(ctx, "id") + ": invalid secret id " + toml_quote(m.id));
    if (m.target.empty()) m.target = "/run/secrets/" + m.id;
    r_.read_bool(t, ctx, "required", m.required);
  }

  void read_tmpfs(const toml::table& t, const Ctx& ctx, StepMount& m) const {
    const toml::node* n = t.get("size");
    if (!n) return;
    const std::string ref = r_.key_ref(ctx, "size");
    if (n->is_integer() && n->value_or(std::int64_t{0}) > 0) {
      m.size = static_cast<std::uint64_t>(n->value_or(std::int64_t{0}));
      return;
    }
    const std::string text = n->is_string() ? SpecReader::str(n) : "";
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    const std::string unit = text.substr(digits);
    const std::uint64_t mult = unit.empty() ? 1 : unit == "K" || unit == "k" ? 1024 : unit == "M" ? 1024 * 1024
                               : unit == "G" ? 1024ULL * 1024 * 1024 : 0;
    if (digits == 0 || digits > 12 || mult == 0 || std::stoull(text.substr(0, digits)) == 0)
      r_.fail(n->source(), ref + ": expected a size in bytes or a string such as \"64M\" (K, M, G)");
    m.size = std::stoull(text.substr(0, digits)) * mult;
  }

  // An integer, or for a mode also an octal string ("0755").
  std::optional<std::uint32_t> read_number(const toml::table& t, const Ctx& ctx, std::string_view key,
                                           std::int64_t max, bool octal_string) const {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    std::int64_t v = -1;
    if (n->is_integer()) {
      v = n->value_or(std::int64_t{-1});
    } else if (octal_string && n->is_string()) {
      const std::string s = SpecReader::str(n);
      if (!s.empty() && s.size() <= 5 && s.find_first_not_of("01234567") == std::string::npos) v = std::stoll(s, nullptr, 8);
    }
    if (v < 0 || v > max)
      r_.fail(n->source(), r_.key_ref(ctx, key) + (octal_string ? ": expected a mode such as 0o755 or \"0755\""
                                                                  : ": expected a numeric id such as 1000"));
    return static_cast<std::uint32_t>(v);
  }

  const SpecReader& r_;
  SpecArgs& args_;
};

}  // namespace

std::vector<StepSpec> read_steps(const SpecReader& r, const toml::node* steps, SpecArgs& args) {
  std::vector<StepSpec> out;
  if (!steps) return out;
  const Ctx root{};
  const toml::array* arr_p = steps->as_array();
  const bool tables = arr_p && std::all_of(arr_p->begin(), arr_p->end(), [](const toml::node& n) {
    return n.is_table();
  });
  if (!tables)
    r.fail(steps->source(), r.key_ref(root, "step") + ": expected [[step]] tables, got " +
                                std::string(type_phrase(steps->type())));
  StepReader reader(r, args);
  const auto& arr = *arr_p;
  for (std::size_t i = 0; i < arr.size(); ++i) {
    StepSpec step = reader.read(*arr.get(i)->as_table(), i + 1);
    for (const auto& earlier : out)
      if (earlier.name == step.name)
        r.fail(arr.get(i)->source(), array_label(r) + " " + toml_quote(step.name) +
                                         ": another step has this name (step names must be unique)");
    out.push_back(std::move(step));
  }
  return out;
}

}  // namespace dockless::toml_spec
