#include "oci/registry_transport.h"

#include <openssl/evp.h>

#include <algorithm>
#include <thread>

#include "base/file_util.h"
#include "oci/json_util.h"
#include "oci/url.h"

namespace dockless {

namespace {

std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

/// The host part of "host[:port]" or "[v6]:port".
std::string host_part(const std::string& host_port) {
  if (!host_port.empty() && host_port[0] == '[') return host_port.substr(0, host_port.find(']') + 1);
  auto colon = host_port.find(':');
  return colon == std::string::npos ? host_port : host_port.substr(0, colon);
}

bool is_loopback(const std::string& host_port) {
  std::string h = host_part(host_port);
  return h == "localhost" || h == "[::1]" || h.rfind("127.", 0) == 0;
}

std::string join_scopes(std::vector<std::string> scopes) {
  std::sort(scopes.begin(), scopes.end());
  scopes.erase(std::unique(scopes.begin(), scopes.end()), scopes.end());
  std::string key;
  for (const auto& s : scopes) key += (key.empty() ? "" : " ") + s;
  return key;
}

bool is_redirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

bool is_retryable_status(long status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

std::string describe_registry_error(const HttpResponse& r) {
  std::string out = std::to_string(r.status);
  if (r.status == 401) {
    // Authenticated, but the token lacks what the operation needs (a denied push).
    if (auto h = r.header("WWW-Authenticate"))
      if (auto c = parse_auth_challenge(*h); c && c->param("error") == "insufficient_scope")
        return out + " DENIED: insufficient scope: access " + c->param("scope") +
               " was not granted to these credentials";
  }
  try {
    if (!r.body.empty() && r.body[0] == '{') {
      rapidjson::Document doc = json::parse(r.body, "registry error");
      auto errors = doc.FindMember("errors");
      if (errors != doc.MemberEnd() && errors->value.IsArray() && !errors->value.Empty()) {
        const auto& e = errors->value[0];
        if (e.IsObject()) {
          auto code = json::get_string(e, "code", "registry error");
          auto msg = json::get_string(e, "message", "registry error");
          if (code) out += " " + *code;
          if (msg && !msg->empty()) out += ": " + *msg;
          return out;
        }
      }
    }
  } catch (const Error&) {
  }
  switch (r.status) {
    case 400: return out + " Bad Request";
    case 401: return out + " Unauthorized";
    case 403: return out + " Forbidden";
    case 404: return out + " Not Found";
    case 405: return out + " Method Not Allowed";
    case 416: return out + " Range Not Satisfiable";
    case 429: return out + " Too Many Requests";
    case 500: return out + " Internal Server Error";
    case 502: return out + " Bad Gateway";
    case 503: return out + " Service Unavailable";
    case 504: return out + " Gateway Timeout";
    default: return out;
  }
}

RegistryTransport::RegistryTransport(std::string registry, RegistryOptions options,
                                     const Keychain& keychain)
    : registry_(std::move(registry)),
      host_(registry_ == "docker.io" ? "registry-1.docker.io" : registry_),
      options_(std::move(options)),
      keychain_(keychain) {}

RegistryTransport::~RegistryTransport() = default;

bool RegistryTransport::insecure() const {
  return std::find(options_.insecure_hosts.begin(), options_.insecure_hosts.end(), registry_) !=
         options_.insecure_hosts.end();
}

bool RegistryTransport::may_use_http() const { return insecure() || is_loopback(host_); }

void RegistryTransport::apply_tls(HttpRequest& request) const {
  std::optional<Url> url = Url::parse(request.url);
  std::string host = url ? url->host_port() : "";
  bool host_insecure = std::find(options_.insecure_hosts.begin(), options_.insecure_hosts.end(),
                                 host) != options_.insecure_hosts.end() ||
                       (host == host_ && insecure());
  request.verify_tls = !host_insecure;
  request.extra_ca_pem = options_.ca_pem;
  request.low_speed_time = options_.stall_timeout;
}

std::unique_ptr<HttpClient> RegistryTransport::acquire_http() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_http_.empty()) {
      auto c = std::move(idle_http_.back());
      idle_http_.pop_back();
      return c;
    }
  }
  return options_.http_factory ? options_.http_factory() : make_curl_http_client();
}

void RegistryTransport::release_http(std::unique_ptr<HttpClient> client) {
  std::lock_guard<std::mutex> lock(mu_);
  idle_http_.push_back(std::move(client));
}

std::string RegistryTransport::base_url() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!base_url_.empty()) return base_url_;
  }
  ping();
  std::lock_guard<std::mutex> lock(mu_);
  return base_url_;
}

void RegistryTransport::ping() {
  std::vector<std::string> schemes = {"https"};
  if (may_use_http()) schemes.push_back("http");
  // The hint only reorders the schemes this host may use anyway; an HTTP
  // answer counts only when it is a registry's (200 or 401), so a host that
  // has moved to TLS is still found.
  std::filesystem::path hint;
  if (may_use_http() && !options_.scheme_hints.empty()) {
    std::string name = host_;
    std::replace(name.begin(), name.end(), ':', '_');
    std::replace(name.begin(), name.end(), '/', '_');
    hint = options_.scheme_hints / name;
    std::error_code ec;
    if (std::filesystem::exists(hint, ec)) std::swap(schemes[0], schemes[1]);
  }
  auto remember = [&hint](const std::string& scheme) {
    if (hint.empty()) return;
    std::error_code ec;
    if (scheme == "http") {
      std::filesystem::create_directories(hint.parent_path(), ec);
      if (!std::filesystem::exists(hint, ec)) write_file_atomic(hint, "http\n");
    } else {
      std::filesystem::remove(hint, ec);
    }
  };
  std::string last_error;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    bool tls_only_failure = true;
    for (const auto& scheme : schemes) {
      HttpRequest req;
      req.url = scheme + "://" + host_ + "/v2/";
      apply_tls(req);
      try {
        auto http = acquire_http();
        HttpResponse r = http->send(req, nullptr);
        release_http(std::move(http));
        if (scheme == "http" && scheme != schemes.back() && r.status != 200 && r.status != 401) {
          last_error = "http: status " + std::to_string(r.status);
          continue;  // remembered HTTP, but this is no registry's answer: try TLS
        }
        try {
          remember(scheme);
        } catch (const Error&) {
          // only a hint
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (r.status == 401)
          if (auto h = r.header("WWW-Authenticate")) challenge_ = parse_auth_challenge(*h);
        base_url_ = scheme + "://" + host_;
        return;
      } catch (const TransportError& e) {
        last_error = scheme + ": " + e.what();
        if (!e.is_tls()) tls_only_failure = false;
        // A server that speaks TLS with an untrusted certificate must not be
        // retried in cleartext: that would hide the problem and downgrade.
        if (e.is_verification())
          throw Error("registry " + registry_ + ": TLS certificate verification failed (" +
                      e.what() + "); trust its CA with --ca-cert FILE, or use --insecure-registry " +
                      registry_);
      }
    }
    // A certificate problem will not heal by waiting.
    if (tls_only_failure || attempt == options_.max_attempts) break;
    wait_before_retry(attempt, "connect", last_error, nullptr);
  }
  throw Error("registry " + registry_ + ": cannot connect (" + last_error + ")" +
              (may_use_http() ? "" : "; for a plain-HTTP or self-signed registry use --insecure-registry " + registry_ + " or --ca-cert"));
}

RegistryTransport::Token RegistryTransport::fetch_token(const AuthChallenge& challenge,
                                                        const Credentials& creds,
                                                        const std::vector<std::string>& scopes) {
  std::string realm = challenge.param("realm");
  if (realm.empty()) throw Error("registry " + registry_ + ": Bearer challenge without a realm");
  std::string query = "service=" + url_escape(challenge.param("service"));
  for (const auto& s : scopes) query += "&scope=" + url_escape(s);

  HttpRequest req;
  if (creds.identity_token) {
    // OAuth2 refresh-token grant, as docker does with an identity token.
    req.method = "POST";
    req.url = realm;
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    req.body = "grant_type=refresh_token&client_id=dockless&refresh_token=" +
               url_escape(creds.secret) + "&" + query;
  } else {
    req.url = with_query(realm, query);
    if (!creds.empty())
      req.headers.emplace_back("Authorization", "Basic " + base64(creds.username + ":" + creds.secret));
  }
  apply_tls(req);
  req.total_timeout = options_.token_timeout;
  HttpResponse r = send_token_request(req);
  std::string who = creds.empty() ? "anonymous" : "credentials from " + creds.source;
  if (r.status == 401 || r.status == 403)
    throw RegistryError("registry " + registry_ + ": authentication failed (" + who +
                            "): token server answered " + describe_registry_error(r),
                        r.status, "UNAUTHORIZED");
  if (r.status != 200)
    throw RegistryError("registry " + registry_ + ": token server answered " +
                            describe_registry_error(r),
                        r.status, "");
  rapidjson::Document doc = json::parse(r.body, "token response from " + url_origin(realm));
  if (!doc.IsObject()) throw Error("registry " + registry_ + ": token response is not an object");
  auto token = json::get_string(doc, "token", "token response");
  if (!token || token->empty()) token = json::get_string(doc, "access_token", "token response");
  if (!token || token->empty())
    throw Error("registry " + registry_ + ": token response has neither token nor access_token");
  std::int64_t expires_in = 60;
  auto it = doc.FindMember("expires_in");
  if (it != doc.MemberEnd() && it->value.IsNumber()) expires_in = static_cast<std::int64_t>(it->value.GetDouble());
  if (expires_in < 1) expires_in = 60;
  // Renew a little early so a token does not expire on its way.
  auto lifetime = std::chrono::seconds(expires_in > 10 ? expires_in - 5 : expires_in);
  return Token{*token, std::chrono::steady_clock::now() + lifetime};
}

HttpResponse RegistryTransport::send_token_request(const HttpRequest& req) {
  const std::string server = "registry " + registry_ + ": token server " + url_origin(req.url) + ": ";
  for (int attempt = 1;; ++attempt) {
    try {
      auto http = acquire_http();
      HttpResponse r = http->send(req, nullptr);
      release_http(std::move(http));
      if (!is_retryable_status(r.status) || attempt >= options_.max_attempts) return r;
      wait_before_retry(attempt, "get token", describe_registry_error(r), &r);
    } catch (const TransportError& e) {
      // A token server that lets a request time out is not worth waiting on again.
      if (e.is_tls() || e.is_timeout() || attempt >= options_.max_attempts)
        throw Error(server + e.what());
      wait_before_retry(attempt, "get token", e.what(), nullptr);
    } catch (const ResponseTooLarge& e) {
      throw Error(server + e.what());
    }
  }
}

std::string RegistryTransport::authorization(const std::vector<std::string>& scopes,
                                             bool force_refresh) {
  AuthChallenge challenge;
  Credentials creds;
  std::string key = join_scopes(scopes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!challenge_) return "";
    if (!creds_) creds_ = keychain_.lookup(registry_);
    if (challenge_->scheme == "basic") {
      if (creds_->empty() || creds_->identity_token) return "";
      return "Basic " + base64(creds_->username + ":" + creds_->secret);
    }
    auto it = tokens_.find(key);
    if (!force_refresh && it != tokens_.end() &&
        it->second.expires > std::chrono::steady_clock::now())
      return "Bearer " + it->second.value;
    challenge = *challenge_;
    creds = *creds_;
  }
  // Fetched without the lock: the token request needs an HTTP handle too.
  Token t = fetch_token(challenge, creds, scopes);
  std::lock_guard<std::mutex> lock(mu_);
  tokens_[key] = t;
  return "Bearer " + t.value;
}

bool RegistryTransport::take_challenge(const HttpResponse& r, std::vector<std::string>& scopes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto h = r.header("WWW-Authenticate"))
    if (auto c = parse_auth_challenge(*h)) challenge_ = c;
  if (!challenge_) return false;
  if (challenge_->scheme == "basic") {
    if (!creds_) creds_ = keychain_.lookup(registry_);
    return !creds_->empty() && !creds_->identity_token;
  }
  for (const auto& s : challenge_->scopes())
    if (std::find(scopes.begin(), scopes.end(), s) == scopes.end()) scopes.push_back(s);
  return true;
}

HttpResponse RegistryTransport::send_with_redirects(
    HttpRequest request, const std::string& auth,
    const std::function<void(const char*, std::size_t)>& sink) {
  const std::string origin = url_origin(request.url);
  const HttpHeaders base_headers = request.headers;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    request.headers = base_headers;
    // Credentials go to the registry's own origin only, never to a redirect
    // target elsewhere (a presigned storage URL carries its own).
    if (!auth.empty() && url_origin(request.url) == origin)
      request.headers.emplace_back("Authorization", auth);
    apply_tls(request);
    auto http = acquire_http();
    HttpResponse r = http->send(request, sink);
    release_http(std::move(http));
    auto location = r.header("Location");
    if (is_redirect(r.status) && location && (request.method == "GET" || request.method == "HEAD")) {
      request.url = resolve_url(request.url, *location);
      continue;
    }
    return r;
  }
  throw Error("registry " + registry_ + ": more than " + std::to_string(kMaxRedirects) +
              " redirects (a redirect loop?) from " + url_origin(request.url));
}

HttpResponse RegistryTransport::send_once(std::vector<std::string> const& scopes_in,
                                          HttpRequest request,
                                          const std::function<void(const char*, std::size_t)>& sink) {
  std::vector<std::string> scopes = scopes_in;
  HttpResponse r = send_with_redirects(request, authorization(scopes, false), sink);
  if (r.status == 401 && take_challenge(r, scopes))
    r = send_with_redirects(request, authorization(scopes, true), sink);
  return r;
}

HttpResponse RegistryTransport::send(const std::string& what,
                                     const std::vector<std::string>& scopes_in,
                                     const std::function<HttpRequest(const std::string&)>& make,
                                     bool retry) {
  std::vector<std::string> scopes = scopes_in;
  const int max_attempts = retry ? options_.max_attempts : 1;
  std::string base = base_url();
  bool reauthenticated = false;
  bool force_refresh = false;
  for (int attempt = 1;; ++attempt) {
    HttpResponse r;
    try {
      r = send_with_redirects(make(base), authorization(scopes, force_refresh), nullptr);
    } catch (const ResponseTooLarge& e) {
      throw Error("registry " + registry_ + ": " + what + ": " + e.what());
    } catch (const TransportError& e) {
      if (e.is_tls() || attempt >= max_attempts)
        throw TransportError("registry " + registry_ + ": " + what + ": " + e.what(), e.is_tls());
      wait_before_retry(attempt, what, e.what(), nullptr);
      continue;
    }
    force_refresh = false;
    if (r.status == 401 && !reauthenticated && take_challenge(r, scopes)) {
      // A first challenge, or an expired token: authenticate and try again
      // without counting it as a failure.
      reauthenticated = true;
      force_refresh = true;
      --attempt;
      continue;
    }
    if (is_retryable_status(r.status) && attempt < max_attempts) {
      wait_before_retry(attempt, what, describe_registry_error(r), &r);
      continue;
    }
    return r;
  }
}

void RegistryTransport::wait_before_retry(int attempt, const std::string& what,
                                          const std::string& why, const HttpResponse* failed) {
  auto delay = options_.backoff * (1 << std::min(attempt - 1, 10));
  if (failed != nullptr) {
    if (auto ra = failed->header("Retry-After")) {
      // Seconds form only; an HTTP-date falls back to our own backoff.
      if (!ra->empty() && ra->find_first_not_of("0123456789") == std::string::npos && ra->size() < 7)
        delay = std::chrono::milliseconds(std::stoll(*ra) * 1000);
    }
  }
  delay = std::min(delay, options_.max_delay);
  if (options_.on_retry) {
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.1f", static_cast<double>(delay.count()) / 1000.0);
    options_.on_retry("registry " + registry_ + ": " + what + ": " + why + "; retrying in " + secs +
                      " s (try " + std::to_string(attempt + 1) + " of " +
                      std::to_string(options_.max_attempts) + ")");
  }
  if (options_.sleep)
    options_.sleep(delay);
  else
    std::this_thread::sleep_for(delay);
}

}  // namespace dockless
