#include "layers/ignore_rules.h"

#include <cctype>
#include <system_error>

#include "base/error.h"
#include "base/file_util.h"

namespace dockless {

namespace {

// ---- UTF-8, as Go decodes it (an invalid byte is U+FFFD of width 1) --------

constexpr char32_t kRuneError = 0xFFFD;

struct Rune {
  char32_t value;
  std::size_t width;
  bool valid;
};

Rune decode_rune(std::string_view s, std::size_t pos) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char b0 = byte(pos);
  if (b0 < 0x80) return {b0, 1, true};
  std::size_t need = 0;
  char32_t value = 0;
  char32_t min = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    value = b0 & 0x1Fu;
    min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    value = b0 & 0x0Fu;
    min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    value = b0 & 0x07u;
    min = 0x10000;
  } else {
    return {kRuneError, 1, false};
  }
  if (pos + need >= s.size()) return {kRuneError, 1, false};
  for (std::size_t i = 1; i <= need; ++i) {
    unsigned char b = byte(pos + i);
    if ((b & 0xC0u) != 0x80u) return {kRuneError, 1, false};
    value = (value << 6) | (b & 0x3Fu);
  }
  if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF))
    return {kRuneError, 1, false};
  return {value, need + 1, true};
}

// Unicode White_Space, which Go's strings.TrimSpace removes.
bool is_go_space(char32_t r) {
  switch (r) {
    case '\t': case '\n': case '\v': case '\f': case '\r': case ' ':
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return r >= 0x2000 && r <= 0x200A;
  }
}

std::string_view trim_space(std::string_view s) {
  while (!s.empty()) {
    Rune r = decode_rune(s, 0);
    if (!r.valid || !is_go_space(r.value)) break;
    s.remove_prefix(r.width);
  }
  while (!s.empty()) {
    // Find the start of the last rune (at most 4 bytes back).
    std::size_t start = s.size() - 1;
    while (start > 0 && s.size() - start < 4 &&
           (static_cast<unsigned char>(s[start]) & 0xC0u) == 0x80u)
      --start;
    Rune r = decode_rune(s, start);
    if (!r.valid || start + r.width != s.size() || !is_go_space(r.value)) break;
    s.remove_suffix(r.width);
  }
  return s;
}

// Go's path/filepath.Clean for '/'-separated paths.
std::string clean_path(std::string_view p) {
  if (p.empty()) return ".";
  const bool rooted = p.front() == '/';
  std::vector<std::string_view> out;
  std::size_t dotdots = 0;  // leading ".." elements kept in `out` (unrooted only)
  std::size_t i = 0;
  while (i < p.size()) {
    std::size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    std::string_view elem = p.substr(i, j - i);
    i = j + 1;
    if (elem.empty() || elem == ".") continue;
    if (elem == "..") {
      if (out.size() > dotdots) {
        out.pop_back();
      } else if (!rooted) {
        out.push_back(elem);
        ++dotdots;
      }
      continue;
    }
    out.push_back(elem);
  }
  std::string result = rooted ? "/" : "";
  for (std::size_t k = 0; k < out.size(); ++k) {
    if (k > 0) result += '/';
    result += out[k];
  }
  return result.empty() ? "." : result;
}

// ---- Glob syntax, as Go's filepath.Match checks it -------------------------

// Docker turns "\\X" into the regexp escape "\\X": a literal only when X is
// ASCII punctuation; "\\a", "\\d", "\\x41"... mean something else there, or
// fail when a path is matched. Only the literal form is accepted.
std::string check_escape(std::string_view p, std::size_t pos) {
  if (pos >= p.size()) return "trailing '\\'";
  unsigned char c = static_cast<unsigned char>(p[pos]);
  if (c >= 0x80 || std::isalnum(c))
    return "'\\" + std::string(p.substr(pos, decode_rune(p, pos).width)) +
           "' is not an escape Docker matches literally (only punctuation may follow '\\')";
  return "";
}

// One member of a class: a possibly escaped character (filepath.Match's getEsc).
// Returns an error text, or "" with `r` and `pos` advanced.
std::string class_char(std::string_view p, std::size_t& pos, char32_t& r) {
  if (pos >= p.size()) return "unterminated character class";
  const char c = p[pos];
  if (c == '-' || c == ']') return "'" + std::string(1, c) + "' where a character was expected in a character class";
  // Docker compiles the class into a regexp without escaping these, which
  // then means something else than a member of the class.
  if (c == '*' || c == '?')
    return "unescaped '" + std::string(1, c) + "' inside a character class (write \\" + std::string(1, c) + ")";
  if (c == '[' && pos + 1 < p.size() && p[pos + 1] == ':') return "\"[:\" inside a character class";
  if (c == '\\') {
    ++pos;
    if (pos >= p.size()) return "unterminated character class";
    if (std::string e = check_escape(p, pos); !e.empty()) return e;
  }
  Rune rune = decode_rune(p, pos);
  if (!rune.valid) return "invalid UTF-8 in a character class";
  r = rune.value;
  pos += rune.width;
  if (pos >= p.size()) return "unterminated character class";
  return "";
}

using Ranges = std::vector<std::pair<char32_t, char32_t>>;

// Parses the class starting at p[pos] == '['; on success pos is past ']'.
std::string parse_class(std::string_view p, std::size_t& pos, bool& negated, Ranges& ranges) {
  ++pos;  // '['
  negated = false;
  if (pos < p.size() && p[pos] == '^') {
    negated = true;
    ++pos;
  }
  for (std::size_t n = 0;; ++n) {
    if (n > 0 && pos < p.size() && p[pos] == ']') {
      ++pos;
      return "";
    }
    char32_t lo = 0;
    if (std::string e = class_char(p, pos, lo); !e.empty()) return e;
    char32_t hi = lo;
    if (p[pos] == '-') {
      ++pos;
      if (std::string e = class_char(p, pos, hi); !e.empty()) return e;
      // Go's filepath.Match accepts an inverted range, but the regexp
      // Docker compiles it into refuses it when matching: an error either way.
      if (hi < lo) return "inverted range in a character class";
    }
    ranges.emplace_back(lo, hi);
  }
}

}  // namespace

bool IgnoreRules::Pattern::matches(std::string_view path) const {
  switch (kind) {
    case MatchKind::Exact:
      return path == text;
    case MatchKind::Prefix:  // "foo/**": everything that starts with "foo/"
      return path.starts_with(std::string_view(text).substr(0, text.size() - 2));
    case MatchKind::Suffix: {  // "**/foo" (or "**foo"): plain suffix test
      std::string_view suffix = std::string_view(text).substr(2);
      if (path.ends_with(suffix)) return true;
      return !suffix.empty() && suffix.front() == '/' && path == suffix.substr(1);
    }
    case MatchKind::Glob:
      break;
  }
  // Anchored match of the token list against the whole path, memoised on
  // (token, position) so that no pattern can make it exponential.
  const std::size_t n = tokens.size();
  const std::size_t len = path.size();
  std::vector<signed char> memo((n + 1) * (len + 1), -1);
  auto match = [&](auto&& self, std::size_t ti, std::size_t pos) -> bool {
    if (ti == n) return pos == len;
    signed char& slot = memo[ti * (len + 1) + pos];
    if (slot >= 0) return slot != 0;
    const Token& t = tokens[ti];
    bool ok = false;
    switch (t.kind) {
      case Token::Kind::Literal:
        ok = pos < len && path[pos] == t.literal && self(self, ti + 1, pos + 1);
        break;
      case Token::Kind::Star:  // [^/]*
        for (std::size_t p = pos;;) {
          if (self(self, ti + 1, p)) {
            ok = true;
            break;
          }
          if (p == len || path[p] == '/') break;
          p += decode_rune(path, p).width;
        }
        break;
      case Token::Kind::AnyChar:  // [^/]
        ok = pos < len && path[pos] != '/' && self(self, ti + 1, pos + decode_rune(path, pos).width);
        break;
      case Token::Kind::Class:
        if (pos < len) {
          Rune r = decode_rune(path, pos);
          bool in = false;
          for (const auto& [lo, hi] : t.ranges) in = in || (lo <= r.value && r.value <= hi);
          ok = in != t.negated && self(self, ti + 1, pos + r.width);
        }
        break;
      case Token::Kind::AnyDirs:  // (.*/)?  ('.' stops at a newline, as in Go's regexp)
        ok = self(self, ti + 1, pos);
        for (std::size_t q = pos; !ok && q < len && path[q] != '\n'; ++q)
          if (path[q] == '/') ok = self(self, ti + 1, q + 1);
        break;
      case Token::Kind::Start:  // ^
        ok = pos == 0 && self(self, ti + 1, pos);
        break;
      case Token::Kind::AnyRest:  // .*
        for (std::size_t q = pos;; q += decode_rune(path, q).width) {
          if (self(self, ti + 1, q)) {
            ok = true;
            break;
          }
          if (q >= len || path[q] == '\n') break;
        }
        break;
    }
    slot = ok ? 1 : 0;
    return ok;
  };
  return match(match, 0, 0);
}

// Compiles exactly as patternmatcher does: the match kind starts as an
// exact comparison and is degraded by wildcards.
std::string IgnoreRules::Pattern::compile() {
  kind = MatchKind::Exact;
  tokens.clear();
  std::string_view pat = text;
  for (std::size_t i = 0, k = 0; i < pat.size(); ++k) {
    const char ch = pat[i];
    if (ch == '*') {
      if (i + 1 < pat.size() && pat[i + 1] == '*') {
        i += 2;
        if (i < pat.size() && pat[i] == '/') ++i;  // "**/" is "**"
        if (i == pat.size()) {
          if (kind == MatchKind::Exact) {
            kind = MatchKind::Prefix;
          } else {
            tokens.push_back({Token::Kind::AnyRest, 0, false, {}});
            kind = MatchKind::Glob;
          }
        } else {
          tokens.push_back({Token::Kind::AnyDirs, 0, false, {}});
          kind = MatchKind::Glob;
        }
        if (k == 0) kind = MatchKind::Suffix;
      } else {
        tokens.push_back({Token::Kind::Star, 0, false, {}});
        kind = MatchKind::Glob;
        ++i;
      }
    } else if (ch == '?') {
      tokens.push_back({Token::Kind::AnyChar, 0, false, {}});
      kind = MatchKind::Glob;
      ++i;
    } else if (ch == '\\') {
      if (std::string e = check_escape(pat, i + 1); !e.empty()) return e;
      std::size_t width = decode_rune(pat, i + 1).width;
      for (std::size_t b = 0; b < width; ++b)
        tokens.push_back({Token::Kind::Literal, pat[i + 1 + b], false, {}});
      kind = MatchKind::Glob;
      i += 1 + width;
    } else if (ch == '[') {
      Token t{Token::Kind::Class, 0, false, {}};
      if (std::string e = parse_class(pat, i, t.negated, t.ranges); !e.empty()) return e;
      tokens.push_back(std::move(t));
      kind = MatchKind::Glob;
    } else if (ch == '^') {
      // Not escaped by Docker: in its regexp an anchor, which only matches
      // at the start (a literal '^' in an exact, prefix or suffix pattern).
      tokens.push_back({Token::Kind::Start, 0, false, {}});
      ++i;
    } else {
      if (ch == ']') kind = MatchKind::Glob;
      tokens.push_back({Token::Kind::Literal, ch, false, {}});
      ++i;
    }
  }
  if (kind != MatchKind::Glob) tokens.clear();
  return {};
}

IgnoreRules IgnoreRules::parse(std::string_view text, const std::string& file_name) {
  IgnoreRules rules;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.ends_with('\r')) line.remove_suffix(1);  // bufio.ScanLines drops it
    if (line_no == 1 && line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
    if (line.starts_with('#')) continue;  // a comment only in column 0
    auto fail = [&](std::string_view pattern, const std::string& why) -> Error {
      return Error(file_name + ":" + std::to_string(line_no) + ": bad pattern \"" +
                   std::string(pattern) + "\": " + why);
    };
    const std::string_view original = trim_space(line);
    std::string_view body = original;
    if (body.empty()) continue;

    // The docker CLI's ignorefile.ReadAll: clean what follows '!' and drop
    // one leading '/'.
    const bool invert = body.front() == '!';
    if (invert) body = trim_space(body.substr(1));
    std::string pattern(body);
    if (!pattern.empty()) {
      pattern = clean_path(pattern);
      if (pattern.size() > 1 && pattern.front() == '/') pattern.erase(0, 1);
    }
    if (invert) pattern.insert(0, "!");

    // patternmatcher.New: trim and clean again (the '!' included), then split
    // off the '!'.
    pattern = clean_path(trim_space(pattern));
    Pattern p;
    if (pattern.front() == '!') {
      if (pattern.size() == 1) throw fail(original, "a lone '!' excludes nothing");
      p.negate = true;
      pattern.erase(0, 1);
    }
    p.text = pattern;

    if (std::string e = p.compile(); !e.empty()) throw fail(original, e);

    if (p.negate) {
      rules.has_exceptions_ = true;
      // BuildKit (fsutil) can only prune excluded directories when every
      // exception is a plain path once a trailing "/**" or "/*" is removed.
      std::string_view t = p.text;
      if (t.ends_with("/**")) t.remove_suffix(3);
      if (t.ends_with("/*")) t.remove_suffix(2);
      if (t.find_first_of("*[]?^\\") != std::string_view::npos) rules.literal_exceptions_only_ = false;
    }
    rules.patterns_.push_back(std::move(p));
  }
  return rules;
}

IgnoreRules IgnoreRules::load(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    if (ec) throw Error("cannot read " + file.string() + ": " + ec.message());
    return {};  // no ignore file: nothing is excluded
  }
  return parse(read_file(file), file.string());
}

bool IgnoreRules::step(std::string_view path, const std::vector<bool>& parent,
                       std::vector<bool>& out) const {
  out.assign(patterns_.size(), false);
  bool matched = false;
  for (std::size_t i = 0; i < patterns_.size(); ++i) {
    const Pattern& p = patterns_[i];
    bool match = !parent.empty() && parent[i];
    if (!match) {
      // Docker skips an exclusion pattern while nothing is excluded and an
      // exception while something is; the skip is remembered for the children.
      if (p.negate != matched) continue;
      match = p.matches(path);
    }
    out[i] = match;
    if (match) matched = !p.negate;
  }
  return matched;
}

bool IgnoreRules::excluded(const std::string& rel_path, bool /*is_dir*/) const {
  if (patterns_.empty()) return false;
  std::string_view path = rel_path;
  while (path.starts_with("./")) path.remove_prefix(2);
  while (path.starts_with('/')) path.remove_prefix(1);
  while (path.ends_with('/')) path.remove_suffix(1);
  if (path.empty() || path == ".") return false;  // the context root itself stays

  // Walk from the top as Docker's context walk does, carrying each parent
  // directory's per-pattern results down to its child.
  std::vector<bool> parent, current;
  bool result = false;
  std::size_t end = 0;
  while (true) {
    end = path.find('/', end);
    std::string_view prefix = path.substr(0, end);
    result = step(prefix, parent, current);
    if (end == std::string_view::npos) break;
    parent.swap(current);
    ++end;
  }
  return result;
}

bool IgnoreRules::may_reinclude_below(const std::string& dir_rel) const {
  if (!has_exceptions_) return false;
  if (!literal_exceptions_only_) return true;
  std::string dir = dir_rel;
  while (dir.ends_with('/')) dir.pop_back();
  const std::string dir_slash = dir + "/";
  for (const Pattern& p : patterns_) {
    if (!p.negate) continue;
    std::string_view t = p.text;
    if (t.ends_with("/**")) t.remove_suffix(3);
    if (t.ends_with("/*")) t.remove_suffix(2);
    if ((std::string(t) + "/").starts_with(dir_slash)) return true;
  }
  return false;
}

}  // namespace dockless
