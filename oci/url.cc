#include "oci/url.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <new>
#include <utility>

#include "base/error.h"
#include "oci/http_client.h"

namespace dockless {

namespace {

/// Registry URLs are http(s), but a token realm may name any scheme.
constexpr unsigned kParseFlags = CURLU_NON_SUPPORT_SCHEME;

struct CurlFree {
  void operator()(char* p) const { curl_free(p); }
};
using CurlString = std::unique_ptr<char, CurlFree>;

}  // namespace

std::optional<Url> Url::parse(const std::string& text) {
  CURLU* handle = curl_url();
  if (handle == nullptr) throw std::bad_alloc();
  Url url(handle);  // owns it from here
  if (curl_url_set(handle, CURLUPART_URL, text.c_str(), kParseFlags) != CURLUE_OK) return std::nullopt;
  return url;
}

Url::Url(const Url& other) : handle_(curl_url_dup(other.handle_)) {
  if (handle_ == nullptr) throw std::bad_alloc();
}

Url::Url(Url&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}

Url& Url::operator=(Url other) noexcept {
  std::swap(handle_, other.handle_);
  return *this;
}

Url::~Url() {
  if (handle_ != nullptr) curl_url_cleanup(handle_);
}

std::string Url::part(int which) const {
  char* raw = nullptr;
  if (curl_url_get(handle_, static_cast<CURLUPart>(which), &raw, 0) != CURLUE_OK) return "";
  CurlString owned(raw);
  return raw == nullptr ? "" : std::string(raw);
}

std::string Url::str() const { return part(CURLUPART_URL); }

std::string Url::host_port() const {
  std::string port = part(CURLUPART_PORT);  // only when the URL names one
  std::string host = part(CURLUPART_HOST) + (port.empty() ? "" : ":" + port);
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return host;
}

std::string Url::origin() const { return part(CURLUPART_SCHEME) + "://" + host_port(); }

bool Url::resolve(const std::string& reference) {
  CURLU* next = curl_url_dup(handle_);
  if (next == nullptr) throw std::bad_alloc();
  Url candidate(next);
  if (curl_url_set(next, CURLUPART_URL, reference.c_str(), kParseFlags) != CURLUE_OK) return false;
  std::swap(handle_, candidate.handle_);
  return true;
}

void Url::append_query(const std::string& param) {
  // Resolved as a query-only reference, which keeps the path: libcurl keeps
  // escapes as written there, where setting the query part would lowercase
  // them ("%3A" -> "%3a") and change the bytes a registry has always seen.
  std::string query = part(CURLUPART_QUERY);
  if (!resolve("?" + (query.empty() ? "" : query + "&") + param))
    throw Error("cannot add a query parameter to a URL");
}

std::string resolve_url(const std::string& base, const std::string& location) {
  std::optional<Url> url = Url::parse(base);
  if (!url || !url->resolve(location)) return location;
  return url->str();
}

std::string url_origin(const std::string& url) {
  std::optional<Url> parsed = Url::parse(url);
  return parsed ? parsed->origin() : "";
}

std::string with_query(const std::string& url, const std::string& param) {
  std::optional<Url> parsed = Url::parse(url);
  // Not a URL: leave it for libcurl to refuse when it is requested.
  if (!parsed) return url + "?" + param;
  parsed->append_query(param);
  return parsed->str();
}

std::string url_escape(std::string_view text) {
  // A handle only because curl before 7.82 wants one here.
  init_libcurl();
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) throw Error("cannot initialise libcurl");
  CurlString out(curl_easy_escape(curl.get(), text.data(), static_cast<int>(text.size())));
  if (!out) throw std::bad_alloc();
  return std::string(out.get());
}

}  // namespace dockless
