// .dockerignore rules: which files of the source tree stay out of the image.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace dockless {

/// Docker's semantics (moby/patternmatcher): one pattern a line, '#'
/// comments, blank lines skipped, leading/trailing whitespace trimmed,
/// paths cleaned ("./a//b/" -> "a/b", leading '/' dropped); '*' matches
/// within one path component, '?' one character, '[...]' a class, '**' any
/// number of components; a pattern also excludes everything below a matched
/// directory; '!' re-includes; the last matching pattern wins.
class IgnoreRules {
 public:
  IgnoreRules() = default;
  /// Parses the text of an ignore file; throws Error("FILE:LINE: ...") on a
  /// malformed pattern (e.g. an unterminated '[').
  static IgnoreRules parse(std::string_view text, const std::string& file_name);
  /// Reads `file`; a missing file means no rules.
  static IgnoreRules load(const std::filesystem::path& file);

  /// `rel_path` is relative to the context root, '/'-separated, no leading
  /// "./". True when the path is excluded.
  bool excluded(const std::string& rel_path, bool is_dir) const;

  /// True when some '!' pattern could re-include something below `dir_rel`
  /// even though dir_rel itself is excluded (then the walk must descend).
  bool may_reinclude_below(const std::string& dir_rel) const;

  bool empty() const { return patterns_.empty(); }

 private:
  struct Pattern {
    std::string text;           ///< cleaned, without '!'
    bool negate = false;
    std::vector<std::string> parts;  ///< split on '/'
  };
  std::vector<Pattern> patterns_;
};

}  // namespace dockless
