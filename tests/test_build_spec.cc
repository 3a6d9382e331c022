// The build spec: where it is read from, every key's value, the messages for
// bad specs (file, line and key), and --set overrides.
#include "src/build/build_spec.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "base/error.h"
#include "tests/test_support.h"

using dockless::BuildSpec;
using dockless::Error;
using dockless::load_build_spec;
using dockless::UsageError;
using dockless::test::TempDir;
using dockless::test::write_text;
using Catch::Matchers::Contains;
using Strings = std::vector<std::string>;

namespace {

// The issue's example, verbatim apart from comments.
const char* const kExample = R"([image]
base = "localhost:5000/debian-py:12"   # registry reference or oci:DIR[:TAG]
platform = "linux/amd64"
workdir = "/opt/app"
env = { APP_IN_CONTAINER = "1" }
entrypoint = []
cmd = ["bash"]
user = "0:0"
labels = { "org.opencontainers.image.title" = "app" }

[uv]
python = "/usr/bin/python3"
cache-dir = "/root/.cache/uv"
link-mode = "symlink"
ship-cache = true
uv-path = "/usr/local/bin/uv"
compile-bytecode = false

[cache]
extras = ["vllm", "sglang", "mcore"]

[source]
path = "."
dest = "/opt/app"
ignore-file = ".dockerignore"

[venv.main]
path = "/opt/app_venv"
groups = "all"
extras = []

[venv."app.workers.VllmWorker"]
path = "/opt/ray_venvs/app.workers.VllmWorker"
extras = ["vllm"]
tags = ["vllm"]
)";

const char* const kMinimal = "[image]\nbase = \"debian:12\"\n";

BuildSpec load(const TempDir& dir, const Strings& overrides = {}) {
  return load_build_spec(dir.path(), {}, overrides);
}

// The message of the Error that f throws ("" and a failed check if none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL_CHECK("no error thrown");
  return "";
}

// Writes dockless.toml with `body` and returns the message of loading it.
std::string spec_error(const std::string& body, const Strings& overrides = {}) {
  TempDir dir;
  write_text(dir / "dockless.toml", body);
  return error_of([&] { load(dir, overrides); });
}

Strings venv_names(const BuildSpec& spec) {
  Strings names;
  for (const auto& v : spec.venvs) names.push_back(v.name);
  return names;
}

}  // namespace

TEST_CASE("the issue's example spec parses into exactly its values", "[build_spec]") {
  TempDir dir;
  write_text(dir / "dockless.toml", kExample);
  const BuildSpec spec = load(dir);

  CHECK(spec.file == (dir / "dockless.toml"));
  CHECK(spec.file.is_absolute());

  CHECK(spec.image.base == "localhost:5000/debian-py:12");
  CHECK(spec.image.platform == "linux/amd64");
  CHECK(spec.image.workdir == "/opt/app");
  CHECK(spec.image.env == std::vector<std::pair<std::string, std::string>>{{"APP_IN_CONTAINER", "1"}});
  REQUIRE(spec.image.entrypoint.has_value());
  CHECK(spec.image.entrypoint->empty());
  CHECK(spec.image.cmd == std::optional<Strings>(Strings{"bash"}));
  CHECK(spec.image.user == "0:0");
  CHECK(spec.image.labels == std::map<std::string, std::string>{{"org.opencontainers.image.title", "app"}});

  CHECK(spec.uv.python == "/usr/bin/python3");
  CHECK(spec.uv.cache_dir == "/root/.cache/uv");
  CHECK(spec.uv.link_mode == "symlink");
  CHECK(spec.uv.ship_cache);
  CHECK(spec.uv.uv_path == "/usr/local/bin/uv");
  CHECK_FALSE(spec.uv.compile_bytecode);

  CHECK(spec.cache.extras == Strings{"vllm", "sglang", "mcore"});
  CHECK(spec.cache.groups.empty());

  CHECK(spec.source.path == ".");
  CHECK(spec.source.git.empty());
  CHECK(spec.source.ref.empty());
  CHECK_FALSE(spec.source.keep_git_dir);
  CHECK(spec.source.dest == "/opt/app");
  CHECK(spec.source.ignore_file == ".dockerignore");

  // main is first in the file but last in the spec.
  REQUIRE(venv_names(spec) == Strings{"app.workers.VllmWorker", "main"});
  const auto& worker = spec.venvs[0];
  CHECK(worker.path == "/opt/ray_venvs/app.workers.VllmWorker");
  CHECK(worker.extras == Strings{"vllm"});
  CHECK(worker.groups.empty());
  CHECK_FALSE(worker.all_groups);
  CHECK_FALSE(worker.no_default_groups);
  CHECK(worker.tags == Strings{"vllm"});
  CHECK_FALSE(worker.is_main());
  const auto& main = spec.venvs[1];
  CHECK(main.is_main());
  CHECK(main.path == "/opt/app_venv");
  CHECK(main.all_groups);
  CHECK(main.groups.empty());
  CHECK(main.extras.empty());
  CHECK(main.tags.empty());
}

TEST_CASE("a minimal spec takes the documented defaults", "[build_spec]") {
  TempDir dir;
  write_text(dir / "dockless.toml", kMinimal);
  const BuildSpec spec = load(dir);
  const BuildSpec defaults;
  CHECK(spec.image.base == "debian:12");
  CHECK(spec.image.platform.empty());
  CHECK(spec.image.workdir.empty());
  CHECK(spec.image.env.empty());
  CHECK_FALSE(spec.image.entrypoint.has_value());
  CHECK_FALSE(spec.image.cmd.has_value());
  CHECK(spec.uv.python == defaults.uv.python);
  CHECK(spec.uv.cache_dir == defaults.uv.cache_dir);
  CHECK(spec.uv.link_mode == "symlink");
  CHECK(spec.uv.ship_cache);
  CHECK(spec.uv.uv_path == defaults.uv.uv_path);
  CHECK(spec.source.path == ".");
  CHECK(spec.source.dest == defaults.source.dest);
  CHECK(spec.venvs.empty());  // an image of only source and cache is valid
}

TEST_CASE("pyproject.toml's [tool.dockless] is read with the same keys", "[build_spec]") {
  TempDir dir;
  write_text(dir / "pyproject.toml", R"([project]
name = "app"
version = "0.1.0"

[tool.dockless.image]
base = "debian:12"
cmd = ["python"]

[tool.dockless.uv]
ship-cache = false
link-mode = "copy"

[tool.dockless.venv.main]
path = "/opt/venv"
groups = ["dev", "test"]
no-default-groups = true

[tool.other]
anything = 1
)");
  const BuildSpec spec = load(dir);
  CHECK(spec.file == dir / "pyproject.toml");
  CHECK(spec.image.base == "debian:12");
  CHECK(spec.image.cmd == std::optional<Strings>(Strings{"python"}));
  CHECK_FALSE(spec.uv.ship_cache);
  CHECK(spec.uv.link_mode == "copy");
  REQUIRE(spec.venvs.size() == 1);
  CHECK(spec.venvs[0].groups == Strings{"dev", "test"});
  CHECK_FALSE(spec.venvs[0].all_groups);
  CHECK(spec.venvs[0].no_default_groups);
}

TEST_CASE("dockless.toml wins over pyproject.toml", "[build_spec]") {
  TempDir dir;
  write_text(dir / "dockless.toml", "[image]\nbase = \"from-dockless\"\n");
  write_text(dir / "pyproject.toml", "[tool.dockless.image]\nbase = \"from-pyproject\"\n");
  const BuildSpec spec = load(dir);
  CHECK(spec.image.base == "from-dockless");
  CHECK(spec.file == dir / "dockless.toml");
}

TEST_CASE("spec_file may name either form, anywhere", "[build_spec]") {
  TempDir dir;
  write_text(dir / "dockless.toml", "[image]\nbase = \"ignored\"\n");
  write_text(dir / "specs/ci.toml", "[image]\nbase = \"ci-base\"\n");
  write_text(dir / "specs/pyproject.toml", "[tool.dockless.image]\nbase = \"py-base\"\n");
  write_text(dir / "specs/other.toml", "[project]\nname = \"x\"\n[tool.dockless.image]\nbase = \"other-base\"\n");

  BuildSpec spec = load_build_spec(dir.path(), dir / "specs/ci.toml", {});
  CHECK(spec.image.base == "ci-base");
  CHECK(spec.file == dir / "specs/ci.toml");

  spec = load_build_spec(dir.path(), dir / "specs/pyproject.toml", {});
  CHECK(spec.image.base == "py-base");
  CHECK(spec.file == dir / "specs/pyproject.toml");

  // Any file with [tool.dockless] is read in pyproject form.
  spec = load_build_spec(dir.path(), dir / "specs/other.toml", {});
  CHECK(spec.image.base == "other-base");

  // A discovered dockless.toml is never read in pyproject form.
  write_text(dir / "dockless.toml", "[image]\nbase = \"b\"\n[tool.dockless.image]\nbase = \"x\"\n");
  CHECK_THAT(error_of([&] { load(dir); }), Contains(":3:2: unknown key \"tool\""));

  CHECK_THAT(error_of([&] { load_build_spec(dir.path(), dir / "specs/missing.toml", {}); }),
             Contains("cannot read") && Contains("missing.toml"));
}

TEST_CASE("no spec at all is an error naming the directory", "[build_spec]") {
  TempDir dir;
  CHECK(error_of([&] { load(dir); }) ==
        "no dockless.toml or [tool.dockless] in pyproject.toml in " + dir.path().string());
  // A pyproject.toml without [tool.dockless] is no spec either.
  write_text(dir / "pyproject.toml", "[project]\nname = \"app\"\n");
  CHECK(error_of([&] { load(dir); }) ==
        "no dockless.toml or [tool.dockless] in pyproject.toml in " + dir.path().string());
  CHECK_THAT(error_of([&] { load_build_spec(dir.path(), dir / "pyproject.toml", {}); }),
             Contains("pyproject.toml: no [tool.dockless] table"));
}

TEST_CASE("TOML syntax errors give file, line and column", "[build_spec]") {
  TempDir dir;
  write_text(dir / "dockless.toml", "[image]\nbase = \"x\"\ncmd = [\"a\",\n");
  const auto msg = error_of([&] { load(dir); });
  CHECK_THAT(msg, Contains((dir / "dockless.toml").string() + ":3:"));
  CHECK_THAT(msg, Contains("array"));
}

TEST_CASE("unknown keys name the table and suggest the close one", "[build_spec]") {
  TempDir dir;
  write_text(dir / "dockless.toml", std::string(kMinimal) + "\n[venv.main]\npath = \"/opt/venv\"\nextra = [\"a\"]\n");
  CHECK(error_of([&] { load(dir); }) ==
        (dir / "dockless.toml").string() +
            ":6:1: [venv.main]: unknown key \"extra\" (did you mean \"extras\"? valid keys: path, extras, "
            "groups, no-default-groups, tags, install-project)");

  // snake_case for kebab-case, and no suggestion when nothing is close.
  CHECK_THAT(spec_error(std::string(kMinimal) + "[uv]\ncache_dir = \"/c\"\n"),
             Contains(":4:1: [uv]: unknown key \"cache_dir\" (did you mean \"cache-dir\"? valid keys: python,"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[uv]\nfrobnicate = 1\n"),
             Contains(":4:1: [uv]: unknown key \"frobnicate\" (valid keys: python, python-install-dir, check-lock, cache-dir,"));
  // Top-level tables too.
  CHECK_THAT(spec_error(std::string(kMinimal) + "[imgae]\n"),
             Contains(":3:2: unknown key \"imgae\" (did you mean \"image\"? valid keys: image, uv, cache, source, venv, args, step)"));
}

TEST_CASE("wrong types say what was expected and what was found", "[build_spec]") {
  CHECK_THAT(spec_error(std::string(kMinimal) + "[uv]\nship-cache = \"yes\"\n"),
             Contains(":4:14: [uv] ship-cache: expected true or false, got a string \"yes\""));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[cache]\nextras = \"vllm\"\n"),
             Contains(":4:10: [cache] extras: expected an array of strings, got a string"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[cache]\nextras = [\"a\", 2]\n"),
             Contains(":4:16: [cache] extras: item 2: expected a string, got an integer"));
  CHECK_THAT(spec_error("[image]\nbase = \"b\"\nenv = { A = 1 }\n"),
             Contains(":3:13: [image] env.A: expected a string, got an integer"));
  CHECK_THAT(spec_error("image = \"debian\"\n"), Contains(":1:9: image: expected a table, got a string"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[uv]\npython = 3.12\n"),
             Contains(":4:10: [uv] python: expected a string, got a float (quote it)"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv]\nmain = \"/v\"\n"),
             Contains(":4:8: [venv] main: expected a table, got a string"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv.main]\npath = \"/v\"\ngroups = \"dev\"\n"),
             Contains(":5:10: [venv.main] groups: expected an array of strings or \"all\", got a string \"dev\""));
}

TEST_CASE("image.base is required", "[build_spec]") {
  CHECK_THAT(spec_error("[image]\nuser = \"0\"\n"), Contains("dockless.toml:1:2: [image]: missing required key \"base\""));
  CHECK_THAT(spec_error("[image]\nbase = \" \"\n"), Contains("dockless.toml:2:8: [image] base: must not be empty"));
  CHECK_THAT(spec_error("[uv]\npython = \"3.12\"\n"), Contains("dockless.toml: missing required table [image]"));

  TempDir dir;
  write_text(dir / "pyproject.toml", "[tool.dockless.image]\nuser = \"0\"\n");
  CHECK_THAT(error_of([&] { load(dir); }),
             Contains("pyproject.toml:1:16: [tool.dockless.image]: missing required key \"base\""));
}

TEST_CASE("image paths must be absolute and normalised", "[build_spec]") {
  CHECK_THAT(spec_error(std::string(kMinimal) + "[uv]\ncache-dir = \"root/.cache\"\n"),
             Contains(":4:13: [uv] cache-dir: \"root/.cache\" is not an absolute path"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[source]\ndest = \"/opt/../app\"\n"),
             Contains(":4:8: [source] dest: \"/opt/../app\" is not normalized"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv.main]\npath = \"/opt/venv/\"\n"),
             Contains(":4:8: [venv.main] path: \"/opt/venv/\" is not normalized"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv.main]\npath = \"/opt//venv\"\n"),
             Contains("[venv.main] path: \"/opt//venv\" is not normalized"));
  CHECK_THAT(spec_error("[image]\nbase = \"b\"\nworkdir = \"app\"\n"),
             Contains(":3:11: [image] workdir: \"app\" is not an absolute path"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv.main]\nextras = []\n"),
             Contains(":3:7: [venv.main]: missing required key \"path\""));
  // uv-path = "" leaves uv out and is not a path error.
  TempDir dir;
  write_text(dir / "dockless.toml", std::string(kMinimal) + "[uv]\nuv-path = \"\"\n");
  CHECK(load(dir).uv.uv_path.empty());
}

TEST_CASE("venv, cache and source paths never overlap", "[build_spec]") {
  const std::string two_venvs = std::string(kMinimal) +
                                "[venv.a]\npath = \"/opt/venvs\"\n"
                                "[venv.b]\npath = \"/opt/venvs/b\"\n";
  CHECK_THAT(spec_error(two_venvs),
             Contains(":6:8: [venv.b] path \"/opt/venvs/b\" is inside [venv.a] path \"/opt/venvs\""));

  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv.a]\npath = \"/opt/v\"\n[venv.b]\npath = \"/opt/v\"\n"),
             Contains(":6:8: [venv.b] path and [venv.a] path are the same path \"/opt/v\""));

  // Against defaults: the location is the key that was written.
  // A venv inside the source dest is uv's Docker layout (/app/.venv): allowed.
  // The dest itself, or a parent of it, is still refused.
  {
    TempDir dir;
    write_text(dir / "dockless.toml", std::string(kMinimal) + "[venv.main]\npath = \"/opt/app/.venv\"\n");
    CHECK(load(dir).venvs.at(0).path == "/opt/app/.venv");
  }
  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv.main]\npath = \"/opt/app\"\n"),
             Contains(":4:8: [venv.main] path and [source] dest are the same path \"/opt/app\""));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv.main]\npath = \"/opt\"\n"),
             Contains("[source] dest \"/opt/app\" is inside [venv.main] path \"/opt\""));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[source]\ndest = \"/app\"\n[venv.a]\npath = \"/app/.venv\"\n"
                        "[venv.b]\npath = \"/app/.venv/x\"\n"),
             Contains("[venv.b] path \"/app/.venv/x\" is inside [venv.a] path \"/app/.venv\""));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv.main]\npath = \"/root\"\n"),
             Contains(":4:8: [uv] cache-dir \"/root/.cache/uv\" is inside [venv.main] path \"/root\""));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[uv]\ncache-dir = \"/opt/app/cache\"\n"),
             Contains(":4:13: [uv] cache-dir \"/opt/app/cache\" is inside [source] dest \"/opt/app\""));
}

TEST_CASE("enumerations, names and source rules", "[build_spec]") {
  CHECK_THAT(spec_error(std::string(kMinimal) + "[uv]\nlink-mode = \"hardlink\"\n"),
             Contains(":4:13: [uv] link-mode: expected \"symlink\" or \"copy\", got \"hardlink\""));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[source]\nref = \"v1\"\n"),
             Contains(":4:7: [source] ref: needs git"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[source]\npath = \".\"\ngit = \"https://x/y.git\"\n"),
             Contains(":4:8: [source]: path and git are exclusive"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv.\"bad name\"]\npath = \"/v\"\n"),
             Contains(":3:7: [venv] \"bad name\": invalid venv name"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv.\"a/b\"]\npath = \"/v\"\n"),
             Contains(":3:7: [venv] \"a/b\": invalid venv name"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv.w]\npath = \"/v\"\ntags = [\"ok\", \"no tag\"]\n"),
             Contains(":5:15: [venv.w] tags: invalid name \"no tag\""));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[venv.w]\npath = \"/v\"\nextras = [\"vllm[x]\"]\n"),
             Contains(":5:11: [venv.w] extras: invalid name \"vllm[x]\""));
  CHECK_THAT(spec_error("[image]\nbase = \"b\"\nplatform = \"amd64\"\n"),
             Contains(":3:12: [image] platform: \"amd64\" is not OS/ARCH[/VARIANT]"));
  CHECK_THAT(spec_error(std::string(kMinimal) + "[uv]\npython = \"python 3\"\n"),
             Contains("[uv] python: \"python 3\" is neither an absolute path nor a python version"));
  // Symlinked venvs need the cache in the image.
  CHECK_THAT(spec_error(std::string(kMinimal) + "[uv]\nship-cache = false\n[venv.main]\npath = \"/v\"\n"),
             Contains(":4:14: [uv] ship-cache = false needs link-mode = \"copy\""));

  TempDir dir;
  write_text(dir / "dockless.toml", std::string(kMinimal) +
                                        "[source]\ngit = \"file:///srv/app.git\"\nref = \"v1.0\"\n"
                                        "keep-git-dir = true\n[uv]\npython = \"3.12\"\ncompile-bytecode = true\n");
  const BuildSpec spec = load(dir);
  CHECK(spec.source.git == "file:///srv/app.git");
  CHECK(spec.source.ref == "v1.0");
  CHECK(spec.source.keep_git_dir);
  CHECK(spec.uv.python == "3.12");
  CHECK(spec.uv.compile_bytecode);
}

TEST_CASE("env keeps the file's order; venvs keep it too, main last", "[build_spec]") {
  TempDir dir;
  write_text(dir / "dockless.toml", R"([image]
base = "b"
env = { ZED = "1", ALPHA = "2", MID = "3" }
[venv.zz]
path = "/v/zz"
[venv.main]
path = "/v/main"
[venv.aa]
path = "/v/aa"
[venv."m.k"]
path = "/v/mk"
)");
  const BuildSpec spec = load(dir);
  CHECK(spec.image.env ==
        std::vector<std::pair<std::string, std::string>>{{"ZED", "1"}, {"ALPHA", "2"}, {"MID", "3"}});
  CHECK(venv_names(spec) == Strings{"zz", "aa", "m.k", "main"});
  CHECK(spec.venvs.back().is_main());

  // Sub-table form of env keeps its order too.
  write_text(dir / "dockless.toml", "[image]\nbase = \"b\"\n[image.env]\nB = \"1\"\nA = \"2\"\n");
  CHECK(load(dir).image.env == std::vector<std::pair<std::string, std::string>>{{"B", "1"}, {"A", "2"}});
}

TEST_CASE("entrypoint and cmd as a string run through the shell", "[build_spec]") {
  TempDir dir;
  write_text(dir / "dockless.toml", "[image]\nbase = \"b\"\nentrypoint = \"exec app --serve\"\ncmd = []\n");
  const BuildSpec spec = load(dir);
  CHECK(spec.image.entrypoint == std::optional<Strings>(Strings{"/bin/sh", "-c", "exec app --serve"}));
  REQUIRE(spec.image.cmd.has_value());
  CHECK(spec.image.cmd->empty());
}

TEST_CASE("--set overrides strings, bools and arrays", "[build_spec]") {
  TempDir dir;
  write_text(dir / "dockless.toml", kExample);
  const BuildSpec spec = load(dir, {"image.base=localhost:5000/other:1",  // not TOML: a plain string
                                    "image.user=\"1000:1000\"",           // a TOML string
                                    "uv.ship-cache=false", "uv.link-mode=copy",
                                    "venv.main.extras=[\"a\", \"b\"]", "cache.extras=[]",
                                    "uv.python=3.12",  // a float in TOML, a string here
                                    "uv.uv-path=",     // empty: leave uv out
                                    "image.cmd=python -m app"});
  CHECK(spec.image.base == "localhost:5000/other:1");
  CHECK(spec.image.user == "1000:1000");
  CHECK_FALSE(spec.uv.ship_cache);
  CHECK(spec.uv.link_mode == "copy");
  CHECK(spec.uv.python == "3.12");
  CHECK(spec.uv.uv_path.empty());
  CHECK(spec.cache.extras.empty());
  CHECK(spec.image.cmd == std::optional<Strings>(Strings{"/bin/sh", "-c", "python -m app"}));
  REQUIRE(spec.venvs.back().is_main());
  CHECK(spec.venvs.back().extras == Strings{"a", "b"});
  // Untouched keys keep the file's values.
  CHECK(spec.image.platform == "linux/amd64");
}

TEST_CASE("--set adds venvs and env vars, with quoted names", "[build_spec]") {
  TempDir dir;
  write_text(dir / "dockless.toml", kExample);
  const BuildSpec spec = load(dir, {"venv.extra.path=/opt/x", "venv.\"app.workers.Sglang\".path=/opt/ray_venvs/s",
                                    "venv.\"app.workers.Sglang\".tags=[\"sglang\"]",
                                    "venv.\"app.workers.VllmWorker\".extras=[\"vllm\", \"mcore\"]",
                                    "image.env.ZZ=1", "image.env.AA=2", "image.labels.version=1.0"});
  // File venvs first, then the new ones in command-line order, main last.
  REQUIRE(venv_names(spec) == Strings{"app.workers.VllmWorker", "extra", "app.workers.Sglang", "main"});
  CHECK(spec.venvs[0].extras == Strings{"vllm", "mcore"});
  CHECK(spec.venvs[1].path == "/opt/x");
  CHECK(spec.venvs[2].path == "/opt/ray_venvs/s");
  CHECK(spec.venvs[2].tags == Strings{"sglang"});
  CHECK(spec.image.env ==
        std::vector<std::pair<std::string, std::string>>{{"APP_IN_CONTAINER", "1"}, {"ZZ", "1"}, {"AA", "2"}});
  CHECK(spec.image.labels.at("version") == "1.0");

  // A whole table given inline keeps its order, and later keys follow it.
  const BuildSpec env = load(dir, {"image.env={B=\"1\", A=\"2\"}", "image.env.C=3"});
  CHECK(env.image.env == std::vector<std::pair<std::string, std::string>>{{"B", "1"}, {"A", "2"}, {"C", "3"}});
}

TEST_CASE("--set works on pyproject.toml and on a file without the table", "[build_spec]") {
  TempDir dir;
  write_text(dir / "pyproject.toml", "[tool.dockless.image]\nbase = \"b\"\n");
  const BuildSpec spec = load(dir, {"uv.compile-bytecode=true", "source.dest=/srv/app"});
  CHECK(spec.uv.compile_bytecode);
  CHECK(spec.source.dest == "/srv/app");

  // The required base may come from the command line alone.
  write_text(dir / "dockless.toml", "");
  CHECK(load(dir, {"image.base=debian:12"}).image.base == "debian:12");
}

TEST_CASE("--set errors name the override", "[build_spec]") {
  TempDir dir;
  write_text(dir / "dockless.toml", kExample);
  CHECK(error_of([&] { load(dir, {"venv.main.extra=[\"a\"]"}); }) ==
        "--set venv.main.extra: [venv.main]: unknown key \"extra\" (did you mean \"extras\"? valid keys: path, "
        "extras, groups, no-default-groups, tags, install-project)");
  CHECK(error_of([&] { load(dir, {"uv.ship-cache=maybe"}); }) ==
        "--set uv.ship-cache: [uv] ship-cache: expected true or false, got a string \"maybe\"");
  CHECK_THAT(error_of([&] { load(dir, {"venv.extra.path=/opt/app_venv"}); }),
             Contains("--set venv.extra.path: [venv.extra] path and [venv.main] path are the same path") ||
                 Contains("[venv.main] path and [venv.extra] path are the same path"));
  CHECK_THAT(error_of([&] { load(dir, {"venv.\"a b\".path=/x"}); }),
             Contains("--set venv.\"a b\".path: [venv] \"a b\": invalid venv name"));
  CHECK(error_of([&] { load(dir, {"image.base.x=1"}); }) == "--set image.base.x: image.base is a string, not a table");

  // Malformed overrides are usage errors, before the file is read.
  TempDir empty;
  CHECK_THROWS_AS(load(empty, {"image.base"}), UsageError);
  CHECK_THROWS_AS(load(empty, {"=x"}), UsageError);
  CHECK_THROWS_AS(load(empty, {"venv..path=/x"}), UsageError);
  CHECK_THROWS_AS(load(empty, {"venv.\"unterminated.path=/x"}), UsageError);
  CHECK_THROWS_AS(load(empty, {"venv.a b.path=/x"}), UsageError);
  CHECK_THROWS_WITH(load(empty, {"image.base"}), "--set image.base: expected KEY=VALUE");
}

TEST_CASE("image.platforms: a list of platforms, exclusive with image.platform", "[build_spec]") {
  TempDir dir;
  write_text(dir / "dockless.toml",
             "[image]\nbase = \"b\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n"
             "[uv]\npython-platform = \"aarch64-manylinux_2_31\"\n");
  BuildSpec spec = load(dir);
  CHECK(spec.image.platforms == Strings{"linux/amd64", "linux/arm64"});
  CHECK(spec.image.platform.empty());
  CHECK(spec.uv.python_platform == "aarch64-manylinux_2_31");
  CHECK_THAT(spec_error("[image]\nbase = \"b\"\nplatform = \"linux/amd64\"\nplatforms = [\"linux/arm64\"]\n"),
             Contains(":4:13: [image] platforms: give either [image] platform or [image] platforms, not both"));
  CHECK_THAT(spec_error("[image]\nbase = \"b\"\nplatforms = [\"linux/arm64\", \"arm64\"]\n"),
             Contains("[image] platforms: \"arm64\" is not OS/ARCH[/VARIANT]"));
  CHECK_THAT(spec_error("[image]\nbase = \"b\"\nplatforms = [\"linux/arm64\", \"linux/arm64\"]\n"),
             Contains("[image] platforms: \"linux/arm64\" is listed twice"));
  CHECK_THAT(spec_error("[image]\nbase = \"b\"\nplatforms = []\n"), Contains("[image] platforms: must not be empty"));
}
