// The TOML reading shared by every part of the build spec (build_spec.cc,
// step_spec.cc): key spelling, type checks, unknown-key hints and messages
// that name the file, line, column and key. Kept apart so each part of the
// spec stays one readable file.
#pragma once

#include <toml++/toml.h>

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dockless::toml_spec {

// Source paths of nodes made by --set start with this, so a message about
// them names the override instead of a file line.
constexpr std::string_view kSetPrefix = "--set ";

bool is_bare_char(char c);
bool is_space(char c);
/// A TOML basic string: for messages, and to turn raw text into TOML.
std::string toml_quote(std::string_view s);
/// A key as TOML writes it: bare when it can be, else quoted.
std::string key_segment(std::string_view s);
std::string_view type_phrase(toml::node_type t);

using Keys = std::vector<std::string_view>;
/// "(did you mean "x"? valid keys: a, b)"; the closest key within 2 edits.
std::string valid_keys_hint(std::string_view got, const Keys& valid, std::string_view noun = "valid keys");

using Entry = std::pair<const toml::key*, const toml::node*>;
bool from_override(const toml::source_region& r);
/// A table's entries in the order of the file; --set keys after, in command-line order.
std::vector<Entry> in_file_order(const toml::table& t);

/// Names that become directory names and --skip words: non-empty, no "/", no whitespace.
bool is_valid_name(std::string_view s);
/// Absolute and already in the one spelling paths are compared by.
bool is_normalized(std::string_view p);
/// inner is strictly below outer.
bool is_inside(std::string_view inner, std::string_view outer);

/// Where a value sits: table names from the spec's root, e.g. {"venv", "main"}.
/// A first segment in "[[...]]" names an array-of-tables element and the
/// segments are shown as written: {"[[step]]", "\"apt\"", "mounts[2]"}.
using Ctx = std::vector<std::string>;

enum class Kind { String, Bool, StringArray, StringTable, Table, Command, Groups, Array, StringOrBool };

/// Type-checked access to a spec table, with messages like
/// "dockless.toml:12:1: [venv.main]: unknown key "extra" (did you mean ...)".
class SpecReader {
 public:
  /// file: as shown in messages; prefix: the spec's table ({"tool", "dockless"} in pyproject.toml).
  SpecReader(std::string file, Ctx prefix) : file_(std::move(file)), prefix_(std::move(prefix)) {}

  const std::string& file() const { return file_; }
  std::string where(const toml::source_region& r) const;
  [[noreturn]] void fail(const toml::source_region& r, const std::string& msg) const;

  /// "venv.main" (dotted, with the prefix).
  std::string name(const Ctx& ctx) const;
  /// "[venv.main]", or "" for the top of a dockless.toml.
  std::string label(const Ctx& ctx) const;
  /// "[uv] ship-cache", or "image" at the top of a dockless.toml.
  std::string key_ref(const Ctx& ctx, std::string_view key) const;

  void check_keys(const toml::table& t, const Ctx& ctx, const Keys& valid) const;
  /// The node at key after its type is checked; nullptr when the key is absent.
  const toml::node* get(const toml::table& t, const Ctx& ctx, std::string_view key, Kind kind) const;
  const toml::table* table(const toml::table& t, const Ctx& ctx, std::string_view key) const;

  static std::string str(const toml::node* n) { return std::string(n->value_or(std::string_view{})); }
  static std::vector<std::string> strings(const toml::node* n);

  bool read_string(const toml::table& t, const Ctx& ctx, std::string_view key, std::string& out) const;
  void read_bool(const toml::table& t, const Ctx& ctx, std::string_view key, bool& out) const;
  /// An image path: absolute and normalised.
  void check_path(const toml::source_region& r, const std::string& ref, const std::string& p) const;

 private:
  std::string file_;
  Ctx prefix_;
};

/// Build-arg values for ${NAME} substitution (build_args.h), and the names
/// the spec used, for the unused --arg warning.
class SpecArgs {
 public:
  explicit SpecArgs(std::map<std::string, std::string> values = {}) : values_(std::move(values)) {}

  /// The string at n with its ${NAME}s substituted; a NAME without a value
  /// fails at n, naming `ref`. The names go to used() and, when given, to *names.
  std::string substitute(const SpecReader& r, const toml::node& n, const std::string& ref,
                         std::set<std::string>* names = nullptr);
  void mark_used(const std::string& name) { used_.insert(name); }

  const std::map<std::string, std::string>& values() const { return values_; }
  const std::set<std::string>& used() const { return used_; }

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> used_;
};

}  // namespace dockless::toml_spec
