// .dockerignore rules: which files of the source tree stay out of the image.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dockless {

/// Docker's semantics (moby/patternmatcher, the docker CLI's ignorefile
/// reader and BuildKit's context walk), reproduced rather than approximated:
///  - a line whose first byte is '#' is a comment (only in column 0: "  #x"
///    is the pattern "#x"); a UTF-8 BOM is dropped; whitespace is trimmed;
///    blank lines are skipped; "\#x" is the literal name "#x";
///  - a leading '!' re-includes; each pattern is cleaned like Go's
///    filepath.Clean ("./a//b/" -> "a/b", "build/" -> "build") and one
///    leading '/' dropped, so "/build", "./build", "build/" and "build" are
///    the same pattern, and also match a *file* named build;
///  - '*' is any run of characters other than '/', '?' one character other
///    than '/', "[a-z]"/"[^a-z]" a class ("[!x]" is a class holding '!'),
///    '\' escapes the next character, "**" any number of directories
///    (including none), a trailing "**" anything;
///  - a path is excluded when the last pattern that matches it, or matches
///    one of its parent directories, is not a '!' pattern; the parent results
///    are carried down the tree exactly as Docker's walk does
///    (MatchesUsingParentResults), so "foo" excludes "foo/bar/baz".
/// Where Docker's matcher would misread a pattern or fail only while walking,
/// parse() refuses it instead: a syntax error anywhere in the pattern (Docker
/// checks only the part before the first '*'), an inverted range, a '\'
/// before a letter, digit or non-ASCII character, and an unescaped '*', '?'
/// or "[:" inside a class. Every other pattern matches exactly as in Docker
/// (checked against moby/patternmatcher on random patterns and paths).
class IgnoreRules {
 public:
  IgnoreRules() = default;
  /// Parses the text of an ignore file; throws Error("FILE:LINE: ...") on a
  /// malformed pattern (e.g. an unterminated '[').
  static IgnoreRules parse(std::string_view text, const std::string& file_name);
  /// Reads `file`; a missing file means no rules.
  static IgnoreRules load(const std::filesystem::path& file);

  /// `rel_path` is relative to the context root, '/'-separated, no leading
  /// "./". True when the path is excluded. `is_dir` does not change the
  /// answer (Docker's patterns never distinguish files from directories).
  bool excluded(const std::string& rel_path, bool is_dir) const;

  /// True when some '!' pattern could re-include something below `dir_rel`
  /// even though dir_rel itself is excluded (then the walk must descend and
  /// ask excluded() for each entry; a re-included entry brings its parent
  /// directories into the layer). BuildKit's rule: false without '!'
  /// patterns; true whenever a '!' pattern holds a wildcard (other than a
  /// trailing "/*" or "/**"); otherwise true only when a '!' pattern names
  /// dir_rel or a path below it.
  bool may_reinclude_below(const std::string& dir_rel) const;

  bool empty() const { return patterns_.empty(); }

 private:
  /// One element of a compiled glob (the regexp Docker builds, as tokens).
  struct Token {
    enum class Kind { Literal, Star, AnyChar, Class, AnyDirs, AnyRest, Start };
    Kind kind = Kind::Literal;
    char literal = 0;                                  ///< Literal: one byte
    bool negated = false;                              ///< Class: "[^...]"
    std::vector<std::pair<char32_t, char32_t>> ranges; ///< Class: inclusive ranges
  };
  /// How Docker compares a pattern with a path (patternmatcher's matchType).
  enum class MatchKind { Exact, Prefix, Suffix, Glob };
  struct Pattern {
    std::string text;           ///< cleaned, without '!'
    bool negate = false;
    MatchKind kind = MatchKind::Exact;
    std::vector<Token> tokens;  ///< for MatchKind::Glob
    bool matches(std::string_view path) const;
    /// Fills kind and tokens from text exactly as patternmatcher compiles;
    /// returns why the pattern is bad, empty when it is fine.
    std::string compile();
  };
  /// Docker's MatchesUsingParentResults: `parent` holds, per pattern, whether
  /// the parent directory matched it (empty at the top level); fills `out`.
  bool step(std::string_view path, const std::vector<bool>& parent, std::vector<bool>& out) const;

  std::vector<Pattern> patterns_;
  bool has_exceptions_ = false;         ///< some '!' pattern exists
  bool literal_exceptions_only_ = true; ///< every '!' pattern is a plain path (BuildKit's test)
};

}  // namespace dockless
