// URLs as libcurl parses them (its CURLU API): the origin that decides
// where credentials may go, Location headers resolved against the request
// that got them (distribution answers relative ones with
// `http.relativeurls: true`), and query parameters added to upload URLs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

typedef struct Curl_URL CURLU;

namespace dockless {

/// An absolute URL, owned CURLU handle.
class Url {
 public:
  /// Nullopt when `text` is not an absolute URL.
  static std::optional<Url> parse(const std::string& text);
  Url(const Url& other);
  Url(Url&& other) noexcept;
  Url& operator=(Url other) noexcept;
  ~Url();

  std::string str() const;
  /// "scheme://host[:port]", never a user or password: for same-origin
  /// checks and for messages.
  std::string origin() const;
  /// "host[:port]", lowercased ("[::1]:5000"); the port only when written.
  std::string host_port() const;
  /// Moves to `reference` (absolute, "//host/p", "/p" or "p?q") as a
  /// browser follows a link from here; false when it cannot be resolved.
  bool resolve(const std::string& reference);
  /// Adds "name=value" to the query as given (escape values first).
  void append_query(const std::string& param);

 private:
  explicit Url(CURLU* handle) : handle_(handle) {}
  std::string part(int which) const;
  CURLU* handle_;
};

/// `location` resolved against the URL of the request that got it; kept as
/// it is when either cannot be parsed.
std::string resolve_url(const std::string& base, const std::string& location);

/// Url::origin() of a URL, or "" when it is none.
std::string url_origin(const std::string& url);

/// `url` with "name=value" added to its query ('?' or '&').
std::string with_query(const std::string& url, const std::string& param);

/// Percent-encodes all but RFC 3986's unreserved characters, for query
/// values and form fields (curl_easy_escape).
std::string url_escape(std::string_view text);

}  // namespace dockless
