// ${NAME} scanning and substitution; see build_args.h.
#include "src/build/build_args.h"

#include <algorithm>

#include "base/error.h"

namespace dockless {
namespace {

bool is_name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

// What is at text[i]: an escaped "$${" (length 3), a reference ${NAME}
// (length and name), or nothing of ours.
struct Token {
  enum Kind { kNone, kEscape, kRef } kind = kNone;
  std::size_t length = 0;
  std::string_view name;
};

Token token_at(std::string_view text, std::size_t i) {
  if (text[i] != '$') return {};
  const std::string_view rest = text.substr(i);
  if (rest.starts_with("$${")) return {Token::kEscape, 3, {}};
  if (!rest.starts_with("${") || rest.size() < 4 || !is_name_start(rest[2])) return {};
  std::size_t end = 3;
  while (end < rest.size() && is_name_char(rest[end])) ++end;
  if (end == rest.size() || rest[end] != '}') return {};  // ${x:-y}, ${a[@]}: the shell's
  return {Token::kRef, end + 1, rest.substr(2, end - 2)};
}

}  // namespace

bool is_arg_name(std::string_view name) {
  return !name.empty() && is_name_start(name.front()) && std::all_of(name.begin(), name.end(), is_name_char);
}

std::vector<std::string> referenced_args(std::string_view text) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < text.size();) {
    const Token t = token_at(text, i);
    if (t.kind == Token::kRef && std::find(out.begin(), out.end(), t.name) == out.end())
      out.emplace_back(t.name);
    i += t.kind == Token::kNone ? 1 : t.length;
  }
  return out;
}

std::string substitute_args(std::string_view text, const std::map<std::string, std::string>& values) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const Token t = token_at(text, i);
    if (t.kind == Token::kNone) {
      out += text[i++];
      continue;
    }
    if (t.kind == Token::kEscape) {
      out += "${";
    } else {
      auto it = values.find(std::string(t.name));
      if (it == values.end())
        throw Error("${" + std::string(t.name) + "} has no value (give it a default in [args] or pass --arg " +
                    std::string(t.name) + "=VALUE; write $${ for a literal ${, e.g. for a shell variable)");
      out += it->second;
    }
    i += t.length;
  }
  return out;
}

std::pair<std::string, std::string> parse_arg_option(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos)
    throw UsageError("--arg \"" + text + "\": expected NAME=VALUE (an empty value is NAME=)");
  std::string name = text.substr(0, eq);
  if (!is_arg_name(name))
    throw UsageError("--arg \"" + text + "\": \"" + name +
                     "\" is not an argument name (a letter or _, then letters, digits or _)");
  return {std::move(name), text.substr(eq + 1)};
}

}  // namespace dockless
