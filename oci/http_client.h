// HTTP for the registry client: one request at a time per client, bodies
// streamed both ways. The interface lets unit tests script responses; the
// real implementation is libcurl (CurlHttpClient).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace dockless {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

/// The value of the first header called `name` (case-insensitive).
std::optional<std::string> find_header(const HttpHeaders& headers, std::string_view name);

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  HttpHeaders headers;
  /// A small body held in memory (manifests, token forms).
  std::string body;
  /// A streamed body of body_size bytes instead: called to fill buf, returns
  /// the bytes written (0 only at the end). Used for blob uploads.
  std::function<std::size_t(char* buf, std::size_t size)> body_reader;
  std::uint64_t body_size = 0;
  /// body_reader's size is not known before it ends: the body goes with
  /// chunked transfer encoding (a blob streamed as it is made).
  bool body_size_unknown = false;
  /// Called once before the first body byte of a 2xx answer goes to the
  /// sink, with the status and headers (a resumed download checks 206).
  std::function<void(long status, const HttpHeaders& headers)> on_body_start;
  /// The most bytes a 2xx body held in memory may have (0: kMaxMemoryBody),
  /// so a hostile server cannot fill memory. Error bodies keep their first
  /// kMaxErrorBody bytes and the rest is not read.
  std::uint64_t max_body = 0;
  /// A transfer slower than low_speed_limit bytes/s for low_speed_time
  /// fails (a stalled or trickling server, slowloris): TransportError.
  long low_speed_limit = 1024;
  std::chrono::seconds low_speed_time{30};
  /// The whole request, headers and body, within this (0: no bound). Token
  /// requests have one; blob downloads cannot (their size is unbounded).
  std::chrono::seconds total_timeout{0};
  /// TLS for this request's host.
  bool verify_tls = true;
  std::string extra_ca_pem;  ///< added to the system's CA bundle
  /// On a new connection, not one kept from an earlier request: after an
  /// answer whose body was not the length it said, what is left on that
  /// connection is not the start of the next answer.
  bool fresh_connection = false;
};

struct HttpResponse {
  long status = 0;
  HttpHeaders headers;
  /// The body when no sink took it (error bodies, manifests, tokens).
  std::string body;
  std::optional<std::string> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

/// The default bound of an in-memory 2xx body (/v2/, token answers).
inline constexpr std::uint64_t kMaxMemoryBody = 4 << 20;
/// What is kept of an error (non-2xx) body; the rest is not read.
inline constexpr std::size_t kMaxErrorBody = 64 << 10;
/// The most redirects one request follows.
inline constexpr int kMaxRedirects = 5;

/// A 2xx body held in memory went past its bound: not retried.
class ResponseTooLarge : public Error {
 public:
  using Error::Error;
};

/// A connection-level failure (refused, reset, timeout, TLS): no HTTP status.
/// Retried by the registry client; `tls` ones are not (they won't heal).
class TransportError : public Error {
 public:
  TransportError(const std::string& what, bool tls, bool verification = false,
                 bool timed_out = false)
      : Error(what), tls_(tls), verification_(verification), timed_out_(timed_out) {}
  bool is_tls() const { return tls_; }
  /// The server spoke TLS but its certificate was not trusted.
  bool is_verification() const { return verification_; }
  /// A timeout or a transfer below the low-speed limit.
  bool is_timeout() const { return timed_out_; }

 private:
  bool tls_;
  bool verification_;
  bool timed_out_;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  /// Sends the request; redirects are NOT followed (the caller decides what
  /// credentials a redirect may see). When `body_sink` is set and the status
  /// is 2xx, the body goes to it as it arrives instead of into response.body;
  /// an exception from the sink aborts the transfer and propagates.
  virtual HttpResponse send(const HttpRequest& request,
                            const std::function<void(const char*, std::size_t)>& body_sink) = 0;
};

/// libcurl. Not thread-safe: use one per thread (each keeps its connections).
std::unique_ptr<HttpClient> make_curl_http_client();

/// curl_global_init, once per process, from whichever thread comes first.
void init_libcurl();

}  // namespace dockless
