// Registry credentials: where the registry client finds a user name and
// password (or identity token) for a host. Sources and their order follow
// skopeo/podman (containers auth.json first) and then docker (config.json,
// credential helpers), so a machine that already logged in with either works.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dockless {

/// What to authenticate with. Never print `secret`; `source` is safe to show.
struct Credentials {
  std::string username;
  std::string secret;           ///< password, or the identity token when identity_token
  bool identity_token = false;  ///< docker's "identitytoken" / helper Username "<token>":
                                ///< use the OAuth2 refresh_token grant, not basic auth
  /// Where they came from, for messages: "--creds", "$DOCKLESS_USERNAME",
  /// "/root/.docker/config.json", "docker-credential-pass". Empty when anonymous.
  std::string source;

  /// True for "anonymous": no user and no secret.
  bool empty() const { return username.empty() && secret.empty(); }
};

struct KeychainOptions {
  std::optional<Credentials> explicit_creds;  ///< --creds USER:PASS: used for every registry
  std::string authfile;                       ///< --authfile FILE: the only file searched
  /// How long a docker-credential-* helper may take before it is killed.
  /// Long enough for a gpg pinentry prompt; tests set it short.
  std::chrono::milliseconds helper_timeout{30000};
};

/// Looks credentials up, in this order:
///   1. explicit_creds (--creds);
///   2. else, when authfile is set, that file only (it must exist);
///   3. else DOCKLESS_USERNAME + DOCKLESS_PASSWORD (setting only one is a UsageError);
///   4. else the first of these files with an entry for the host:
///      $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
///      $HOME/.config/containers/auth.json, then $DOCKER_CONFIG/config.json
///      (or $HOME/.docker/config.json when DOCKER_CONFIG is unset).
/// Environment variables are read once, by the constructor. Missing files in
/// the default search are skipped; unreadable or malformed ones are an Error
/// that names the file and never contains a secret.
///
/// Within one file: credHelpers[host] first; then the "auths" entry (the
/// longest repo-scoped "host/ns/repo" key that prefixes the repository, then
/// the host's key forms); then credsStore, unless credHelpers named a helper
/// for the host. A helper answering "credentials not found", an empty entry
/// ({}), or an empty file means "nothing here": the search goes on.
///
/// lookup() is thread-safe and caches its answer per (registry, repository),
/// so a helper runs at most once per host and repository for this Keychain.
class Keychain {
 public:
  /// Throws UsageError when only one of DOCKLESS_USERNAME/DOCKLESS_PASSWORD is set.
  explicit Keychain(KeychainOptions options);
  ~Keychain();
  Keychain(Keychain&&) noexcept;
  Keychain& operator=(Keychain&&) noexcept;
  Keychain(const Keychain&) = delete;
  Keychain& operator=(const Keychain&) = delete;

  /// Credentials for a registry host ("localhost:5000", "docker.io", "ghcr.io");
  /// empty() = anonymous. "index.docker.io" and "registry-1.docker.io" mean
  /// docker.io. `repository` ("library/python") lets repo-scoped auth.json keys
  /// ("docker.io/library/python") win over the host key.
  Credentials lookup(const std::string& registry, const std::string& repository = "") const;

  /// The files searched, in order (empty when explicit or environment
  /// credentials are used). For messages such as "no credentials for X in ...".
  const std::vector<std::filesystem::path>& files() const { return files_; }

 private:
  struct Cache;

  KeychainOptions options_;
  std::optional<Credentials> env_creds_;
  std::vector<std::filesystem::path> files_;
  bool authfile_required_ = false;  // --authfile must exist; default files may not
  std::unique_ptr<Cache> cache_;    // behind a pointer so Keychain stays movable
};

/// Parses --creds "USER:PASS" (the password may contain ':'; it may be empty).
/// Throws UsageError without a ':' or with an empty user; the message never
/// repeats the text. The result's source is "--creds".
Credentials parse_creds(std::string_view text);

}  // namespace dockless
