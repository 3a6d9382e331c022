// How dockless talks HTTP to one registry: scheme discovery (ping), TLS per
// host, authentication (anonymous, Basic, Bearer tokens per scope), redirects
// that never carry credentials to another origin, and retries with backoff.
// The distribution API operations sit on top (registry_client.h).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "oci/auth_challenge.h"
#include "oci/http_client.h"
#include "oci/keychain.h"

namespace dockless {

/// Settings shared by every registry a command talks to.
struct RegistryOptions {
  /// host[:port] allowed plain HTTP or unverified TLS.
  std::vector<std::string> insecure_hosts;
  /// PEM of --ca-cert, trusted in addition to the system bundle.
  std::string ca_pem;
  /// Tries per request for retryable failures (408, 429, 5xx, network).
  int max_attempts = 4;
  /// First retry delay; doubled each retry.
  std::chrono::milliseconds backoff{1000};
  /// Upper bound of one delay, including a registry's Retry-After.
  std::chrono::milliseconds max_delay{30000};
  /// A transfer slower than 1 KiB/s for this long fails (and is retried
  /// like a reset): a stalled or trickling registry cannot hold a command.
  std::chrono::seconds stall_timeout{30};
  /// A token request, from connect to the last byte, within this; one that
  /// times out is not retried (the registry's token server is not there).
  std::chrono::seconds token_timeout{30};
  /// Where to remember that a host which may use plain HTTP answered only
  /// in plain HTTP, so that later runs ask it in HTTP first instead of
  /// waiting for a failed TLS handshake each time. Empty: never remembered.
  std::filesystem::path scheme_hints;
  /// Told about each retry ("retrying in 2 s: 503 Service Unavailable").
  std::function<void(const std::string&)> on_retry;
  /// Makes the HTTP client for one thread's requests; empty: libcurl. Unit
  /// tests pass a scripted fake (tests/fake_http_client.h).
  std::function<std::unique_ptr<HttpClient>()> http_factory;
  /// Waits out a retry delay; empty: the thread sleeps. Unit tests record
  /// the delay instead of waiting for it.
  std::function<void(std::chrono::milliseconds)> sleep;
};

/// A registry's answer that was not what the operation needed.
class RegistryError : public Error {
 public:
  RegistryError(const std::string& what, long status, std::string code)
      : Error(what), status_(status), code_(std::move(code)) {}
  long status() const { return status_; }
  /// The distribution error code (MANIFEST_UNKNOWN, DENIED, ...) or "".
  const std::string& code() const { return code_; }

 private:
  long status_;
  std::string code_;
};

/// True for statuses worth another try: 408, 429, 500, 502, 503, 504.
bool is_retryable_status(long status);

/// "CODE: message" from a distribution error body, or the HTTP reason.
std::string describe_registry_error(const HttpResponse& r);

class RegistryTransport {
 public:
  RegistryTransport(std::string registry, RegistryOptions options, const Keychain& keychain);
  ~RegistryTransport();

  const std::string& registry() const { return registry_; }
  const RegistryOptions& options() const { return options_; }

  /// "https://host:port" (or http) after a ping; pings on first use.
  std::string base_url();

  /// Sends a request built by `make(base_url)` with credentials for `scopes`
  /// ("repository:NAME:pull,push"), answering auth challenges, following
  /// redirects (GET/HEAD), and retrying retryable failures with backoff.
  /// `make` is called again for every try, so streamed bodies start over.
  /// Non-retryable statuses are returned as they are; the caller decides
  /// what they mean. `what` ("pull manifest app:1") names the operation in
  /// errors. Bodies come back in memory: blob downloads use send_once.
  HttpResponse send(const std::string& what, const std::vector<std::string>& scopes,
                    const std::function<HttpRequest(const std::string& base_url)>& make,
                    bool retry = true);

  /// One try (auth and redirects included, no retry): for callers that
  /// resume themselves, like a blob download continuing with Range.
  HttpResponse send_once(const std::vector<std::string>& scopes, HttpRequest request,
                         const std::function<void(const char*, std::size_t)>& sink = nullptr);

  /// Sleeps before try number `attempt` (1-based) of a retry loop, honouring
  /// Retry-After when the failed response had one; tells options.on_retry.
  void wait_before_retry(int attempt, const std::string& what, const std::string& why,
                         const HttpResponse* failed);

 private:
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point expires;
  };

  void ping();
  bool insecure() const;
  bool may_use_http() const;
  /// Authorization header value for these scopes, fetching a token if needed.
  std::string authorization(const std::vector<std::string>& scopes, bool force_refresh);
  /// Learns from a 401: records its challenge. False when nothing we could
  /// send would do better (no challenge, or Basic without credentials).
  bool take_challenge(const HttpResponse& unauthorized, std::vector<std::string>& scopes);
  Token fetch_token(const AuthChallenge& challenge, const Credentials& creds,
                    const std::vector<std::string>& scopes);
  /// Sends a token request, retrying what may heal (not a timeout).
  HttpResponse send_token_request(const HttpRequest& req);
  HttpResponse send_with_redirects(HttpRequest request, const std::string& auth,
                                   const std::function<void(const char*, std::size_t)>& sink);
  void apply_tls(HttpRequest& request) const;

  /// An HTTP client (libcurl, or options.http_factory's) for the calling
  /// thread's request, returned after use.
  std::unique_ptr<HttpClient> acquire_http();
  void release_http(std::unique_ptr<HttpClient> client);

  std::string registry_;  ///< as in references: "docker.io", "localhost:5000"
  std::string host_;      ///< where requests go: "registry-1.docker.io"
  RegistryOptions options_;
  const Keychain& keychain_;

  std::mutex mu_;  // guards everything below
  std::string base_url_;
  std::optional<AuthChallenge> challenge_;
  std::optional<Credentials> creds_;
  std::map<std::string, Token> tokens_;  // key: sorted scopes joined by ' '
  std::vector<std::unique_ptr<HttpClient>> idle_http_;
};

}  // namespace dockless
