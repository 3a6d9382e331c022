#include "oci/keychain.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>

#include "base/error.h"
#include "base/file_util.h"
#include "base/process.h"
#include "oci/json_util.h"

namespace dockless {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kDockerHub = "docker.io";
// The key `docker login` writes for Docker Hub, and the URL helpers expect.
constexpr std::string_view kDockerHubServerUrl = "https://index.docker.io/v1/";
constexpr std::string_view kHelperPrefix = "docker-credential-";
constexpr std::string_view kHelperNotFound = "credentials not found";
constexpr std::string_view kTokenUser = "<token>";
// A helper's answer is a few hundred bytes; anything past this is a broken helper.
constexpr std::size_t kMaxHelperOutput = 1 << 20;
// Stderr text quoted in an error is cut here: a message is one line.
constexpr std::size_t kMaxQuotedStderr = 200;

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool is_docker_hub(std::string_view host) {
  return host == kDockerHub || host == "index.docker.io" || host == "registry-1.docker.io";
}

// The names one registry goes by in config files.
std::vector<std::string> host_aliases(const std::string& registry) {
  if (is_docker_hub(registry)) return {"docker.io", "index.docker.io", "registry-1.docker.io"};
  return {registry};
}

void add_unique(std::vector<std::string>& v, std::string s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(std::move(s));
}

// Host-level keys of "auths" and "credHelpers", most specific first: podman
// writes the bare host, docker the host (or Hub's legacy URL), and older
// tools wrote URLs with a scheme and an API path.
std::vector<std::string> host_keys(const std::string& registry) {
  std::vector<std::string> keys;
  if (is_docker_hub(registry)) {
    keys = {"docker.io", std::string(kDockerHubServerUrl), "index.docker.io",
            "registry-1.docker.io"};
  }
  for (const std::string& h : host_aliases(registry)) {
    add_unique(keys, h);
    add_unique(keys, "https://" + h);
    add_unique(keys, "http://" + h);
    add_unique(keys, h + "/v1/");
    add_unique(keys, "https://" + h + "/v1/");
    add_unique(keys, "https://" + h + "/v2/");
  }
  return keys;
}

// What `docker login` would have passed to a helper for this host.
std::string helper_server_url(const std::string& registry) {
  return is_docker_hub(registry) ? std::string(kDockerHubServerUrl) : registry;
}

// Strict RFC 4648 base64 (standard alphabet, padding optional): docker
// writes it with Go's StdEncoding, so anything else is a corrupt file.
std::optional<std::string> decode_base64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::size_t padding = 0;
  while (!in.empty() && in.back() == '=' && padding < 2) {
    in.remove_suffix(1);
    ++padding;
  }
  if (padding > 0 && (in.size() + padding) % 4 != 0) return std::nullopt;
  if (in.size() % 4 == 1) return std::nullopt;  // 6 bits cannot make a byte
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// The file's content, or nullopt when it does not exist (the default search
// skips those). Any other failure (permissions, a directory) is an Error.
std::optional<std::string> read_if_exists(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throw_errno("cannot open credentials file " + path.string());
  }
  std::string out;
  char buf[16384];
  for (;;) {
    std::size_t n = read_some(fd.get(), buf, sizeof buf, "credentials file " + path.string());
    if (n == 0) break;
    out.append(buf, n);
  }
  return out;
}

bool blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

const rapidjson::Value* find_member(const rapidjson::Value& obj, std::string_view key) {
  const auto length = static_cast<rapidjson::SizeType>(key.size());
  auto it = obj.FindMember(rapidjson::Value(rapidjson::StringRef(key.data(), length)));
  if (it == obj.MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

// ---- credential helpers ------------------------------------------------------

// Runs `program get` (looked up on PATH, no shell) with `input` on stdin and
// collects stdout and stderr, killing it after `timeout`. `origin` says where
// the helper was configured, for messages. Pipes may be held open by a
// grandchild such as gpg-agent: run_process stops reading when the helper exits.
ProcessResult run_helper_process(const std::string& program, std::string_view input,
                                 std::chrono::milliseconds timeout, const std::string& origin) {
  if (input.size() > 4096) throw Error("server URL too long for credential helper " + program);
  Command c;
  c.argv = {program, "get"};
  c.in = ProcessInput::text(std::string(input));
  c.out = ProcessOutput::capture(kMaxHelperOutput);
  c.err = ProcessOutput::capture(kMaxHelperOutput);
  c.timeout = timeout;
  ProcessResult result;
  try {
    result = run_process(c);
  } catch (const SpawnError& e) {
    // EACCES too: a PATH entry this user may not search hides the helper.
    if (e.errnum() == ENOENT || e.errnum() == EACCES)
      throw Error("credential helper " + program + " (" + origin + ") is not on PATH" +
                  (e.errnum() == EACCES ? " (or not executable by this user)" : ""));
    throw_errno("cannot start credential helper " + program + " (" + origin + ")", e.errnum());
  }
  if (result.timed_out)
    throw Error("credential helper " + program + " (" + origin + ") did not answer within " +
                std::to_string(timeout.count()) + " ms; killed it");
  if (result.out_truncated || result.err_truncated)
    throw Error("credential helper " + program + " wrote more than 1 MiB");
  return result;
}

std::string first_line(std::string_view s) {
  std::size_t start = s.find_first_not_of(" \r\n");
  s.remove_prefix(start == std::string_view::npos ? s.size() : start);
  s = s.substr(0, s.find_first_of("\r\n"));
  if (s.size() > kMaxQuotedStderr) return std::string(s.substr(0, kMaxQuotedStderr)) + "...";
  return std::string(s);
}

bool contains_ci(std::string_view haystack, std::string_view needle) {
  auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
  auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                        [&](char a, char b) { return lower(a) == lower(b); });
  return it != haystack.end();
}

// Asks docker-credential-<name> for the registry's credentials; nullopt when
// it has none. Its stdout may hold secrets, so it is never quoted in errors.
std::optional<Credentials> ask_helper(const std::string& name, const std::string& registry,
                                      std::chrono::milliseconds timeout,
                                      const std::string& origin) {
  // A '/' would make posix_spawnp run a path instead of searching PATH.
  if (name.find('/') != std::string::npos)
    throw Error("invalid credential helper name " + in_quotes(name) + " (" + origin + ")");
  const std::string program = std::string(kHelperPrefix) + name;
  const std::string server_url = helper_server_url(registry);
  ProcessResult run = run_helper_process(program, server_url, timeout, origin);

  if (run.signal != 0)
    throw Error("credential helper " + program + " (" + origin + ") was killed by signal " +
                std::to_string(run.signal));
  int code = run.status;
  if (code != 0) {
    // docker-credential-helpers print this on stdout and exit 1.
    if (contains_ci(run.out, kHelperNotFound) || contains_ci(run.err, kHelperNotFound))
      return std::nullopt;
    std::string msg = "credential helper " + program + " (" + origin + ") failed for " +
                      server_url + " with exit status " + std::to_string(code);
    if (std::string line = first_line(run.err); !line.empty()) msg += ": " + line;
    throw Error(msg);
  }
  const std::string what = "the output of credential helper " + program;
  rapidjson::Document doc = json::parse(run.out, what);
  json::require_object(doc, what);
  Credentials c;
  c.username = json::get_string(doc, "Username", what).value_or("");
  c.secret = json::get_string(doc, "Secret", what).value_or("");
  c.source = program;
  if (c.secret.empty()) return std::nullopt;  // some helpers answer {} for "none"
  if (c.username == kTokenUser) {
    c.identity_token = true;
    c.username.clear();
  }
  return c;
}

// ---- config files ------------------------------------------------------------

// Decodes one "auths" entry; nullopt when it holds nothing usable (docker
// writes {} for hosts whose secret lives in a credsStore).
std::optional<Credentials> decode_entry(const rapidjson::Value& entry, const fs::path& path,
                                        const std::string& key) {
  const std::string what = path.string() + " (auths entry " + in_quotes(key) + ")";
  json::require_object(entry, what);
  auto auth = json::get_string(entry, "auth", what);
  auto username = json::get_string(entry, "username", what);
  auto password = json::get_string(entry, "password", what);
  auto token = json::get_string(entry, "identitytoken", what);

  Credentials c;
  c.source = path.string();
  if (auth && !auth->empty()) {
    std::optional<std::string> decoded = decode_base64(*auth);
    if (!decoded) throw Error("invalid " + what + ": \"auth\" is not valid base64");
    std::size_t colon = decoded->find(':');
    if (colon == std::string::npos)
      throw Error("invalid " + what + ": \"auth\" does not decode to \"user:password\"");
    c.username = decoded->substr(0, colon);
    c.secret = decoded->substr(colon + 1);
  } else if (username || password) {
    c.username = username.value_or("");
    c.secret = password.value_or("");
  }
  if (token && !token->empty()) {
    c.identity_token = true;
    c.secret = *token;
  }
  if (c.empty()) return std::nullopt;
  return c;
}

// Repo-scoped keys ("host/ns/repo") that cover the repository, longest first.
std::vector<std::string> repo_scoped_keys(const rapidjson::Value& auths,
                                          const std::string& registry,
                                          const std::string& repository,
                                          const std::vector<std::string>& host_level) {
  std::vector<std::string> matches;
  if (repository.empty()) return matches;
  for (const auto& m : auths.GetObject()) {
    std::string key(m.name.GetString(), m.name.GetStringLength());
    if (std::find(host_level.begin(), host_level.end(), key) != host_level.end()) continue;
    for (const std::string& alias : host_aliases(registry)) {
      if (key.size() <= alias.size() + 1 || key.compare(0, alias.size(), alias) != 0 ||
          key[alias.size()] != '/')
        continue;
      std::string_view scope = std::string_view(key).substr(alias.size() + 1);
      if (scope.ends_with('/')) scope.remove_suffix(1);
      // Whole path components only: "ns/app" must not cover "ns/application".
      bool covers = repository == scope ||
                    (repository.size() > scope.size() && repository.starts_with(scope) &&
                     repository[scope.size()] == '/');
      if (!scope.empty() && covers) matches.push_back(key);
    }
  }
  std::stable_sort(matches.begin(), matches.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return matches;
}

// Credentials for the registry from one file; nullopt when it has none.
// `required`: a missing file is an error (--authfile), not a skip.
std::optional<Credentials> lookup_in_file(const fs::path& path, const std::string& registry,
                                          const std::string& repository,
                                          std::chrono::milliseconds timeout, bool required) {
  std::optional<std::string> text = read_if_exists(path);
  if (!text) {
    if (required) throw Error("cannot open --authfile " + path.string() + ": no such file");
    return std::nullopt;
  }
  // `touch auth.json` leaves an empty file: treat it as "no logins yet".
  if (blank(*text)) return std::nullopt;
  rapidjson::Document doc = json::parse(*text, path.string());
  json::require_object(doc, path.string());
  const std::vector<std::string> keys = host_keys(registry);

  // 1. A helper named for this host beats everything in the file (docker's rule).
  std::optional<std::string> host_helper;
  if (const rapidjson::Value* helpers = find_member(doc, "credHelpers")) {
    json::require_object(*helpers, path.string() + " (\"credHelpers\")");
    for (const std::string& key : keys) {
      if (auto name = json::get_string(*helpers, key.c_str(), path.string() + " (\"credHelpers\")");
          name && !name->empty()) {
        host_helper = *name;
        break;
      }
    }
  }
  if (host_helper) {
    auto c = ask_helper(*host_helper, registry, timeout,
                        "credHelpers " + in_quotes(registry) + " in " + path.string());
    if (c) return c;
  }

  // 2. An entry written into the file: repo-scoped keys first, then the host.
  if (const rapidjson::Value* auths = find_member(doc, "auths")) {
    json::require_object(*auths, path.string() + " (\"auths\")");
    std::vector<std::string> candidates = repo_scoped_keys(*auths, registry, repository, keys);
    candidates.insert(candidates.end(), keys.begin(), keys.end());
    for (const std::string& key : candidates) {
      const rapidjson::Value* entry = find_member(*auths, key);
      if (entry == nullptr) continue;
      if (auto c = decode_entry(*entry, path, key)) return c;
    }
  }

  // 3. The default store, for hosts without their own helper. It runs after
  // the inline entries so a file that has the secret needs no helper at all.
  if (!host_helper) {
    if (auto store = json::get_string(doc, "credsStore", path.string()); store && !store->empty())
      return ask_helper(*store, registry, timeout, "credsStore in " + path.string());
  }
  return std::nullopt;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

}  // namespace

struct Keychain::Cache {
  std::mutex mutex;
  std::map<std::pair<std::string, std::string>, Credentials> answers;
};

Keychain::Keychain(KeychainOptions options)
    : options_(std::move(options)), cache_(std::make_unique<Cache>()) {
  if (options_.explicit_creds) {
    if (options_.explicit_creds->source.empty()) options_.explicit_creds->source = "--creds";
    return;
  }
  if (!options_.authfile.empty()) {
    files_.emplace_back(options_.authfile);
    authfile_required_ = true;
    return;
  }
  const char* user = std::getenv("DOCKLESS_USERNAME");
  const char* pass = std::getenv("DOCKLESS_PASSWORD");
  if (user != nullptr && pass != nullptr) {
    if (*user == '\0') throw UsageError("DOCKLESS_USERNAME is set but empty");
    env_creds_ = Credentials{user, pass, false, "$DOCKLESS_USERNAME/$DOCKLESS_PASSWORD"};
    return;
  }
  // Half a pair is a mistake; searching on would hide it behind a 401.
  if (user != nullptr) throw UsageError("DOCKLESS_USERNAME is set but DOCKLESS_PASSWORD is not");
  if (pass != nullptr) throw UsageError("DOCKLESS_PASSWORD is set but DOCKLESS_USERNAME is not");

  auto add = [this](fs::path p) {
    if (std::find(files_.begin(), files_.end(), p) == files_.end()) files_.push_back(std::move(p));
  };
  const std::string home = env("HOME");
  if (std::string f = env("REGISTRY_AUTH_FILE"); !f.empty()) add(f);
  if (std::string run = env("XDG_RUNTIME_DIR"); !run.empty())
    add(fs::path(run) / "containers" / "auth.json");
  if (!home.empty()) add(fs::path(home) / ".config" / "containers" / "auth.json");
  if (std::string docker = env("DOCKER_CONFIG"); !docker.empty())
    add(fs::path(docker) / "config.json");
  else if (!home.empty())
    add(fs::path(home) / ".docker" / "config.json");
}

Keychain::~Keychain() = default;
Keychain::Keychain(Keychain&&) noexcept = default;
Keychain& Keychain::operator=(Keychain&&) noexcept = default;

Credentials Keychain::lookup(const std::string& registry, const std::string& repository) const {
  if (options_.explicit_creds) return *options_.explicit_creds;
  if (env_creds_) return *env_creds_;

  const std::string host = is_docker_hub(registry) ? std::string(kDockerHub) : registry;
  // Held while searching: helpers run one at a time (a gpg prompt at most once).
  std::lock_guard lock(cache_->mutex);
  auto key = std::make_pair(host, repository);
  if (auto it = cache_->answers.find(key); it != cache_->answers.end()) return it->second;

  Credentials found;
  for (const fs::path& file : files_) {
    if (auto c = lookup_in_file(file, host, repository, options_.helper_timeout,
                                authfile_required_)) {
      found = std::move(*c);
      break;
    }
  }
  cache_->answers.emplace(std::move(key), found);
  return found;
}

Credentials parse_creds(std::string_view text) {
  // The text is a secret: messages describe it, never quote it.
  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos)
    throw UsageError("--creds must be USER:PASSWORD (no ':' found)");
  if (colon == 0) throw UsageError("--creds must be USER:PASSWORD (the user is empty)");
  Credentials c;
  c.username = std::string(text.substr(0, colon));
  c.secret = std::string(text.substr(colon + 1));
  c.source = "--creds";
  return c;
}

}  // namespace dockless
