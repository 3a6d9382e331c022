// .dockerignore semantics: each row was checked against moby/patternmatcher,
// the docker CLI's ignorefile reader and BuildKit's context walk.
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

#include "layers/ignore_rules.h"
#include "base/error.h"
#include "tests/test_support.h"

using dockless::Error;
using dockless::IgnoreRules;

namespace {

IgnoreRules rules_of(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  return IgnoreRules::parse(text, ".dockerignore");
}

struct Row {
  std::vector<std::string> patterns;
  std::string path;
  bool is_dir;
  bool excluded;
};

}  // namespace

TEST_CASE("ignore rules: the pattern table", "[ignore_rules]") {
  const std::vector<Row> rows = {
      // '*' stays inside one path component: "*.pyc" is top-level only.
      {{"*.pyc"}, "a.pyc", false, true},
      {{"*.pyc"}, "pkg/a.pyc", false, false},
      {{"*.pyc"}, "a.pyc.txt", false, false},
      // "**" spans any number of directories, including none.
      {{"**/*.pyc"}, "pkg/sub/a.pyc", false, true},
      {{"**/*.pyc"}, "a.pyc", false, true},
      {{"**/__pycache__"}, "__pycache__", true, true},
      {{"**/__pycache__"}, "pkg/__pycache__", true, true},
      {{"**/__pycache__"}, "pkg/__pycache__/m.cpython-312.pyc", false, true},
      {{"**/__pycache__"}, "pkg/not__pycache__", true, false},
      // Trailing '/', leading '/' and "./" are cleaned away; a directory
      // pattern also matches a file of that name (Docker, unlike git).
      {{"build/"}, "build", true, true},
      {{"build/"}, "build/lib/x.so", false, true},
      {{"build/"}, "build", false, true},
      {{"build/"}, "src/build", true, false},
      {{"/build"}, "build/x", false, true},
      {{"/build"}, "src/build", true, false},
      {{"./build"}, "build", true, true},
      {{"foo//bar/"}, "foo/bar/x", false, true},
      {{"foo/../bar"}, "bar", false, true},
      {{"foo/../bar"}, "foo/bar", false, false},
      // "docs/**/*.md"
      {{"docs/**/*.md"}, "docs/a.md", false, true},
      {{"docs/**/*.md"}, "docs/x/y/a.md", false, true},
      {{"docs/**/*.md"}, "docs/x/a.txt", false, false},
      {{"docs/**/*.md"}, "a.md", false, false},
      {{"a/**/b"}, "a/b", false, true},
      {{"a/**/b"}, "a/x/y/b", false, true},
      {{"a/**/b"}, "a/xb", false, false},
      // A trailing "**" matches everything below, not the directory itself.
      {{"foo/**"}, "foo", true, false},
      {{"foo/**"}, "foo/x/y", false, true},
      // '!' re-includes; the last matching pattern wins.
      {{"*.md", "!important.md"}, "important.md", false, false},
      {{"*.md", "!important.md"}, "README.md", false, true},
      {{"*.md"}, "docs/README.md", false, false},
      {{"*.log", "!important.log", "important.log"}, "important.log", false, true},
      {{"*", "! keep"}, "keep", false, false},
      {{"!foo"}, "foo", false, false},
      // One '*' per component.
      {{"a/*/c"}, "a/b/c", false, true},
      {{"a/*/c"}, "a/b/d/c", false, false},
      {{"a/*/c"}, "a/b/c/d", false, true},
      {{"foo*"}, "foobar", false, true},
      {{"foo*"}, "foo/bar", false, true},
      {{"*"}, "dir/sub/file", false, true},
      // '?' is one character other than '/'.
      {{"a?c"}, "abc", false, true},
      {{"a?c"}, "a/c", false, false},
      {{"a?c"}, "ac", false, false},
      {{"a?c"}, "a\xC3\xA9""c", false, true},  // one character, two bytes
      // Classes: '^' negates, '!' is an ordinary member, ranges.
      {{"[abc]x"}, "bx", false, true},
      {{"[abc]x"}, "dx", false, false},
      {{"[^abc]x"}, "dx", false, true},
      {{"[^abc]x"}, "ax", false, false},
      {{"[!abc]x"}, "!x", false, true},
      {{"[!abc]x"}, "dx", false, false},
      {{"[a-c]x"}, "bx", false, true},
      {{"[\\]]x"}, "]x", false, true},
      // ".git" and everything in it; not ".github".
      {{".git"}, ".git", true, true},
      {{".git"}, ".git/objects/ab/cdef", false, true},
      {{".git"}, ".github/workflows/ci.yml", false, false},
      // Exclude everything but one entry.
      {{"**", "!keep"}, "keep", false, false},
      {{"**", "!keep"}, "keep/sub/file", false, false},
      {{"**", "!keep"}, "other", false, true},
      {{"*", "!*.py"}, "main.py", false, false},
      {{"*", "!*.py"}, "pkg/mod.py", false, true},
      {{"dir", "!dir/keep.txt"}, "dir/keep.txt", false, false},
      {{"dir", "!dir/keep.txt"}, "dir/other.txt", false, true},
      // A pattern naming a directory excludes all below it.
      {{"foo"}, "foo/bar/baz", false, true},
      {{"foo"}, "foobar", false, false},
      {{"foo"}, "src/foo", false, false},
      // Comments: '#' only in column 0; "\#" escapes; whitespace trimmed.
      {{"#foo"}, "#foo", false, false},
      {{"# comment", "foo"}, "foo", false, true},
      {{" #foo"}, "#foo", false, true},
      {{"\\#foo"}, "#foo", false, true},
      {{"  foo\t "}, "foo", false, true},
      {{"", "   ", "foo"}, "bar", false, false},
      // Escapes make a wildcard literal.
      {{"\\*"}, "*", false, true},
      {{"\\*"}, "x", false, false},
      {{"a\\?c"}, "a?c", false, true},
      {{"a\\?c"}, "abc", false, false},
      // Docker quirks, reproduced: a leading "**" without '/' is a plain
      // suffix test unless another wildcard follows...
      {{"**foo"}, "xfoo", false, true},
      {{"**fo?"}, "xfoo", false, false},
      // ...and a pattern skipped for a parent (because the parent was already
      // excluded) is only tested against the child itself, not its parents.
      {{"a", "!a/b", "a"}, "a/b", false, false},
      {{"a", "!a/b", "a"}, "a/c", false, true},
      // '^' is not escaped in Docker's regexp: literal in a plain pattern,
      // an anchor (matching only at the start) once a wildcard is present.
      {{"^a"}, "^a", false, true},
      {{"^a*"}, "ab", false, true},
      {{"^a*"}, "^ab", false, false},
  };
  REQUIRE(rows.size() >= 40);
  for (const Row& row : rows) {
    std::string patterns;
    for (const auto& p : row.patterns) patterns += "[" + p + "] ";
    INFO("patterns " << patterns << "path " << row.path);
    CHECK(rules_of(row.patterns).excluded(row.path, row.is_dir) == row.excluded);
  }
}

TEST_CASE("ignore rules: file format details", "[ignore_rules]") {
  SECTION("a UTF-8 byte order mark and CRLF line ends") {
    auto rules = IgnoreRules::parse("\xEF\xBB\xBF*.tmp\r\nlogs\r\n", "f");
    CHECK(rules.excluded("x.tmp", false));
    CHECK(rules.excluded("logs/a", false));
    CHECK_FALSE(rules.excluded("x.tmpl", false));
  }
  SECTION("no rules, and the root itself") {
    IgnoreRules none;
    CHECK(none.empty());
    CHECK_FALSE(none.excluded("anything", false));
    auto all = IgnoreRules::parse("**\n", "f");
    CHECK_FALSE(all.empty());
    CHECK_FALSE(all.excluded("", true));
    CHECK(all.excluded("a", false));
  }
  SECTION("a comment-only file has no rules") {
    CHECK(IgnoreRules::parse("# nothing\n\n#\n", "f").empty());
  }
  SECTION("paths given with a trailing slash or leading ./") {
    auto rules = IgnoreRules::parse("build\n", "f");
    CHECK(rules.excluded("build/", true));
    CHECK(rules.excluded("./build/x", false));
  }
}

TEST_CASE("ignore rules: malformed patterns", "[ignore_rules]") {
  auto error_of = [](const std::string& text) -> std::string {
    try {
      IgnoreRules::parse(text, "ctx/.dockerignore");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  using Catch::Matchers::Contains;
  using Catch::Matchers::StartsWith;
  CHECK_THAT(error_of("a\n\n# c\n[abc\n"), StartsWith("ctx/.dockerignore:4: bad pattern \"[abc\""));
  CHECK_THAT(error_of("[abc"), Contains("unterminated"));
  CHECK_THAT(error_of("ok\nfoo\\"), StartsWith("ctx/.dockerignore:2: bad pattern"));
  CHECK_THAT(error_of("[]a]"), StartsWith("ctx/.dockerignore:1: bad pattern"));
  CHECK_THAT(error_of("[a-]"), StartsWith("ctx/.dockerignore:1: bad pattern"));
  CHECK_THAT(error_of("[-a]"), StartsWith("ctx/.dockerignore:1: bad pattern"));
  CHECK_THAT(error_of("[z-a]"), Contains("range"));
  CHECK_THAT(error_of("x\n!\n"), StartsWith("ctx/.dockerignore:2: bad pattern \"!\""));
  CHECK_THAT(error_of("!  \n"), StartsWith("ctx/.dockerignore:1: bad pattern"));
  // Escapes Docker's regexp reads as something else than the character
  // ("\\a" is a bell, "\\d" a digit, "\\x41" hex) or refuses when matching.
  CHECK_THAT(error_of("\\a"), Contains("only punctuation"));
  CHECK_THAT(error_of("x\\d*"), Contains("only punctuation"));
  CHECK_THAT(error_of("[\\n]"), Contains("only punctuation"));
  // Wildcards inside a class turn into a different regexp in Docker.
  CHECK_THAT(error_of("[a*]"), Contains("inside a character class"));
  CHECK_THAT(error_of("[?]"), Contains("inside a character class"));
  CHECK_THAT(error_of("[[:alpha:]]"), Contains("inside a character class"));
  // Well-formed oddities are accepted.
  CHECK(error_of("]\n[!]\n[\\]]\n**/**\n/\n.\n[\\*]\n\\ x\n") == "");
}

TEST_CASE("ignore rules: load", "[ignore_rules]") {
  dockless::test::TempDir dir;
  CHECK(IgnoreRules::load(dir / "missing").empty());
  dockless::test::write_text(dir / ".dockerignore", "*.pyc\n!keep.pyc\n[oops\n");
  try {
    IgnoreRules::load(dir / ".dockerignore");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Matchers::StartsWith((dir / ".dockerignore").string() + ":3: bad pattern"));
  }
  dockless::test::write_text(dir / ".dockerignore", "*.pyc\n!keep.pyc\n");
  auto rules = IgnoreRules::load(dir / ".dockerignore");
  CHECK(rules.excluded("a.pyc", false));
  CHECK_FALSE(rules.excluded("keep.pyc", false));
}

TEST_CASE("ignore rules: may_reinclude_below", "[ignore_rules]") {
  SECTION("without '!' patterns an excluded directory is never entered") {
    auto rules = rules_of({"foo", "**/__pycache__"});
    CHECK_FALSE(rules.may_reinclude_below("foo"));
    CHECK_FALSE(rules.may_reinclude_below("pkg/__pycache__"));
  }
  SECTION("plain '!' paths: only their own ancestors are entered") {
    auto rules = rules_of({"foo", "!foo/sub/keep.txt", "bar", "!bar/x/**"});
    CHECK(rules.may_reinclude_below("foo"));
    CHECK(rules.may_reinclude_below("foo/sub"));
    CHECK_FALSE(rules.may_reinclude_below("foo/other"));
    CHECK(rules.may_reinclude_below("bar"));
    CHECK(rules.may_reinclude_below("bar/x"));
    CHECK(rules.may_reinclude_below("bar/x/"));
    CHECK_FALSE(rules.may_reinclude_below("bar/y"));
    CHECK_FALSE(rules.may_reinclude_below("fo"));
  }
  SECTION("a prefix of a name is not its parent") {
    auto rules = rules_of({"a*", "!ab"});
    CHECK_FALSE(rules.may_reinclude_below("a"));
    CHECK(rules.may_reinclude_below("ab"));
  }
  SECTION("a wildcard in a '!' pattern means every directory must be entered") {
    auto rules = rules_of({"**", "!*/keep"});
    CHECK(rules.may_reinclude_below("anything"));
    CHECK(rules.may_reinclude_below("deep/down"));
    CHECK(rules_of({"x", "!x/[ab]"}).may_reinclude_below("y"));
    // ...but a trailing "/*" or "/**" alone is not a wildcard for this test.
    CHECK_FALSE(rules_of({"x", "y", "!x/*"}).may_reinclude_below("y"));
  }
}

TEST_CASE("ignore rules: a walk that prunes with may_reinclude_below", "[ignore_rules]") {
  // The tree, parents before children (as a sorted walk visits them).
  const std::vector<std::pair<std::string, bool>> tree = {
      {".git", true},         {".git/HEAD", false},       {"README.md", false},
      {"build", true},        {"build/out.o", false},     {"docs", true},
      {"docs/guide.md", false}, {"docs/img", true},       {"docs/img/a.png", false},
      {"src", true},          {"src/__pycache__", true},  {"src/__pycache__/m.pyc", false},
      {"src/m.py", false},    {"src/m.pyc", false},       {"vendor", true},
      {"vendor/keep", true},  {"vendor/keep/lib.py", false}, {"vendor/other.py", false},
  };
  auto rules = rules_of({".git", "build/", "**/*.pyc", "**/__pycache__", "docs/**/*.png", "vendor",
                         "!vendor/keep"});
  std::set<std::string> kept;
  std::vector<std::string> pruned;  // excluded directories not entered
  auto below = [](const std::string& path, const std::string& dir) {
    return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
  };
  for (const auto& [path, is_dir] : tree) {
    bool skip = false;
    for (const auto& p : pruned) skip = skip || below(path, p);
    if (skip) continue;
    if (rules.excluded(path, is_dir)) {
      if (is_dir && !rules.may_reinclude_below(path)) pruned.push_back(path);
      continue;
    }
    kept.insert(path);
  }
  const std::set<std::string> expected = {"README.md", "docs", "docs/guide.md", "docs/img", "src",
                                          "src/m.py", "vendor/keep", "vendor/keep/lib.py"};
  CHECK(kept == expected);
  CHECK(pruned == std::vector<std::string>{".git", "build", "src/__pycache__"});
}
