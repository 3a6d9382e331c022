#include "tests/fake_registry.h"

#include <cctype>
#include <set>

#include "oci/media_types.h"
#include "oci/referrers.h"

namespace dockless::test {

namespace {

Keychain keychain_for(const TempDir& dir, const std::optional<Credentials>& creds,
                      const std::string& auth_json) {
  KeychainOptions k;
  if (creds) {
    k.explicit_creds = creds;
  } else {
    write_text(dir / "auth.json", auth_json);
    k.authfile = (dir / "auth.json").string();
  }
  return Keychain(std::move(k));
}

FakeResponse answer_with(long status, HttpHeaders headers = {}, std::string body = "") {
  FakeResponse r;
  r.status = status;
  r.headers = std::move(headers);
  r.body = std::move(body);
  return r;
}

std::string percent_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(const std::string& query) {
  std::map<std::string, std::string> out;
  std::size_t at = 0;
  while (at < query.size()) {
    std::size_t end = query.find('&', at);
    if (end == std::string::npos) end = query.size();
    std::string pair = query.substr(at, end - at);
    std::size_t eq = pair.find('=');
    if (eq != std::string::npos) out[percent_decode(pair.substr(0, eq))] = percent_decode(pair.substr(eq + 1));
    at = end + 1;
  }
  return out;
}

}  // namespace

RegistryHarness::RegistryHarness(std::optional<Credentials> creds, const std::string& auth_json)
    : keychain(keychain_for(dir, creds, auth_json)) {}

RegistryOptions RegistryHarness::options(int max_attempts) {
  RegistryOptions o;
  o.max_attempts = max_attempts;
  o.http_factory = http.factory();
  o.sleep = [this](std::chrono::milliseconds d) { sleeps.push_back(d); };
  o.on_retry = [this](const std::string& line) { retry_notes.push_back(line); };
  return o;
}

FakeRegistry::FakeRegistry(FakeHttp& http, std::string base) : base_(std::move(base)) {
  for (const char* method : {"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"})
    http.on(method, base_ + "/*", [this](const RecordedRequest& r) { return answer(r); });
}

Digest FakeRegistry::add_blob(const std::string& repo, const std::string& bytes) {
  Digest d = sha256_of(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  blobs_[repo][d.str()] = bytes;
  return d;
}

Digest FakeRegistry::add_manifest(const std::string& repo, const std::string& tag,
                                  const std::string& bytes, const std::string& media_type) {
  Digest d = sha256_of(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  manifests_[repo][tag] = manifests_[repo][d.str()] = Manifest{bytes, media_type};
  return d;
}

bool FakeRegistry::has_blob(const std::string& repo, const Digest& digest) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(repo);
  return it != blobs_.end() && it->second.count(digest.str()) > 0;
}

std::optional<std::string> FakeRegistry::manifest(const std::string& repo, const std::string& ref) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = manifests_.find(repo);
  if (it == manifests_.end() || !it->second.count(ref)) return std::nullopt;
  return it->second.at(ref).bytes;
}

FakeResponse FakeRegistry::answer(const RecordedRequest& r) {
  std::string path = r.url.substr(base_.size());
  std::string query;
  if (auto q = path.find('?'); q != std::string::npos) {
    query = path.substr(q + 1);
    path.resize(q);
  }
  if (path == "/v2/") return answer_with(200);
  if (auto at = path.rfind("/referrers/"); at != std::string::npos && r.method == "GET")
    return answer_referrers(path.substr(4, at - 4), path.substr(at + 11));
  if (auto at = path.rfind("/manifests/"); at != std::string::npos)
    return answer_manifest(r, path.substr(4, at - 4), path.substr(at + 11));
  if (auto at = path.find("/blobs/uploads/"); at != std::string::npos)
    return answer_upload(r, path.substr(4, at - 4), path.substr(at + 15), parse_query(query));
  auto at = path.rfind("/blobs/");
  if (at == std::string::npos) return answer_with(404);
  std::string repo = path.substr(4, at - 4), digest = path.substr(at + 7);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_[repo].find(digest);
  if (it == blobs_[repo].end()) return answer_with(404, {}, R"({"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]})");
  if (r.method == "HEAD") return answer_with(200, {{"Content-Length", std::to_string(it->second.size())}});
  return serve_bytes(it->second, r);
}

FakeResponse FakeRegistry::answer_manifest(const RecordedRequest& r, const std::string& repo,
                                           const std::string& ref) {
  std::lock_guard<std::mutex> lock(mu_);
  if (r.method == "PUT") {
    std::string digest = sha256_of(r.body).str();
    Manifest m{r.body, r.header("Content-Type").value_or("")};
    manifests_[repo][ref] = manifests_[repo][digest] = m;
    HttpHeaders headers = {{"Docker-Content-Digest", digest}};
    if (referrers_api)
      if (auto subject = subject_of(r.body)) headers.emplace_back("OCI-Subject", subject->str());
    return answer_with(201, headers);
  }
  auto it = manifests_[repo].find(ref);
  if (it == manifests_[repo].end())
    return answer_with(404, {}, R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})");
  const Manifest& m = it->second;
  return answer_with(200,
                     {{"Content-Type", m.media_type},
                      {"Content-Length", std::to_string(m.bytes.size())},
                      {"Docker-Content-Digest", sha256_of(m.bytes).str()}},
                     m.bytes);
}

FakeResponse FakeRegistry::answer_referrers(const std::string& repo, const std::string& digest) {
  if (!referrers_api) return answer_with(404, {}, "404 page not found");
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<std::string> index;
  std::set<std::string> listed;
  for (const auto& [ref, m] : manifests_[repo]) {
    auto subject = subject_of(m.bytes);
    if (!subject || subject->str() != digest || !listed.insert(sha256_of(m.bytes).str()).second) continue;
    if (auto more = add_referrer(index, referrer_descriptor(m.bytes, m.media_type))) index = more;
  }
  if (!index) index = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})";
  return answer_with(200, {{"Content-Type", std::string(media_type::kOciIndex)}}, *index);
}

FakeResponse FakeRegistry::new_session(const std::string& repo) {
  std::string id = "session" + std::to_string(++sessions_);
  uploads_[id] = "";
  return answer_with(202, {{"Location", "/v2/" + repo + "/blobs/uploads/" + id + "?_state=0"}, {"Range", "0-0"}});
}

FakeResponse FakeRegistry::answer_upload(const RecordedRequest& r, const std::string& repo,
                                         const std::string& id,
                                         const std::map<std::string, std::string>& query) {
  std::lock_guard<std::mutex> lock(mu_);
  if (r.method == "POST") {
    auto mount = query.find("mount"), from = query.find("from");
    if (allow_mounts && mount != query.end() && from != query.end() &&
        blobs_[from->second].count(mount->second)) {
      blobs_[repo][mount->second] = blobs_[from->second][mount->second];
      return answer_with(201, {{"Location", "/v2/" + repo + "/blobs/" + mount->second}});
    }
    return new_session(repo);
  }
  auto session = uploads_.find(id);
  if (session == uploads_.end()) return answer_with(404, {}, R"({"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]})");
  std::string& data = session->second;
  if (r.method == "DELETE") {
    uploads_.erase(session);
    return answer_with(204);
  }
  data += r.body;
  std::string range = "0-" + std::to_string(data.empty() ? 0 : data.size() - 1);
  std::string next = "/v2/" + repo + "/blobs/uploads/" + id + "?_state=" + std::to_string(data.size());
  if (r.method == "PATCH" || r.method == "GET")
    return answer_with(r.method == "GET" ? 204 : 202, {{"Location", next}, {"Range", range}});
  auto digest = query.find("digest");
  if (digest == query.end() || sha256_of(data).str() != digest->second)
    return answer_with(400, {}, R"({"errors":[{"code":"DIGEST_INVALID","message":"digest invalid"}]})");
  blobs_[repo][digest->second] = data;
  uploads_.erase(session);
  return answer_with(201, {{"Location", "/v2/" + repo + "/blobs/" + digest->second},
                           {"Docker-Content-Digest", digest->second}});
}

}  // namespace dockless::test
