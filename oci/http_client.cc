#include "oci/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>
#include <mutex>

#include <unistd.h>

#include "base/file_util.h"
#include "oci/url.h"

namespace dockless {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string trim(std::string_view s) {
  std::size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  std::size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

/// Where distributions keep their CA bundle: Debian/Ubuntu, Fedora/RHEL,
/// openSUSE, Alpine. libcurl knows only its build host's (Debian's) path,
/// and the packaged dockless (scripts/package.sh) runs on any of them.
constexpr const char* kCaBundles[] = {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                                      "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem"};

/// The first CA bundle of kCaBundles that exists, or nullptr (libcurl's default).
const char* system_ca_file() {
  static const char* found = [] {
    for (const char* p : kCaBundles)
      if (::access(p, R_OK) == 0) return p;
    return static_cast<const char*>(nullptr);
  }();
  return found;
}

/// The system CA bundle plus one extra PEM, cached: libcurl's CAINFO_BLOB
/// replaces the bundle, and --ca-cert must add to it.
const std::string& ca_bundle_with(const std::string& extra_pem) {
  static std::mutex mu;
  static std::string cached_extra, cached_bundle;
  std::lock_guard<std::mutex> lock(mu);
  if (cached_bundle.empty() || cached_extra != extra_pem) {
    std::string system;
    for (const char* p : kCaBundles) {
      try {
        system = read_file(p);
        break;
      } catch (const Error&) {
      }
    }
    cached_extra = extra_pem;
    cached_bundle = system + "\n" + extra_pem;
  }
  return cached_bundle;
}

struct Transfer {
  const HttpRequest* request;
  const std::function<void(const char*, std::size_t)>* sink;
  HttpResponse response;
  CURL* curl;
  std::size_t body_offset = 0;  // for in-memory request bodies
  bool body_started = false;
  bool error_body_cut = false;  // stopped reading a long error body
  std::size_t header_bytes = 0;
  std::exception_ptr error;
};

/// Headers of one answer (all hops of 100 Continue): a hostile server
/// sending them for ever is cut here.
constexpr std::size_t kMaxHeaderBytes = 1 << 20;
constexpr long kStreamBuffer = 1L << 20;  // curl's upper bound is 2 MiB

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  t->header_bytes += line.size();
  if (t->header_bytes > kMaxHeaderBytes) {
    t->error = std::make_exception_ptr(ResponseTooLarge(
        "headers from " + url_origin(t->request->url) + " are larger than " +
        std::to_string(kMaxHeaderBytes) + " bytes"));
    return 0;
  }
  if (line.substr(0, 5) == "HTTP/") {
    t->response.headers.clear();  // a new response (after 100 Continue)
    return size * n;
  }
  auto colon = line.find(':');
  if (colon != std::string_view::npos)
    t->response.headers.emplace_back(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
  return size * n;
}

/// Keeps an in-memory body within its bound: a 2xx one past it is an error,
/// an error body is cut (false: stop reading, the response stands as is).
bool append_bounded(Transfer& t, long status, const char* data, std::size_t len) {
  std::string& body = t.response.body;
  if (status >= 200 && status < 300) {
    std::uint64_t max = t.request->max_body != 0 ? t.request->max_body : kMaxMemoryBody;
    if (body.size() + len > max)
      throw ResponseTooLarge("answer from " + url_origin(t.request->url) + " is larger than " +
                             std::to_string(max) + " bytes");
    body.append(data, len);
    return true;
  }
  body.append(data, std::min(len, kMaxErrorBody - std::min(body.size(), kMaxErrorBody)));
  t.error_body_cut = body.size() >= kMaxErrorBody;
  return !t.error_body_cut;
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  try {
    if (*t->sink && status >= 200 && status < 300) {
      if (!t->body_started) {
        t->body_started = true;
        if (t->request->on_body_start) t->request->on_body_start(status, t->response.headers);
      }
      (*t->sink)(data, len);
    } else if (!append_bounded(*t, status, data, len)) {
      return 0;  // enough of an error body: stop reading it
    }
  } catch (...) {
    t->error = std::current_exception();
    return 0;  // aborts the transfer
  }
  return len;
}

/// Timeouts of one request: a stalled or trickling server cannot hold a
/// transfer for ever.
void set_time_limits(CURL* curl, const HttpRequest& req) {
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, req.low_speed_limit);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(req.low_speed_time.count()));
  if (req.total_timeout.count() > 0)
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(req.total_timeout.count()));
}

std::size_t on_read(char* buf, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::size_t cap = size * n;
  try {
    if (t->request->body_reader) return t->request->body_reader(buf, cap);
    const std::string& body = t->request->body;
    std::size_t len = std::min(cap, body.size() - t->body_offset);
    std::memcpy(buf, body.data() + t->body_offset, len);
    t->body_offset += len;
    return len;
  } catch (...) {
    t->error = std::current_exception();
    return CURL_READFUNC_ABORT;
  }
}

int on_seek(void* user, curl_off_t offset, int origin) {
  // Only in-memory bodies can be rewound (curl rewinds on some auth retries).
  auto* t = static_cast<Transfer*>(user);
  if (t->request->body_reader || origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
  t->body_offset = static_cast<std::size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

bool is_tls_error(CURLcode c) {
  switch (c) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
      return true;
    default:
      return false;
  }
}

/// The TransportError for a failed transfer.
TransportError transport_error(CURLcode rc, const char* errbuf) {
  std::string msg = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  bool verification = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
                      rc == CURLE_SSL_ISSUER_ERROR;
  bool timed_out = rc == CURLE_OPERATION_TIMEDOUT;
  if (timed_out) msg = "timed out: " + msg;
  return TransportError(msg, is_tls_error(rc), verification, timed_out);
}

class CurlHttpClient : public HttpClient {
 public:
  CurlHttpClient() {
    init_libcurl();
    curl_ = curl_easy_init();
    if (curl_ == nullptr) throw Error("cannot initialise libcurl");
  }
  ~CurlHttpClient() override { curl_easy_cleanup(curl_); }

  HttpResponse send(const HttpRequest& req,
                    const std::function<void(const char*, std::size_t)>& sink) override {
    curl_easy_reset(curl_);  // keeps the connection cache
    Transfer t{&req, &sink, {}, curl_, 0, false, false, 0, nullptr};
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl_, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 0L);
    set_time_limits(curl_, req);
    curl_easy_setopt(curl_, CURLOPT_USERAGENT, "dockless/" DOCKLESS_VERSION);
    curl_easy_setopt(curl_, CURLOPT_FRESH_CONNECT, req.fresh_connection ? 1L : 0L);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &t);
    if (sink) curl_easy_setopt(curl_, CURLOPT_BUFFERSIZE, kStreamBuffer);  // blob downloads
    if (!req.verify_tls) {
      curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (!req.extra_ca_pem.empty()) {
      const std::string& bundle = ca_bundle_with(req.extra_ca_pem);
      curl_blob blob{const_cast<char*>(bundle.data()), bundle.size(), CURL_BLOB_NOCOPY};
      curl_easy_setopt(curl_, CURLOPT_CAINFO_BLOB, &blob);
    } else if (const char* ca = system_ca_file()) {
      curl_easy_setopt(curl_, CURLOPT_CAINFO, ca);
    }

    curl_slist* headers = nullptr;
    for (const auto& [k, v] : req.headers) headers = curl_slist_append(headers, (k + ": " + v).c_str());
    headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip

    bool has_body = req.body_reader || !req.body.empty() || req.method == "PUT" ||
                    req.method == "POST" || req.method == "PATCH";
    if (req.method == "HEAD") {
      curl_easy_setopt(curl_, CURLOPT_NOBODY, 1L);
    } else if (has_body) {
      curl_easy_setopt(curl_, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, req.method.c_str());
      curl_easy_setopt(curl_, CURLOPT_READFUNCTION, on_read);
      curl_easy_setopt(curl_, CURLOPT_READDATA, &t);
      curl_easy_setopt(curl_, CURLOPT_SEEKFUNCTION, on_seek);
      curl_easy_setopt(curl_, CURLOPT_SEEKDATA, &t);
      curl_off_t size = req.body_size_unknown ? curl_off_t{-1}  // chunked
                        : req.body_reader     ? static_cast<curl_off_t>(req.body_size)
                                              : static_cast<curl_off_t>(req.body.size());
      curl_easy_setopt(curl_, CURLOPT_INFILESIZE_LARGE, size);
      // Blob bodies in 1 MiB reads instead of curl's 64 KiB: 16 times fewer
      // read callbacks, preads and send calls for the same bytes.
      if (req.body_reader) curl_easy_setopt(curl_, CURLOPT_UPLOAD_BUFFERSIZE, kStreamBuffer);
    } else if (req.method != "GET") {
      curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);

    CURLcode rc = curl_easy_perform(curl_);
    curl_slist_free_all(headers);
    if (t.error) std::rethrow_exception(t.error);
    if (rc == CURLE_WRITE_ERROR && t.error_body_cut) rc = CURLE_OK;
    if (rc != CURLE_OK) throw transport_error(rc, errbuf);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &t.response.status);
    return std::move(t.response);
  }

 private:
  CURL* curl_;
};

}  // namespace

std::optional<std::string> find_header(const HttpHeaders& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return std::nullopt;
}

void init_libcurl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::unique_ptr<HttpClient> make_curl_http_client() { return std::make_unique<CurlHttpClient>(); }

}  // namespace dockless
