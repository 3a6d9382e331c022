// The shared TOML reading of the build spec; see spec_reader.h.
#include "src/build/spec_reader.h"

#include <algorithm>
#include <tuple>

#include "base/edit_distance.h"
#include "base/error.h"
#include "src/build/build_args.h"

namespace dockless::toml_spec {

namespace {

bool is_bare_key(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_bare_char);
}

std::string_view expected_phrase(Kind k) {
  switch (k) {
    case Kind::String: return "a string";
    case Kind::Bool: return "true or false";
    case Kind::StringArray: return "an array of strings";
    case Kind::StringTable: return "a table of strings";
    case Kind::Table: return "a table";
    case Kind::Command: return "a string or an array of strings";
    case Kind::Groups: return "an array of strings or \"all\"";
    case Kind::Array: return "an array";
    case Kind::StringOrBool: return "a string or true or false";
  }
  return "";
}

}  // namespace

bool is_bare_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// A TOML basic string: used both for messages and to turn a raw --set value
// into a TOML document that toml++ parses (so the node gets a source region).
std::string toml_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string key_segment(std::string_view s) { return is_bare_key(s) ? std::string(s) : toml_quote(s); }

std::string_view type_phrase(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}


// "(did you mean "x"? valid keys: a, b)"; the closest key within 2 edits.
std::string valid_keys_hint(std::string_view got, const Keys& valid, std::string_view noun) {
  std::string_view best;
  std::size_t best_distance = 3;
  for (auto k : valid) {
    const auto d = edit_distance(got, k);
    if (d < best_distance) {
      best = k;
      best_distance = d;
    }
  }
  std::string out = "(";
  if (!best.empty()) out += "did you mean \"" + std::string(best) + "\"? ";
  out += std::string(noun) + ": ";
  for (std::size_t i = 0; i < valid.size(); ++i) {
    if (i) out += ", ";
    out += valid[i];
  }
  return out + ")";
}

bool from_override(const toml::source_region& r) {
  return r.path && std::string_view(*r.path).starts_with(kSetPrefix);
}

// toml++ keeps a table's keys sorted (std::map), so the file order comes back
// from the keys' source positions. Keys added by --set sort after the file's,
// in command-line order (apply_override puts the override's index in the
// line).
std::vector<Entry> in_file_order(const toml::table& t) {
  std::vector<Entry> entries;
  for (auto&& [k, v] : t) entries.emplace_back(&k, &v);
  auto rank = [](const Entry& e) {
    const auto& r = e.first->source();
    return std::make_tuple(from_override(r), r.begin.line, r.begin.column);
  };
  std::stable_sort(entries.begin(), entries.end(),
                   [&](const Entry& a, const Entry& b) { return rank(a) < rank(b); });
  return entries;
}

// Venv names and tags become directory names and --skip words.
bool is_valid_name(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    return c == '/' || is_space(c) || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

// Absolute and already in the one spelling we compare paths by.
bool is_normalized(std::string_view p) {
  if (p == "/") return true;
  if (p.back() == '/') return false;
  std::size_t start = 1;
  while (start <= p.size()) {
    auto end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    const auto seg = p.substr(start, end - start);
    if (seg.empty() || seg == "." || seg == "..") return false;
    start = end + 1;
  }
  return true;
}

bool is_inside(std::string_view inner, std::string_view outer) {
  if (outer == "/") return inner != "/";
  return inner.size() > outer.size() && inner.starts_with(outer) && inner[outer.size()] == '/';
}


// ---- SpecReader -------------------------------------------------------------

std::string SpecReader::where(const toml::source_region& r) const {
  if (from_override(r)) return *r.path;
  if (!r.begin) return file_;
  return file_ + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

void SpecReader::fail(const toml::source_region& r, const std::string& msg) const {
  throw Error(where(r) + ": " + msg);
}

std::string SpecReader::name(const Ctx& ctx) const {
  std::string out;
  for (const auto* part : {&prefix_, &ctx})
    for (const auto& seg : *part) out += (out.empty() ? "" : ".") + key_segment(seg);
  return out;
}

std::string SpecReader::label(const Ctx& ctx) const {
  if (!ctx.empty() && ctx.front().starts_with("[[")) {
    std::string out;
    for (const auto& seg : ctx) out += (out.empty() ? "" : " ") + seg;
    return out;
  }
  const auto n = name(ctx);
  return n.empty() ? "" : "[" + n + "]";
}

std::string SpecReader::key_ref(const Ctx& ctx, std::string_view key) const {
  const auto l = label(ctx);
  return (l.empty() ? "" : l + " ") + key_segment(key);
}

void SpecReader::check_keys(const toml::table& t, const Ctx& ctx, const Keys& valid) const {
  for (const auto& [k, v] : in_file_order(t)) {
    if (std::find(valid.begin(), valid.end(), k->str()) != valid.end()) continue;
    const auto l = label(ctx);
    fail(k->source(), (l.empty() ? "" : l + ": ") + "unknown key " + toml_quote(k->str()) + " " +
                          valid_keys_hint(k->str(), valid));
  }
}

namespace {

bool has_kind(const toml::node& n, Kind kind) {
  switch (kind) {
    case Kind::String: return n.is_string();
    case Kind::Bool: return n.is_boolean();
    case Kind::Table:
    case Kind::StringTable: return n.is_table();
    case Kind::StringArray:
    case Kind::Array: return n.is_array();
    case Kind::Command: return n.is_string() || n.is_array();
    case Kind::Groups: return n.is_array() || (n.is_string() && n.value_or(std::string_view{}) == "all");
    case Kind::StringOrBool: return n.is_string() || n.is_boolean();
  }
  return false;
}

}  // namespace

const toml::node* SpecReader::get(const toml::table& t, const Ctx& ctx, std::string_view key, Kind kind) const {
  const toml::node* n = t.get(key);
  if (!n) return nullptr;
  if (!has_kind(*n, kind)) {
    std::string got(type_phrase(n->type()));
    if (n->is_string()) got += " " + toml_quote(n->value_or(std::string_view{}));
    if (kind == Kind::String && (n->is_number() || n->is_boolean())) got += " (quote it)";
    fail(n->source(), key_ref(ctx, key) + ": expected " + std::string(expected_phrase(kind)) + ", got " + got);
  }
  // Element types are part of the type: check them here, once.
  const auto* arr = n->as_array();
  if (arr && kind != Kind::Array) {
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const toml::node& e = *arr->get(i);
      if (!e.is_string())
        fail(e.source(), key_ref(ctx, key) + ": item " + std::to_string(i + 1) + ": expected a string, got " +
                             std::string(type_phrase(e.type())));
    }
  }
  if (kind == Kind::StringTable) {
    for (const auto& [k, v] : in_file_order(*n->as_table())) {
      if (!v->is_string())
        fail(v->source(), key_ref(ctx, key) + "." + key_segment(k->str()) + ": expected a string, got " +
                              std::string(type_phrase(v->type())));
    }
  }
  return n;
}

const toml::table* SpecReader::table(const toml::table& t, const Ctx& ctx, std::string_view key) const {
  const toml::node* n = get(t, ctx, key, Kind::Table);
  return n ? n->as_table() : nullptr;
}

std::vector<std::string> SpecReader::strings(const toml::node* n) {
  std::vector<std::string> out;
  for (const auto& e : *n->as_array()) out.push_back(str(&e));
  return out;
}

bool SpecReader::read_string(const toml::table& t, const Ctx& ctx, std::string_view key, std::string& out) const {
  const toml::node* n = get(t, ctx, key, Kind::String);
  if (n) out = str(n);
  return n != nullptr;
}

void SpecReader::read_bool(const toml::table& t, const Ctx& ctx, std::string_view key, bool& out) const {
  if (const toml::node* n = get(t, ctx, key, Kind::Bool)) out = n->value_or(false);
}

void SpecReader::check_path(const toml::source_region& r, const std::string& ref, const std::string& p) const {
  if (p.empty() || p.front() != '/') fail(r, ref + ": " + toml_quote(p) + " is not an absolute path");
  if (!is_normalized(p))
    fail(r, ref + ": " + toml_quote(p) + " is not normalized (no \".\", \"..\", \"//\" or trailing \"/\")");
}

// ---- SpecArgs ---------------------------------------------------------------

std::string SpecArgs::substitute(const SpecReader& r, const toml::node& n, const std::string& ref,
                                 std::set<std::string>* names) {
  const std::string text = SpecReader::str(&n);
  for (auto& name : referenced_args(text)) {
    used_.insert(name);
    if (names) names->insert(name);
  }
  try {
    return substitute_args(text, values_);
  } catch (const Error& e) {
    r.fail(n.source(), ref + ": " + e.what());
  }
}

}  // namespace dockless::toml_spec
