// A scripted stand-in for the registry's HTTP: tests say what each request
// (method + URL, optionally a header) is answered with, and afterwards read
// back every request that was sent. Plugged in through
// RegistryOptions::http_factory, so the whole registry stack above
// HttpClient runs unchanged and without a network.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/http_client.h"

namespace dockless::test {

/// One request as the fake received it.
struct RecordedRequest {
  std::string method, url;
  HttpHeaders headers;
  /// The body as sent: in-memory or drained from body_reader.
  std::string body;
  bool fresh_connection = false;
  std::optional<std::string> header(std::string_view name) const { return find_header(headers, name); }
};

/// What the fake answers.
struct FakeResponse {
  long status = 200;
  HttpHeaders headers;
  std::string body;
  /// Set: the connection is reset after this many body bytes reached the
  /// caller (0: before any answer), as libcurl reports it: TransportError.
  std::optional<std::size_t> reset_after;
  /// Set: no answer within the request's time limits (TransportError, timed out).
  bool time_out = false;

  /// No answer in time, as libcurl reports a timeout.
  static FakeResponse timeout() {
    FakeResponse r;
    r.time_out = true;
    return r;
  }

  /// A connection reset before any answer.
  static FakeResponse reset() {
    FakeResponse r;
    r.reset_after = 0;
    return r;
  }
};

using FakeHandler = std::function<FakeResponse(const RecordedRequest&)>;

/// One scripted answer; the setters chain.
struct FakeRoute {
  std::string method, url;  ///< url exact (query included), or a prefix ending in '*'
  FakeHandler handler;
  int uses_left = -1;       ///< -1: unlimited
  std::optional<std::string> header_name, header_value;  ///< value nullopt: header absent

  /// Answers only the next `n` matching requests.
  FakeRoute& times(int n) {
    uses_left = n;
    return *this;
  }
  /// Answers only requests whose header `name` equals `value`.
  FakeRoute& with_header(std::string name, std::string value) {
    header_name = std::move(name);
    header_value = std::move(value);
    return *this;
  }
  /// Answers only requests without header `name`.
  FakeRoute& without_header(std::string name) {
    header_name = std::move(name);
    header_value.reset();
    return *this;
  }
  bool matches(const RecordedRequest& r) const;
};

class FakeHttp {
 public:
  /// Routes are tried in the order added; a used-up route is skipped. A
  /// request no route takes is answered 404 and listed by unmatched().
  FakeRoute& on(std::string method, std::string url, FakeHandler handler);
  FakeRoute& on(std::string method, std::string url, FakeResponse response);

  /// For RegistryOptions::http_factory: every client made answers from this
  /// script (thread-safe; handlers run outside the fake's lock).
  std::function<std::unique_ptr<HttpClient>()> factory();

  /// Every request so far, in the order received.
  std::vector<RecordedRequest> requests() const;
  /// Those with this method whose URL starts with `url_prefix`.
  std::vector<RecordedRequest> requests(std::string_view method, std::string_view url_prefix) const;
  std::size_t count(std::string_view method, std::string_view url_prefix) const;
  /// "METHOD URL" of requests no route answered.
  std::vector<std::string> unmatched() const;
  /// The most requests that were being answered at the same time.
  int max_in_flight() const;

  HttpResponse send(const HttpRequest& request,
                    const std::function<void(const char*, std::size_t)>& sink);

 private:
  mutable std::mutex mu_;
  std::deque<FakeRoute> routes_;  // deque: on() hands out stable references
  std::vector<RecordedRequest> requests_;
  std::vector<std::string> unmatched_;
  int in_flight_ = 0, max_in_flight_ = 0;
};

/// Answers a GET for `bytes` honouring "Range: bytes=N-" (206 with
/// Content-Range), else 200 with all of them.
FakeResponse serve_bytes(const std::string& bytes, const RecordedRequest& request);

}  // namespace dockless::test
