// Build steps in the spec: [[step]] and its mounts, [args] with --arg and
// ${NAME}, uv-managed Python, install-project, and the checks of --context
// and --secret (step_inputs.h). Tagged [build_spec] too: it is the spec.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "base/error.h"
#include "src/build/build_args.h"
#include "src/build/build_spec.h"
#include "src/build/step_inputs.h"
#include "tests/test_support.h"

using dockless::BuildSpec;
using dockless::Error;
using dockless::StepInputs;
using dockless::StepMount;
using dockless::StepSpec;
using dockless::UsageError;
using dockless::test::TempDir;
using dockless::test::write_text;
using Catch::Matchers::Contains;
using Args = std::vector<std::pair<std::string, std::string>>;
using Strings = std::vector<std::string>;

namespace {

const std::string kBase = "[image]\nbase = \"debian:12\"\n";

// The issue's spec syntax, verbatim apart from comments (line 4 is [[step]]).
const std::string kIssueSteps = R"([args]
CUSTOM_SETUP_FNAME = "install_tools.sh"

[[step]]
name = "system packages"
at = "base"
run = """
apt-get update
apt-get install -y --no-install-recommends jq
"""
env = { DEBIAN_FRONTEND = "noninteractive" }
mounts = [
  { type = "cache", id = "apt", target = "/var/cache/apt", sharing = "locked" },
  { type = "bind", context = "custom-setup", source = ".", target = "/tmp/custom-setup" },
  { type = "bind", source = "docker/x.sh", target = "/tmp/x.sh" },
  { type = "secret", id = "token", target = "/run/secrets/token" },
  { type = "tmpfs", target = "/scratch" },
]
)";

BuildSpec load_text(const std::string& body, const Args& args = {}, const Strings& sets = {}) {
  TempDir dir;
  write_text(dir / "dockless.toml", body);
  return dockless::load_build_spec(dir.path(), {}, sets, args);
}

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

std::string spec_error(const std::string& body, const Args& args = {}) {
  return error_of([&] { load_text(body, args); });
}

std::string step(const std::string& name, const std::string& rest) {
  return "[[step]]\nname = \"" + name + "\"\n" + rest;
}

}  // namespace

TEST_CASE("the issue's step syntax parses into exactly its values", "[build_spec][step_spec]") {
  const BuildSpec spec = load_text(kBase + "\n" + kIssueSteps);
  CHECK(spec.args == std::map<std::string, std::string>{{"CUSTOM_SETUP_FNAME", "install_tools.sh"}});
  REQUIRE(spec.steps.size() == 1);
  const StepSpec& s = spec.steps[0];
  CHECK(s.name == "system packages");
  CHECK(s.at == dockless::StepStage::kBase);
  CHECK(s.run == "apt-get update\napt-get install -y --no-install-recommends jq\n");
  CHECK(s.shell == Strings{"bash", "-eu", "-o", "pipefail", "-c"});
  CHECK(s.env == Args{{"DEBIAN_FRONTEND", "noninteractive"}});
  CHECK(s.network == dockless::StepNetwork::kHost);
  CHECK(s.workdir.empty());
  CHECK(s.user.empty());
  CHECK(s.args.empty());  // the run uses no ${NAME}: no arg is part of its key
  CHECK_FALSE(s.skipped);
  REQUIRE(s.mounts.size() == 5);

  const StepMount& cache = s.mounts[0];
  CHECK(cache.type == StepMount::Type::kCache);
  CHECK(cache.id == "apt");
  CHECK(cache.target == "/var/cache/apt");
  CHECK(cache.locked);
  CHECK_FALSE(cache.mode.has_value());
  CHECK_THAT(cache.origin, Contains("dockless.toml:16:3: [[step]] \"system packages\" mounts[1]"));

  const StepMount& ctx = s.mounts[1];
  CHECK(ctx.type == StepMount::Type::kBind);
  CHECK(ctx.context == "custom-setup");
  CHECK(ctx.source == ".");
  CHECK(ctx.target == "/tmp/custom-setup");
  CHECK(ctx.readonly);

  const StepMount& project = s.mounts[2];
  CHECK(project.context.empty());
  CHECK(project.source == "docker/x.sh");

  const StepMount& secret = s.mounts[3];
  CHECK(secret.type == StepMount::Type::kSecret);
  CHECK(secret.id == "token");
  CHECK(secret.target == "/run/secrets/token");
  CHECK(secret.required);

  CHECK(s.mounts[4].type == StepMount::Type::kTmpfs);
  CHECK(s.mounts[4].target == "/scratch");
  CHECK_FALSE(s.mounts[4].size.has_value());
  CHECK(spec.unused_args.empty());
}

TEST_CASE("step keys: shell, workdir, user, network, at and mount options", "[build_spec][step_spec]") {
  const BuildSpec spec = load_text(kBase + step("one", R"(run = "true"
at = "venvs"
shell = ["sh", "-c"]
workdir = "/work"
user = "1000:1000"
network = "none"
mounts = [
  { type = "cache", target = "/root/.ccache", mode = 0o700, uid = 1000, gid = 1000 },
  { type = "cache", target = "/c2", mode = "0755" },
  { type = "bind", source = "data", target = "/data", readonly = false },
  { type = "secret", id = "npm", required = false },
  { type = "tmpfs", target = "/t1", size = "64M" },
  { type = "tmpfs", target = "/t2", size = 4096 },
]
)") + step("two", "run = \"true\"\nat = \"source\"\n"));
  REQUIRE(spec.steps.size() == 2);
  const StepSpec& s = spec.steps[0];
  CHECK(s.at == dockless::StepStage::kVenvs);
  CHECK(spec.steps[1].at == dockless::StepStage::kSource);
  CHECK(s.shell == Strings{"sh", "-c"});
  CHECK(s.workdir == "/work");
  CHECK(s.user == "1000:1000");
  CHECK(s.network == dockless::StepNetwork::kNone);
  REQUIRE(s.mounts.size() == 6);
  CHECK(s.mounts[0].id == "/root/.ccache");  // id defaults to the target
  CHECK_FALSE(s.mounts[0].locked);           // sharing defaults to shared
  CHECK(s.mounts[0].mode == 0700u);
  CHECK(s.mounts[0].uid == 1000u);
  CHECK(s.mounts[0].gid == 1000u);
  CHECK(s.mounts[1].mode == 0755u);
  CHECK_FALSE(s.mounts[2].readonly);
  CHECK(s.mounts[3].target == "/run/secrets/npm");  // the default target
  CHECK_FALSE(s.mounts[3].required);
  CHECK(s.mounts[4].size == 64u * 1024 * 1024);
  CHECK(s.mounts[5].size == 4096u);
}

TEST_CASE("step errors name the file, line, step and key", "[build_spec][step_spec]") {
  CHECK_THAT(spec_error(kBase + step("a", "rn = \"true\"\n")),
             Contains(":5:1: [[step]] \"a\": unknown key \"rn\" (did you mean \"run\"? valid keys: name, at, run,"));
  CHECK_THAT(spec_error(kBase + "[[step]]\nrun = \"true\"\n"),
             Contains(":3:1: [[step]] 1: missing required key \"name\""));
  CHECK_THAT(spec_error(kBase + step("a", "")), Contains(":3:1: [[step]] \"a\": missing required key \"run\""));
  CHECK_THAT(spec_error(kBase + step("a", "run = \"x\"\n") + step("a", "run = \"y\"\n")),
             Contains(":6:1: [[step]] \"a\": another step has this name"));
  CHECK_THAT(spec_error(kBase + step("a", "run = \"x\"\nat = \"after\"\n")),
             Contains(":6:6: [[step]] \"a\" at: expected \"base\", \"venvs\" or \"source\", got \"after\""));
  CHECK_THAT(spec_error(kBase + step("a", "run = \"x\"\nnetwork = \"bridge\"\n")),
             Contains("[[step]] \"a\" network: expected \"host\" or \"none\", got \"bridge\""));
  CHECK_THAT(spec_error(kBase + step("a", "run = \"x\"\nworkdir = \"work\"\n")),
             Contains("[[step]] \"a\" workdir: \"work\" is not an absolute path"));
  CHECK_THAT(spec_error(kBase + step("a", "run = 1\n")),
             Contains(":5:7: [[step]] \"a\" run: expected a string, got an integer (quote it)"));
  CHECK_THAT(spec_error("step = \"x\"\n" + kBase), Contains(":1:8: step: expected [[step]] tables, got a string"));
}

TEST_CASE("mount errors: unknown type or key, bad paths, repeated targets", "[build_spec][step_spec]") {
  auto mounts = [](const std::string& m) { return kBase + step("s", "run = \"x\"\nmounts = [" + m + "]\n"); };
  CHECK_THAT(spec_error(mounts("{ type = \"volume\", target = \"/x\" }")),
             Contains(":6:20: [[step]] \"s\" mounts[1] type: unknown mount type \"volume\" "
                      "(valid types: bind, cache, secret, tmpfs)"));
  CHECK_THAT(spec_error(mounts("{ type = \"cach\", target = \"/x\" }")),
             Contains("unknown mount type \"cach\" (did you mean \"cache\"?"));
  CHECK_THAT(spec_error(mounts("{ type = \"cache\", target = \"/x\", sharing = \"locked\", shring = \"x\" }")),
             Contains("[[step]] \"s\" mounts[1]: unknown key \"shring\" (did you mean \"sharing\"?"));
  // A key of another mount type is unknown for this one.
  CHECK_THAT(spec_error(mounts("{ type = \"tmpfs\", target = \"/x\", readonly = true }")),
             Contains("mounts[1]: unknown key \"readonly\""));
  CHECK_THAT(spec_error(mounts("{ target = \"/x\" }")),
             Contains("mounts[1]: missing required key \"type\" (bind, cache, secret or tmpfs)"));
  CHECK_THAT(spec_error(mounts("{ type = \"tmpfs\" }")), Contains("mounts[1]: missing required key \"target\""));
  CHECK_THAT(spec_error(mounts("{ type = \"secret\" }")), Contains("mounts[1]: missing required key \"id\""));
  CHECK_THAT(spec_error(mounts("{ type = \"bind\", source = \"../etc\", target = \"/x\" }")),
             Contains("mounts[1] source: \"../etc\" must be a relative path"));
  CHECK_THAT(spec_error(mounts("{ type = \"bind\", source = \"/etc\", target = \"/x\" }")),
             Contains("mounts[1] source: \"/etc\" must be a relative path"));
  CHECK_THAT(spec_error(mounts("{ type = \"tmpfs\", target = \"/x/\" }")),
             Contains("mounts[1] target: \"/x/\" is not normalized"));
  CHECK_THAT(spec_error(mounts("{ type = \"tmpfs\", target = \"/x\" }, { type = \"tmpfs\", target = \"/x\" }")),
             Contains("mounts[2] target: another mount of this step has target \"/x\""));
  CHECK_THAT(spec_error(mounts("{ type = \"cache\", target = \"/x\", sharing = \"private\" }")),
             Contains("mounts[1] sharing: expected \"shared\" or \"locked\", got \"private\""));
  CHECK_THAT(spec_error(mounts("{ type = \"cache\", target = \"/x\", mode = \"rwx\" }")),
             Contains("mounts[1] mode: expected a mode such as 0o755 or \"0755\""));
  CHECK_THAT(spec_error(mounts("{ type = \"tmpfs\", target = \"/x\", size = \"lots\" }")),
             Contains("mounts[1] size: expected a size in bytes"));
  CHECK_THAT(spec_error(mounts("\"/x\"")), Contains("mounts[1]: expected a table"));
}

TEST_CASE("${NAME} takes [args] defaults, --arg wins, $${ is a literal", "[build_spec][step_spec]") {
  const std::string body = kBase + R"(env = { V = "${VERSION}" }
labels = { "build.id" = "${BUILD_ID}", commit = "c-${COMMIT}" }

[args]
VERSION = "1.0"
BUILD_ID = "local"
COMMIT = ""

[[step]]
name = "a"
run = "echo ${VERSION} $${VERSION} $HOME ${HOME:-x} ${files[@]}"
env = { TOOL = "${VERSION}-x" }

[[step]]
name = "b"
run = "true"
)";
  const BuildSpec spec = load_text(body, {{"BUILD_ID", "42"}, {"BUILD_ID", "43"}, {"EXTRA", "1"}});
  CHECK(spec.image.env == Args{{"V", "1.0"}});
  CHECK(spec.image.labels == std::map<std::string, std::string>{{"build.id", "43"}, {"commit", "c-"}});
  REQUIRE(spec.steps.size() == 2);
  // Only ${NAME} with a plain name is ours; the shell keeps the rest.
  CHECK(spec.steps[0].run == "echo 1.0 ${VERSION} $HOME ${HOME:-x} ${files[@]}");
  CHECK(spec.steps[0].env == Args{{"TOOL", "1.0-x"}});
  // Each step's key covers exactly the args it uses.
  CHECK(spec.steps[0].args == std::map<std::string, std::string>{{"VERSION", "1.0"}});
  CHECK(spec.steps[1].args.empty());
  // EXTRA is used by nothing: the build warns. BUILD_ID is used by a label.
  CHECK(spec.unused_args == Strings{"EXTRA"});
  CHECK(spec.args.at("EXTRA") == "1");
}

TEST_CASE("a ${NAME} without a value names the file, line and key", "[build_spec][step_spec]") {
  CHECK_THAT(spec_error(kBase + step("a", "run = \"echo ${HOME}\"\n")),
             Contains(":5:7: [[step]] \"a\" run: ${HOME} has no value (give it a default in [args] or pass "
                      "--arg HOME=VALUE; write $${ for a literal ${"));
  CHECK_THAT(spec_error(kBase + step("a", "run = \"x\"\nenv = { A = \"${NOPE}\" }\n")),
             Contains(":6:13: [[step]] \"a\" env.A: ${NOPE} has no value"));
  CHECK_THAT(spec_error(kBase + "labels = { x = \"${NOPE}\" }\n"), Contains(":3:16: [image] labels.x: ${NOPE}"));
  CHECK_THAT(spec_error(kBase + "env = { X = \"${NOPE}\" }\n"), Contains(":3:13: [image] env.X: ${NOPE}"));
  // An --arg gives it a value.
  CHECK(load_text(kBase + step("a", "run = \"echo ${NOPE}\"\n"), {{"NOPE", "yes"}}).steps[0].run == "echo yes");
  CHECK_THAT(spec_error(kBase + "[args]\n1X = \"a\"\n"), Contains(":4:1: [args]: invalid argument name \"1X\""));
  CHECK_THAT(spec_error(kBase + "[args]\nX = 1\n"), Contains("args.X: expected a string, got an integer"));
}

TEST_CASE("skip-if-empty leaves a step out when its arg is empty", "[build_spec][step_spec]") {
  const std::string body = kBase + "[args]\nCUSTOM_SETUP_FNAME = \"install_tools.sh\"\n" +
                           step("custom setup", R"(skip-if-empty = "CUSTOM_SETUP_FNAME"
run = "bash /tmp/custom-setup/${CUSTOM_SETUP_FNAME}"
mounts = [{ type = "bind", context = "custom-setup", target = "/tmp/custom-setup" }]
)");
  const BuildSpec with_default = load_text(body);
  CHECK_FALSE(with_default.steps.at(0).skipped);
  CHECK(with_default.steps.at(0).run == "bash /tmp/custom-setup/install_tools.sh");
  const BuildSpec emptied = load_text(body, {{"CUSTOM_SETUP_FNAME", ""}});
  CHECK(emptied.steps.at(0).skipped);
  CHECK(emptied.steps.at(0).args == std::map<std::string, std::string>{{"CUSTOM_SETUP_FNAME", ""}});
  CHECK(emptied.unused_args.empty());
  // A skipped step needs no context.
  CHECK_NOTHROW(dockless::check_step_inputs(emptied, ".", StepInputs{}));
  CHECK_THROWS_AS(dockless::check_step_inputs(with_default, ".", StepInputs{}), Error);

  CHECK_THAT(spec_error(kBase + step("a", "run = \"x\"\nskip-if-empty = \"NOPE\"\n")),
             Contains(":6:17: [[step]] \"a\" skip-if-empty: \"NOPE\" is not a build arg"));
}

TEST_CASE("uv.python: an image path or a version uv installs", "[build_spec][step_spec]") {
  using Source = BuildSpec::Uv::PythonSource;
  const BuildSpec path = load_text(kBase);
  CHECK(path.uv.python_source == Source::kImagePath);
  CHECK_FALSE(path.uv.check_lock);
  for (const char* request : {"3.13", "3.13.2", "cpython-3.13"}) {
    const BuildSpec spec = load_text(kBase + "[uv]\npython = \"" + request + "\"\ncheck-lock = true\n");
    CHECK(spec.uv.python == request);
    CHECK(spec.uv.python_source == Source::kUvManaged);
    CHECK(spec.uv.python_install_dir == "/opt/python");
    CHECK(spec.uv.check_lock);
  }
  CHECK(load_text(kBase, {}, {"uv.python=3.12", "uv.python-install-dir=/opt/py"}).uv.python_install_dir == "/opt/py");
  CHECK_THAT(spec_error(kBase + "[uv]\npython = \"bin/python\"\n"),
             Contains("[uv] python: \"bin/python\" is neither an absolute path nor a python version"));
  // The install dir is a layer's own directory when uv installs Python.
  CHECK_THAT(spec_error(kBase + "[uv]\npython = \"3.13\"\npython-install-dir = \"/opt/app/py\"\n"),
             Contains("[uv] python-install-dir \"/opt/app/py\" is inside [source] dest \"/opt/app\""));
}

TEST_CASE("install-project is false, true or \"editable\"", "[build_spec][step_spec]") {
  using IP = dockless::VenvSpec::InstallProject;
  auto venv = [](const std::string& value) {
    return load_text(kBase + "[venv.main]\npath = \"/app/.venv\"\ninstall-project = " + value +
                     "\n[source]\ndest = \"/app\"\n")
        .venvs.at(0)
        .install_project;
  };
  CHECK(load_text(kBase + "[venv.main]\npath = \"/v\"\n").venvs.at(0).install_project == IP::kNo);
  CHECK(venv("false") == IP::kNo);
  CHECK(venv("true") == IP::kYes);
  CHECK(venv("\"editable\"") == IP::kEditable);
  CHECK_THAT(spec_error(kBase + "[venv.main]\npath = \"/v\"\ninstall-project = \"yes\"\n"),
             Contains(":5:19: [venv.main] install-project: expected false, true or \"editable\", got \"yes\""));
}

TEST_CASE("--arg, --context and --secret parse buildx's forms", "[build_spec][step_spec]") {
  CHECK(dockless::parse_arg_option("A=b=c") == std::pair<std::string, std::string>{"A", "b=c"});
  CHECK(dockless::parse_arg_option("CUSTOM_SETUP_FNAME=") == std::pair<std::string, std::string>{"CUSTOM_SETUP_FNAME", ""});
  CHECK_THROWS_WITH(dockless::parse_arg_option("A"), Contains("--arg \"A\": expected NAME=VALUE"));
  CHECK_THROWS_AS(dockless::parse_arg_option("-A=1"), UsageError);

  StepInputs in;
  dockless::add_context_option(in, "custom-setup=/tmp/dir");
  dockless::add_secret_option(in, "id=token,src=/run/token");
  dockless::add_secret_option(in, "type=file,source=/f,id=npm");
  CHECK(in.contexts.at("custom-setup") == "/tmp/dir");
  CHECK(in.secrets.at("token") == "/run/token");
  CHECK(in.secrets.at("npm") == "/f");
  CHECK_THROWS_WITH(dockless::add_context_option(in, "custom-setup=/other"),
                    Contains("--context custom-setup is given twice"));
  CHECK_THROWS_WITH(dockless::add_context_option(in, "x=docker-image://alpine"),
                    Contains("only a local directory"));
  CHECK_THROWS_AS(dockless::add_context_option(in, "a/b=/x"), UsageError);
  CHECK_THROWS_WITH(dockless::add_secret_option(in, "id=token,src=/x"), Contains("--secret id=token is given twice"));
  CHECK_THROWS_WITH(dockless::add_secret_option(in, "id=t,env=HOME"), Contains("unknown key \"env\""));
  CHECK_THROWS_WITH(dockless::add_secret_option(in, "id=t"), Contains("--secret id=t: missing src=FILE"));
  // A bare word might be the secret itself: it is not echoed.
  try {
    dockless::add_secret_option(in, "hunter2-secret");
    FAIL("no error");
  } catch (const UsageError& e) {
    CHECK_THAT(e.what(), !Contains("hunter2"));
  }
}

TEST_CASE("check_step_inputs: contexts, secrets and bind sources exist", "[build_spec][step_spec]") {
  TempDir t;
  write_text(t / "project/docker/x.sh", "echo x\n");
  write_text(t / "setup/install_tools.sh", "echo tools\n");
  write_text(t / "token", "s3cr3t\n");
  std::filesystem::create_symlink("/etc", t / "project/escape");
  const BuildSpec spec = load_text(kBase + "\n" + kIssueSteps);
  const std::filesystem::path project = t / "project";
  StepInputs in;
  in.contexts["custom-setup"] = t / "setup";
  in.secrets["token"] = t / "token";
  CHECK_NOTHROW(dockless::check_step_inputs(spec, project, in));

  auto error = [&](const BuildSpec& s, const StepInputs& i) {
    return error_of([&] { dockless::check_step_inputs(s, project, i); });
  };
  StepInputs no_context = in;
  no_context.contexts.clear();
  CHECK_THAT(error(spec, no_context),
             Contains("dockless.toml:17:3: [[step]] \"system packages\" mounts[2]: context \"custom-setup\" is not "
                      "given (pass --context custom-setup=DIR)"));
  StepInputs missing_dir = in;
  missing_dir.contexts["custom-setup"] = t / "nowhere";
  CHECK_THAT(error(spec, missing_dir), Contains("--context custom-setup=" + (t / "nowhere").string() +
                                                ": no such directory"));
  StepInputs no_secret = in;
  no_secret.secrets.clear();
  CHECK_THAT(error(spec, no_secret), Contains("mounts[4]: secret \"token\" is not given (pass --secret id=token,src=FILE"));
  StepInputs missing_file = in;
  missing_file.secrets["token"] = t / "no-token";
  const std::string msg = error(spec, missing_file);
  CHECK_THAT(msg, Contains("--secret id=token: cannot read " + (t / "no-token").string() + ": No such file"));

  // A bind source from the project must exist and stay inside.
  const BuildSpec gone = load_text(kBase + step("s", "run = \"x\"\nmounts = [{ type = \"bind\", source = \"docker/y.sh\", target = \"/y\" }]\n"));
  CHECK_THAT(error(gone, in), Contains("mounts[1]: source \"docker/y.sh\" does not exist in the project"));
  const BuildSpec escape = load_text(kBase + step("s", "run = \"x\"\nmounts = [{ type = \"bind\", source = \"escape\", target = \"/y\" }]\n"));
  CHECK_THAT(error(escape, in), Contains("mounts[1]: source \"escape\" leads outside the project"));
  // An optional secret may be missing.
  const BuildSpec optional = load_text(kBase + step("s", "run = \"x\"\nmounts = [{ type = \"secret\", id = \"npm\", required = false }]\n"));
  CHECK_NOTHROW(dockless::check_step_inputs(optional, project, StepInputs{}));
}
