#include "tests/fake_http_client.h"

#include <algorithm>

namespace dockless::test {

namespace {

class FakeHttpClient : public HttpClient {
 public:
  explicit FakeHttpClient(FakeHttp& script) : script_(script) {}
  HttpResponse send(const HttpRequest& request,
                    const std::function<void(const char*, std::size_t)>& sink) override {
    return script_.send(request, sink);
  }

 private:
  FakeHttp& script_;
};

RecordedRequest record_of(const HttpRequest& request) {
  RecordedRequest r{request.method, request.url, request.headers, request.body, request.fresh_connection};
  if (request.body_reader) {
    r.body.clear();
    char buf[4096];
    while (std::size_t n = request.body_reader(buf, sizeof buf)) r.body.append(buf, n);
  }
  return r;
}

/// Hands the answer to the caller as libcurl would: a 2xx body to the sink
/// (after on_body_start), anything else into the response.
HttpResponse deliver(const HttpRequest& request, FakeResponse answer,
                     const std::function<void(const char*, std::size_t)>& sink) {
  const std::string reset_message = "Recv failure: Connection reset by peer";
  if (answer.reset_after == std::size_t{0}) throw TransportError(reset_message, false);
  if (answer.time_out)
    throw TransportError("timed out: Operation timed out after 30000 milliseconds", false, false, true);
  HttpResponse out{answer.status, answer.headers, ""};
  std::string body = request.method == "HEAD" ? "" : answer.body;
  if (answer.reset_after) body.resize(std::min(body.size(), *answer.reset_after));
  if (sink && answer.status >= 200 && answer.status < 300) {
    if (!body.empty() && request.on_body_start) request.on_body_start(answer.status, answer.headers);
    // Several pieces, as a network delivers them.
    for (std::size_t at = 0; at < body.size(); at += 1000)
      sink(body.data() + at, std::min<std::size_t>(1000, body.size() - at));
  } else {
    out.body = std::move(body);
  }
  if (answer.reset_after) throw TransportError(reset_message, false);
  return out;
}

}  // namespace

bool FakeRoute::matches(const RecordedRequest& r) const {
  if (uses_left == 0 || r.method != method) return false;
  if (!url.empty() && url.back() == '*') {
    if (r.url.compare(0, url.size() - 1, url, 0, url.size() - 1) != 0) return false;
  } else if (r.url != url) {
    return false;
  }
  if (header_name) {
    auto h = r.header(*header_name);
    if (h.has_value() != header_value.has_value()) return false;
    if (h && *h != *header_value) return false;
  }
  return true;
}

FakeRoute& FakeHttp::on(std::string method, std::string url, FakeHandler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  routes_.push_back(FakeRoute{std::move(method), std::move(url), std::move(handler), -1, {}, {}});
  return routes_.back();
}

FakeRoute& FakeHttp::on(std::string method, std::string url, FakeResponse response) {
  return on(std::move(method), std::move(url),
            [response](const RecordedRequest&) { return response; });
}

std::function<std::unique_ptr<HttpClient>()> FakeHttp::factory() {
  return [this]() -> std::unique_ptr<HttpClient> { return std::make_unique<FakeHttpClient>(*this); };
}

HttpResponse FakeHttp::send(const HttpRequest& request,
                            const std::function<void(const char*, std::size_t)>& sink) {
  RecordedRequest rec = record_of(request);
  FakeHandler handler;
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(rec);
    for (auto& route : routes_) {
      if (!route.matches(rec)) continue;
      if (route.uses_left > 0) --route.uses_left;
      handler = route.handler;
      break;
    }
    if (!handler) unmatched_.push_back(rec.method + " " + rec.url);
    max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
  }
  struct Leave {
    FakeHttp* self;
    ~Leave() {
      std::lock_guard<std::mutex> lock(self->mu_);
      --self->in_flight_;
    }
  } leave{this};
  FakeResponse answer;
  answer.status = 404;
  if (handler) answer = handler(rec);
  return deliver(request, std::move(answer), sink);
}

std::vector<RecordedRequest> FakeHttp::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::vector<RecordedRequest> FakeHttp::requests(std::string_view method,
                                                std::string_view url_prefix) const {
  std::vector<RecordedRequest> out;
  for (auto& r : requests())
    if (r.method == method && std::string_view(r.url).substr(0, url_prefix.size()) == url_prefix)
      out.push_back(r);
  return out;
}

std::size_t FakeHttp::count(std::string_view method, std::string_view url_prefix) const {
  return requests(method, url_prefix).size();
}

std::vector<std::string> FakeHttp::unmatched() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unmatched_;
}

int FakeHttp::max_in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_in_flight_;
}

FakeResponse serve_bytes(const std::string& bytes, const RecordedRequest& request) {
  FakeResponse r;
  r.headers.emplace_back("Content-Length", std::to_string(bytes.size()));
  auto range = request.header("Range");
  const std::string prefix = "bytes=";
  if (!range || range->rfind(prefix, 0) != 0) {
    r.body = bytes;
    return r;
  }
  std::size_t from = std::stoull(range->substr(prefix.size()));
  if (from >= bytes.size()) {
    r.status = 416;
    return r;
  }
  r.status = 206;
  r.body = bytes.substr(from);
  r.headers = {{"Content-Length", std::to_string(r.body.size())},
               {"Content-Range", "bytes " + std::to_string(from) + "-" +
                                     std::to_string(bytes.size() - 1) + "/" +
                                     std::to_string(bytes.size())}};
  return r;
}

}  // namespace dockless::test
