// Build steps ([[step]] in the spec): the commands a Dockerfile would RUN,
// each one layer, with the mounts (RUN --mount) they see while they run.
// step_spec.cc reads and checks them; the executor runs them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dockless {

/// Where a step's layer goes (`at`).
enum class StepStage {
  kBase,   ///< after the base image, before uv and Python
  kVenvs,  ///< after the environments, before the source
  kSource  ///< after the source
};

enum class StepNetwork { kHost, kNone };

/// One entry of a step's `mounts`. Nothing under a mount ends up in the layer.
struct StepMount {
  enum class Type { kBind, kCache, kSecret, kTmpfs };
  Type type = Type::kBind;
  std::string target;  ///< absolute path in the step's root
  /// "dockless.toml:14:3: [[step]] \"apt\" mounts[1]": where it was written,
  /// for the messages of check_step_inputs.
  std::string origin;

  // bind: `source` under the project directory, or under --context `context`.
  std::string source = ".";  ///< relative, normalised, no ".."; "." = the whole directory
  std::string context;       ///< "" = the project
  bool readonly = true;

  // cache: a persistent directory under dockless's cache dir.
  std::string id;        ///< cache: default the target (any text; map it to a safe dir name); secret: the --secret id
  bool locked = false;   ///< sharing = "locked": one step at a time; else "shared"
  std::optional<std::uint32_t> mode, uid, gid;  ///< of the cache directory when it is made

  // secret: the --secret file, read-only at target (default /run/secrets/ID).
  bool required = true;  ///< false: no --secret with this id leaves the mount out

  // tmpfs
  std::optional<std::uint64_t> size;  ///< bytes; unset = the kernel's default
};

struct StepSpec {
  std::string name;  ///< unique among the steps
  StepStage at = StepStage::kBase;
  std::string run;  ///< the script, ${NAME} already substituted
  /// The program and arguments the script is given to, as the last argument.
  std::vector<std::string> shell = {"bash", "-eu", "-o", "pipefail", "-c"};
  std::vector<std::pair<std::string, std::string>> env;  ///< in file order, substituted
  std::string workdir;  ///< absolute; "" = "/"
  std::string user;     ///< as in image.user; "" = root
  StepNetwork network = StepNetwork::kHost;
  std::vector<StepMount> mounts;
  /// skip-if-empty = "NAME": the step is left out when build arg NAME is empty
  /// (`--arg CUSTOM_SETUP_FNAME=`); "" = always run.
  std::string skip_if_empty;
  /// The build args the step uses (in run, env and skip-if-empty) and their
  /// values: its cache key covers exactly these.
  std::map<std::string, std::string> args;
  /// skip_if_empty named an empty arg: no layer, no mounts checked.
  bool skipped = false;
};

}  // namespace dockless
