// The build plan of a nemo-like project (a main venv and vLLM and SGLang
// worker venvs, tagged): the layers in image order, what --skip removes,
// which keys an edit changes, and hits and misses from a given cache state.
#include "src/build/build_plan.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"

using namespace dockless;

namespace {

const std::string kVllm = "app.workers.VllmWorker";
const std::string kSglang = "app.workers.SglangWorker";

VenvSpec venv(const std::string& name, std::vector<std::string> extras, std::vector<std::string> tags) {
  VenvSpec v;
  v.name = name;
  v.path = "/opt/ray_venvs/" + name;
  v.extras = std::move(extras);
  v.tags = std::move(tags);
  return v;
}

/// Workers in file order, "main" last (as load_build_spec orders them).
BuildSpec nemo_spec() {
  BuildSpec spec;
  spec.file = "/project/dockless.toml";
  spec.image.base = "docker.io/library/python:3.12-slim";
  spec.venvs.push_back(venv(kVllm, {"vllm"}, {"vllm", "inference"}));
  spec.venvs.push_back(venv(kSglang, {"sglang"}, {"sglang", "inference"}));
  VenvSpec main = venv("main", {}, {});
  main.path = "/opt/venv";
  spec.venvs.push_back(main);
  return spec;
}

PlanInputs nemo_inputs() {
  PlanInputs in;
  in.platform = "linux/amd64";
  in.base_digest = "sha256:4ec60b0e47a7e1c9bdf3bcd5e28a0b13dd2ba9ec1d33b02b3de6eb3bbc4b5a4f";
  in.uv_sha = "5d1a6c0e0bb9f7a39c5e5a1d74d7e1b3cc8e1b76f53c1f1e3f2fdf6f0f2a8e11";
  in.uv_short_version = "0.9.1";
  in.uv_lock = "sha256:0f7c3dfb1b1f5d5c2b07b7a8c5b2e5ec1f1b0a3e9f7c26b3a1e7e54d2b3c4d5e";
  in.pyproject = "sha256:9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
  in.format.mtime_clamp = 1700000000;
  in.source_tar = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  return in;
}

/// Caches as data: made environments, layers by key (local or remote).
class FakeCache : public CacheState {
 public:
  bool environment_made(const std::string& env_key) override { return made.count(env_key) > 0; }
  std::optional<std::vector<CachedLayer>> find_layers(const std::string& key, std::string& origin,
                                                      const std::function<bool(const CachedLayer&)>&) override {
    looked_up.push_back(key);
    auto it = layers.find(key);
    if (it == layers.end()) return std::nullopt;
    origin = remote.count(key) ? "remote" : "hit";
    return it->second;
  }
  std::set<std::string> made;
  std::map<std::string, std::vector<CachedLayer>> layers;
  std::set<std::string> remote;
  std::vector<std::string> looked_up;
};

BuildPlan plan(const BuildSpec& spec, const PlanInputs& in, std::vector<std::string> skip = {}) {
  FakeCache empty;
  return plan_build(spec, skip, in, empty);
}

std::vector<std::string> names(const BuildPlan& p) {
  std::vector<std::string> out;
  for (const auto& s : p.slots) out.push_back(s.name);
  return out;
}

/// slot name -> key
std::map<std::string, std::string> keys(const BuildPlan& p) {
  std::map<std::string, std::string> out;
  for (const auto& s : p.slots) out[s.name] = s.key;
  return out;
}

const LayerSlot& slot(const BuildPlan& p, const std::string& name) {
  for (const auto& s : p.slots)
    if (s.name == name) return s;
  FAIL("no slot " << name);
  throw Error("unreachable");
}

const PlannedEnvironment& env(const BuildPlan& p, const std::string& name) {
  for (const auto& e : p.environments)
    if (e.name == name) return e;
  FAIL("no environment " << name);
  throw Error("unreachable");
}

/// Slots whose key differs between two plans (slots of both).
std::set<std::string> changed(const BuildPlan& a, const BuildPlan& b) {
  std::set<std::string> out;
  auto kb = keys(b);
  for (const auto& [name, key] : keys(a))
    if (kb.count(name) && kb[name] != key) out.insert(name);
  return out;
}

}  // namespace

TEST_CASE("layers come in image order: uv, the uv cache, workers in spec order, main, source", "[build_plan]") {
  BuildPlan p = plan(nemo_spec(), nemo_inputs());
  CHECK(names(p) == std::vector<std::string>{"uv 0.9.1", "uv cache", "venv " + kVllm, "venv " + kSglang,
                                             "venv main", "source /opt/app"});
  CHECK(p.slots[0].kind == SlotKind::kUvBinary);
  CHECK(p.slots[0].image_path == "/usr/local/bin/uv");
  CHECK(p.slots[1].kind == SlotKind::kUvCache);
  CHECK(p.slots[1].envs == std::vector<std::string>{kSglang, kVllm, "main"});
  CHECK(p.slots[2].kind == SlotKind::kVenv);
  CHECK(p.slots[2].image_path == "/opt/ray_venvs/" + kVllm);
  CHECK(p.slots[2].envs == std::vector<std::string>{kVllm});
  CHECK(p.slots[4].image_path == "/opt/venv");
  CHECK(p.slots[5].kind == SlotKind::kSource);
  REQUIRE(p.main_environment() != nullptr);
  CHECK(p.main_environment()->image_path == "/opt/venv");
  std::set<std::string> distinct;
  for (const auto& s : p.slots) distinct.insert(s.key);
  CHECK(distinct.size() == p.slots.size());
}

TEST_CASE("no uv path and no shipped cache leave those slots out; cache extras fill the cache only",
          "[build_plan]") {
  BuildSpec spec = nemo_spec();
  spec.cache.extras = {"tests"};
  BuildPlan p = plan(spec, nemo_inputs());
  CHECK(p.environments.back().name == "cache:tests");
  CHECK_FALSE(p.environments.back().shipped);
  CHECK(slot(p, "uv cache").envs == std::vector<std::string>{kSglang, kVllm, "cache:tests", "main"});
  CHECK(names(p).size() == 6);  // no venv layer for the cache filler

  spec.uv.uv_path = "";
  spec.uv.ship_cache = false;
  CHECK(names(plan(spec, nemo_inputs())) ==
        std::vector<std::string>{"venv " + kVllm, "venv " + kSglang, "venv main", "source /opt/app"});
}

TEST_CASE("--skip removes the venv slots of a name or a tag; the others keep their keys", "[build_plan]") {
  BuildSpec spec = nemo_spec();
  PlanInputs in = nemo_inputs();
  BuildPlan full = plan(spec, in);

  BuildPlan novllm = plan(spec, in, {"vllm"});
  CHECK(names(novllm) ==
        std::vector<std::string>{"uv 0.9.1", "uv cache", "venv " + kSglang, "venv main", "source /opt/app"});
  CHECK(novllm.skipped() == std::vector<std::string>{kVllm});
  // Every slot but the uv cache (split by the environments it serves) keeps its key.
  CHECK(changed(full, novllm) == std::set<std::string>{"uv cache"});
  CHECK(slot(novllm, "uv cache").envs == std::vector<std::string>{kSglang, "main"});

  CHECK(names(plan(spec, in, {kSglang})) ==
        std::vector<std::string>{"uv 0.9.1", "uv cache", "venv " + kVllm, "venv main", "source /opt/app"});
  BuildPlan noinf = plan(spec, in, {"inference"});
  CHECK(names(noinf) == std::vector<std::string>{"uv 0.9.1", "uv cache", "venv main", "source /opt/app"});
  CHECK(noinf.skipped() == std::vector<std::string>{kVllm, kSglang});
  CHECK(slot(noinf, "venv main").key == slot(full, "venv main").key);

  CHECK_THROWS_AS(plan(spec, in, {"trtllm"}), UsageError);
}

TEST_CASE("--skip of a venv made here keys the uv cache like the full build", "[build_plan]") {
  BuildSpec spec = nemo_spec();
  PlanInputs in = nemo_inputs();
  BuildPlan full = plan(spec, in);
  FakeCache cache;
  cache.made.insert(env(full, kVllm).key);
  BuildPlan novllm = plan_build(spec, {"vllm"}, in, cache);
  CHECK(slot(novllm, "uv cache").key == slot(full, "uv cache").key);
  CHECK(slot(novllm, "uv cache").envs == std::vector<std::string>{kSglang, kVllm, "main"});
}

TEST_CASE("a variant takes the full build's uv cache and ships only its enabled parts", "[build_plan]") {
  BuildSpec spec = nemo_spec();
  PlanInputs in = nemo_inputs();
  BuildPlan full = plan(spec, in);
  FakeCache cache;
  CachedLayer common{"uv cache (common)", {}, {}}, vllm_only{"uv cache (env:" + kVllm + ")", {}, {kVllm}},
      main_only{"uv cache (env:main)", {}, {"main"}};
  cache.layers[slot(full, "uv cache").key] = {common, main_only, vllm_only};
  BuildPlan novllm = plan_build(spec, {"vllm"}, in, cache);
  const LayerSlot& uv_cache = slot(novllm, "uv cache");
  CHECK(uv_cache.hit());
  CHECK(uv_cache.key == slot(full, "uv cache").key);
  CHECK(novllm.ships(common));
  CHECK(novllm.ships(main_only));
  CHECK_FALSE(novllm.ships(vllm_only));
  CHECK(full.ships(vllm_only));
  // The uv cache is there: only the missing venv layers need their environments.
  CHECK(env(novllm, "main").needed);
  CHECK_FALSE(env(novllm, kVllm).needed);
}

TEST_CASE("a source edit changes only the source slot's key", "[build_plan]") {
  PlanInputs in = nemo_inputs();
  BuildPlan before = plan(nemo_spec(), in);
  in.source_tar = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
  BuildPlan after = plan(nemo_spec(), in);
  CHECK(changed(before, after) == std::set<std::string>{"source /opt/app"});
  for (std::size_t i = 0; i < before.environments.size(); ++i)
    CHECK(before.environments[i].key == after.environments[i].key);
}

TEST_CASE("a uv.lock edit changes the environments, venvs and uv cache, not uv or the source", "[build_plan]") {
  PlanInputs in = nemo_inputs();
  BuildPlan before = plan(nemo_spec(), in);
  in.uv_lock = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
  BuildPlan after = plan(nemo_spec(), in);
  CHECK(changed(before, after) ==
        std::set<std::string>{"uv cache", "venv " + kVllm, "venv " + kSglang, "venv main"});
  for (std::size_t i = 0; i < before.environments.size(); ++i)
    CHECK(before.environments[i].key != after.environments[i].key);
}

TEST_CASE("another base changes every key that depends on the base's files", "[build_plan]") {
  PlanInputs in = nemo_inputs();
  BuildPlan before = plan(nemo_spec(), in);
  in.base_digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
  BuildPlan after = plan(nemo_spec(), in);
  // uv's own layer and the source tree hold no file of the base.
  CHECK(changed(before, after) ==
        std::set<std::string>{"uv cache", "venv " + kVllm, "venv " + kSglang, "venv main"});
  in.uv_sha = "3333333333333333333333333333333333333333333333333333333333333333";
  CHECK(changed(after, plan(nemo_spec(), in)) ==
        std::set<std::string>{"uv 0.9.1", "uv cache", "venv " + kVllm, "venv " + kSglang, "venv main"});
}

TEST_CASE("hits and misses follow the cache state", "[build_plan]") {
  BuildSpec spec = nemo_spec();
  PlanInputs in = nemo_inputs();
  BuildPlan cold = plan(spec, in);
  for (const auto& s : cold.slots) {
    CHECK_FALSE(s.hit());
    CHECK(s.reason == "no cache holds its key");
  }
  for (const auto& e : cold.environments) CHECK(e.needed);

  FakeCache cache;
  for (const auto& s : cold.slots)
    if (s.name != "venv " + kSglang) cache.layers[s.key] = {CachedLayer{s.name, {}, {}}};
  cache.remote.insert(slot(cold, "source /opt/app").key);
  cache.made.insert(env(cold, "main").key);
  BuildPlan warm = plan_build(spec, {}, in, cache);
  CHECK(slot(warm, "uv 0.9.1").origin == "hit");
  CHECK(slot(warm, "uv cache").origin == "hit");
  CHECK(slot(warm, "venv main").origin == "hit");
  CHECK(slot(warm, "source /opt/app").origin == "remote");
  CHECK_FALSE(slot(warm, "venv " + kSglang).hit());
  CHECK(slot(warm, "venv main").layers.front().name == "venv main");
  CHECK(env(warm, kSglang).needed);
  CHECK_FALSE(env(warm, kVllm).needed);
  CHECK_FALSE(env(warm, "main").needed);
  CHECK(env(warm, "main").ready);
  CHECK_FALSE(env(warm, kSglang).ready);

  in.no_cache = true;
  BuildPlan forced = plan_build(spec, {}, in, cache);
  CHECK_FALSE(env(forced, "main").ready);
  CHECK(slot(forced, "venv " + kSglang).reason == "--no-cache");
}

namespace {

StepSpec step(const std::string& name, StepStage at, const std::string& run) {
  StepSpec s;
  s.name = name;
  s.at = at;
  s.run = run;
  return s;
}

/// The nemo-like spec with NeMo RL's three kinds of step: apt and a setup
/// script on the base, ld.so.conf after the venvs, one after the source.
BuildSpec spec_with_steps() {
  BuildSpec spec = nemo_spec();
  spec.steps.push_back(step("apt", StepStage::kBase, "apt-get update && apt-get install -y jq"));
  StepSpec setup = step("custom setup", StepStage::kBase, "bash /tmp/custom-setup/${CUSTOM_SETUP_FNAME}");
  setup.args = {{"CUSTOM_SETUP_FNAME", "install_tools.sh"}};
  StepMount bind;
  bind.type = StepMount::Type::kBind;
  bind.context = "custom-setup";
  bind.target = "/tmp/custom-setup";
  bind.origin = "dockless.toml:20:3";
  setup.mounts.push_back(bind);
  spec.steps.push_back(setup);
  spec.steps.push_back(step("efa", StepStage::kVenvs, "printf '/opt/amazon/efa/lib\\n' > /etc/ld.so.conf.d/efa.conf"));
  spec.steps.push_back(step("compile", StepStage::kSource, "python3 -m compileall -q /opt/app"));
  return spec;
}

PlanInputs inputs_with_steps() {
  PlanInputs in = nemo_inputs();
  in.bind_digests["dockless.toml:20:3"] = "sha256:" + std::string(64, 'c');
  return in;
}

}  // namespace

TEST_CASE("steps take their place: base steps first, venvs steps before the source, source steps last",
          "[build_plan]") {
  BuildPlan p = plan(spec_with_steps(), inputs_with_steps());
  CHECK(names(p) == std::vector<std::string>{"step apt", "step custom setup", "uv 0.9.1", "uv cache",
                                             "venv " + kVllm, "venv " + kSglang, "venv main", "step efa",
                                             "source /opt/app", "step compile"});
  CHECK(slot(p, "step apt").kind == SlotKind::kStep);
  CHECK(slot(p, "step apt").step == 0);
  CHECK(slot(p, "step compile").step == 3);
}

TEST_CASE("a skipped step has no slot, and the steps after it are keyed without it", "[build_plan]") {
  BuildSpec spec = spec_with_steps();
  BuildPlan full = plan(spec, inputs_with_steps());
  spec.steps[1].skipped = true;
  BuildPlan without = plan(spec, inputs_with_steps());
  auto n = names(without);
  CHECK(std::find(n.begin(), n.end(), "step custom setup") == n.end());
  CHECK(slot(without, "step apt").key == slot(full, "step apt").key);
  CHECK(slot(without, "step efa").key != slot(full, "step efa").key);
}

TEST_CASE("editing step 2 keeps step 1 and remakes step 2 and everything over it", "[build_plan]") {
  BuildSpec spec = spec_with_steps();
  PlanInputs in = inputs_with_steps();
  BuildPlan a = plan(spec, in);
  SECTION("its script") { spec.steps[1].run += " --verbose"; }
  SECTION("a build arg it uses") { spec.steps[1].args["CUSTOM_SETUP_FNAME"] = "other.sh"; }
  SECTION("the content of its bind mount") { in.bind_digests["dockless.toml:20:3"] = "sha256:" + std::string(64, 'd'); }
  SECTION("its environment") { spec.steps[1].env.push_back({"PIP_NO_CACHE_DIR", "1"}); }
  SECTION("its user") { spec.steps[1].user = "nobody"; }
  SECTION("its network") { spec.steps[1].network = StepNetwork::kNone; }
  BuildPlan b = plan(spec, in);
  std::set<std::string> c = changed(a, b);
  CHECK(!c.count("step apt"));
  CHECK(c.count("step custom setup"));
  // uv runs over the base steps: the venvs and the cache are remade too.
  CHECK(c.count("venv main"));
  CHECK(c.count("uv cache"));
  CHECK(c.count("step efa"));
  CHECK(c.count("step compile"));
  // uv itself and the source tree do not depend on what ran before them.
  CHECK(!c.count("uv 0.9.1"));
  CHECK(!c.count("source /opt/app"));
}

TEST_CASE("a source edit remakes only the source and the steps after it; a lock edit no base step",
          "[build_plan]") {
  BuildSpec spec = spec_with_steps();
  PlanInputs in = inputs_with_steps();
  BuildPlan a = plan(spec, in);
  PlanInputs edited = in;
  edited.source_tar = "sha256:" + std::string(64, '1');
  CHECK(changed(a, plan(spec, edited)) == std::set<std::string>{"source /opt/app", "step compile"});
  PlanInputs relocked = in;
  relocked.uv_lock = "sha256:" + std::string(64, '2');
  std::set<std::string> c = changed(a, plan(spec, relocked));
  CHECK(!c.count("step apt"));
  CHECK(!c.count("step custom setup"));
  CHECK(c.count("step efa"));  // it runs over the venvs
  CHECK(c.count("venv main"));
}

TEST_CASE("base steps key the environments: with none, the environment keys are as before", "[build_plan]") {
  BuildPlan none = plan(nemo_spec(), nemo_inputs());
  BuildSpec only_later = nemo_spec();
  only_later.steps.push_back(step("efa", StepStage::kVenvs, "true"));
  BuildPlan later = plan(only_later, nemo_inputs());
  CHECK(env(later, "main").key == env(none, "main").key);
  BuildPlan with_base = plan(spec_with_steps(), inputs_with_steps());
  CHECK(env(with_base, "main").key != env(none, "main").key);
}

TEST_CASE("a cached step is a hit; the step after a miss is looked up under its own chained key",
          "[build_plan]") {
  BuildSpec spec = spec_with_steps();
  PlanInputs in = inputs_with_steps();
  BuildPlan first = plan(spec, in);
  FakeCache cache;
  cache.layers[slot(first, "step apt").key] = {CachedLayer{}};
  BuildPlan p = plan_build(spec, {}, in, cache);
  CHECK(slot(p, "step apt").hit());
  CHECK(!slot(p, "step custom setup").hit());
}

namespace {

/// uv's Docker layout: the main venv at /app/.venv inside the source at
/// /app, installing the project (a worker venv does not).
BuildSpec uv_layout_spec(VenvSpec::InstallProject mode) {
  BuildSpec spec = nemo_spec();
  spec.source.dest = "/app";
  spec.venvs.back().path = "/app/.venv";
  spec.venvs.back().install_project = mode;
  return spec;
}

}  // namespace

TEST_CASE("install-project adds a project slot after the source, before the source steps", "[build_plan]") {
  BuildSpec spec = uv_layout_spec(VenvSpec::InstallProject::kEditable);
  spec.steps.push_back(step("compile", StepStage::kSource, "python3 -m compileall -q /app"));
  BuildPlan p = plan(spec, nemo_inputs());
  CHECK(names(p) == std::vector<std::string>{"uv 0.9.1", "uv cache", "venv " + kVllm, "venv " + kSglang,
                                             "venv main", "source /app", "project in venv main (editable)",
                                             "step compile"});
  const LayerSlot& project = slot(p, "project in venv main (editable)");
  CHECK(project.kind == SlotKind::kProject);
  CHECK(project.image_path == "/app/.venv");
  CHECK(project.envs == std::vector<std::string>{"main"});
  CHECK(env(p, "main").needed);
  CHECK(names(plan(uv_layout_spec(VenvSpec::InstallProject::kYes), nemo_inputs())).back() ==
        "project in venv main");
  CHECK(names(plan(nemo_spec(), nemo_inputs())).back() == "source /opt/app");
}

TEST_CASE("editable project: a source edit keeps its key, a pyproject edit changes it", "[build_plan]") {
  BuildSpec spec = uv_layout_spec(VenvSpec::InstallProject::kEditable);
  PlanInputs in = nemo_inputs();
  BuildPlan before = plan(spec, in);
  PlanInputs edited = in;
  edited.source_tar = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
  CHECK(changed(before, plan(spec, edited)) == std::set<std::string>{"source /app"});
  PlanInputs pyproject = in;
  pyproject.pyproject = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
  CHECK(changed(before, plan(spec, pyproject)).count("project in venv main (editable)") == 1);
}

TEST_CASE("built project (install-project = true): a source edit changes its key", "[build_plan]") {
  BuildSpec spec = uv_layout_spec(VenvSpec::InstallProject::kYes);
  PlanInputs in = nemo_inputs();
  BuildPlan before = plan(spec, in);
  in.source_tar = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
  CHECK(changed(before, plan(spec, in)) == std::set<std::string>{"source /app", "project in venv main"});
  // Editable and built never share a layer.
  CHECK(slot(before, "project in venv main").key !=
        slot(plan(uv_layout_spec(VenvSpec::InstallProject::kEditable), nemo_inputs()),
             "project in venv main (editable)")
            .key);
}

TEST_CASE("a cached project layer is a hit and needs no environment", "[build_plan]") {
  BuildSpec spec = uv_layout_spec(VenvSpec::InstallProject::kEditable);
  BuildPlan first = plan(spec, nemo_inputs());
  FakeCache cache;
  for (const auto& s : first.slots) cache.layers[s.key] = {CachedLayer{s.name, {}, {}}};
  BuildPlan again = plan_build(spec, {}, nemo_inputs(), cache);
  CHECK(slot(again, "project in venv main (editable)").hit());
  CHECK_FALSE(env(again, "main").needed);
}

TEST_CASE("a uv-managed Python sits between uv and the uv cache, and keys the environments", "[build_plan]") {
  BuildSpec spec = nemo_spec();
  spec.uv.uv_path = "/usr/local/bin/uv";
  BuildPlan by_path = plan(spec, nemo_inputs());
  CHECK(by_path.environment_base_count() == 0);
  spec.uv.python = "3.13";
  spec.uv.python_source = BuildSpec::Uv::PythonSource::kUvManaged;
  PlanInputs in = nemo_inputs();
  BuildPlan p = plan(spec, in);
  CHECK(names(p) == std::vector<std::string>{"uv 0.9.1", "python 3.13", "uv cache", "venv " + kVllm,
                                             "venv " + kSglang, "venv main", "source /opt/app"});
  CHECK(slot(p, "python 3.13").kind == SlotKind::kPython);
  CHECK(slot(p, "python 3.13").image_path == "/opt/python");
  // uv makes the venvs over uv and the Python: both are made first.
  CHECK(p.environment_base_count() == 2);
  CHECK(env(p, "main").key != env(by_path, "main").key);

  SECTION("another request or mirror remakes the Python and every venv, not uv or the source") {
    spec.uv.python = "3.12";
    std::set<std::string> c = changed(p, plan(spec, in));
    CHECK(c.count("venv main"));
    CHECK(c.count("uv cache"));
    CHECK_FALSE(c.count("uv 0.9.1"));
    CHECK_FALSE(c.count("source /opt/app"));
    spec.uv.python = "3.13";
    in.uv_env = {"UV_PYTHON_INSTALL_MIRROR=http://mirror.corp/pbs"};
    c = changed(p, plan(spec, in));
    CHECK(c.count("python 3.13"));
    CHECK(c.count("venv main"));
  }
  SECTION("another compression remakes the Python's layer but not the environments") {
    in.format.level = 9;
    BuildPlan q = plan(spec, in);
    CHECK(slot(q, "python 3.13").key != slot(p, "python 3.13").key);
    CHECK(env(q, "main").key == env(p, "main").key);
  }
  SECTION("a source edit keeps the Python") {
    in.source_tar = "sha256:" + std::string(64, '7');
    CHECK(changed(p, plan(spec, in)) == std::set<std::string>{"source /opt/app"});
  }
}
