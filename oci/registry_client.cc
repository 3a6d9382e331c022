#include "oci/registry_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "base/error.h"
#include "base/file_util.h"
#include "oci/content_graph.h"
#include "oci/json_util.h"
#include "oci/media_types.h"
#include "oci/url.h"

namespace dockless {

namespace {

std::vector<std::string> pull_scope(const std::string& repo) {
  return {"repository:" + repo + ":pull"};
}

/// Streams bytes [offset, offset+length) of a file as a request body; made
/// anew for every try so a retried upload starts from its own beginning.
/// With `verify` (the whole blob only), hashes what it sends and throws
/// before handing over the last bytes if they do not make `blob`: the one
/// read of the file both checks and sends it.
BlobReader file_reader(const std::filesystem::path& file, std::uint64_t offset,
                       std::uint64_t length, const ProgressFn& progress,
                       std::uint64_t progress_base, const Descriptor* verify) {
  auto fd = std::make_shared<UniqueFd>(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!*fd) throw_errno("cannot open " + file.string());
  auto pos = std::make_shared<std::uint64_t>(0);
  std::shared_ptr<Sha256> hash;
  std::optional<Digest> expected;
  if (verify != nullptr && offset == 0 && length == static_cast<std::uint64_t>(verify->size)) {
    hash = std::make_shared<Sha256>();
    expected = verify->digest;
  }
  return [fd, pos, offset, length, file, progress, progress_base, hash, expected](char* buf,
                                                                                 std::size_t cap) {
    std::uint64_t left = length - *pos;
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, cap));
    if (want == 0) return std::size_t{0};
    ssize_t n = ::pread(fd->get(), buf, want, static_cast<off_t>(offset + *pos));
    if (n < 0) throw_errno("cannot read " + file.string());
    if (n == 0) throw Error(file.string() + " is shorter than its descriptor says");
    *pos += static_cast<std::uint64_t>(n);
    if (hash) {
      hash->update(buf, static_cast<std::size_t>(n));
      if (*pos == length) {
        Digest actual = hash->finish();
        if (actual != *expected)
          throw Error("blob " + expected->str() + " is corrupt: its content has digest " +
                      actual.str());
      }
    }
    if (progress) progress(progress_base + *pos);
    return static_cast<std::size_t>(n);
  };
}

/// The last byte offset in a "Range: 0-N" (or "bytes=0-N") upload status.
std::optional<std::uint64_t> range_end(const HttpResponse& r) {
  auto h = r.header("Range");
  if (!h) return std::nullopt;
  auto dash = h->rfind('-');
  if (dash == std::string::npos) return std::nullopt;
  std::string end = h->substr(dash + 1);
  if (end.empty() || end.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stoull(end);
}

}  // namespace

RegistryClient::RegistryClient(std::string registry, RegistryOptions options,
                               const Keychain& keychain)
    : transport_(std::move(registry), std::move(options), keychain) {}

void RegistryClient::fail(const std::string& what, const HttpResponse& r) const {
  std::string code;
  std::string desc = describe_registry_error(r);
  auto space = desc.find(' ');
  if (space != std::string::npos) {
    std::string word = desc.substr(space + 1, desc.find(':', space) - space - 1);
    if (!word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
          return (c >= 'A' && c <= 'Z') || c == '_';
        }))
      code = word;
  }
  throw RegistryError("registry " + registry() + ": " + what + ": " + desc, r.status, code);
}

ManifestData RegistryClient::get_manifest(const std::string& repo, const std::string& ref) {
  std::string what = "get manifest " + repo + (ref.rfind("sha256:", 0) == 0 ? "@" : ":") + ref;
  HttpResponse r = transport_.send(what, pull_scope(repo), [&](const std::string& base) {
    HttpRequest req;
    req.url = base + "/v2/" + repo + "/manifests/" + ref;
    req.headers.emplace_back("Accept", std::string(media_type::kManifestAccept));
    req.max_body = kMaxManifestBytes;
    return req;
  });
  if (r.status != 200) fail(what, r);
  if (r.body.size() > kMaxManifestBytes)
    throw Error("registry " + registry() + ": " + what + ": manifest larger than " +
                std::to_string(kMaxManifestBytes) + " bytes");
  ManifestData m;
  m.bytes = std::move(r.body);
  m.digest = sha256_of(m.bytes);
  if (ref.rfind("sha256:", 0) == 0 && Digest::parse(ref) != m.digest)
    throw Error("registry " + registry() + ": " + what + ": digest mismatch: expected " + ref +
                ", got " + m.digest.str());
  if (auto sent = r.header("Docker-Content-Digest")) {
    if (sent->rfind("sha256:", 0) == 0 && *sent != m.digest.str())
      throw Error("registry " + registry() + ": " + what + ": digest mismatch: registry says " +
                  *sent + ", content is " + m.digest.str());
  }
  std::string ct = r.header("Content-Type").value_or("");
  ct = ct.substr(0, ct.find(';'));
  if (media_type::is_manifest(ct) || media_type::is_index(ct)) {
    m.media_type = ct;
  } else {
    // Some registries answer application/json: trust the document's field.
    rapidjson::Document doc = json::parse(m.bytes, what);
    m.media_type = doc.IsObject() ? json::get_string(doc, "mediaType", what).value_or("") : "";
    if (m.media_type.empty()) m.media_type = std::string(media_type::kOciManifest);
  }
  return m;
}

std::optional<Descriptor> RegistryClient::head_manifest(const std::string& repo,
                                                        const std::string& ref) {
  std::string what = "check manifest " + repo + ":" + ref;
  HttpResponse r = transport_.send(what, pull_scope(repo), [&](const std::string& base) {
    HttpRequest req;
    req.method = "HEAD";
    req.url = base + "/v2/" + repo + "/manifests/" + ref;
    req.headers.emplace_back("Accept", std::string(media_type::kManifestAccept));
    return req;
  });
  if (r.status == 404) return std::nullopt;
  if (r.status != 200) fail(what, r);
  auto digest = r.header("Docker-Content-Digest");
  auto length = r.header("Content-Length");
  if (!digest || !length) return std::nullopt;  // can't tell: treat as absent
  Descriptor d;
  d.digest = Digest::parse(*digest);
  d.size = std::stoll(*length);
  std::string ct = r.header("Content-Type").value_or("");
  d.media_type = ct.substr(0, ct.find(';'));
  return d;
}

Digest RegistryClient::put_manifest(const std::string& repo, const std::string& ref,
                                    const std::string& bytes, const std::string& media_type,
                                    std::string* oci_subject) {
  std::string what = "push manifest " + repo + (ref.rfind("sha256:", 0) == 0 ? "@" : ":") + ref;
  Digest digest = sha256_of(bytes);
  HttpResponse r = transport_.send(
      what, {"repository:" + repo + ":pull,push"}, [&](const std::string& base) {
        HttpRequest req;
        req.method = "PUT";
        req.url = base + "/v2/" + repo + "/manifests/" + ref;
        req.headers.emplace_back("Content-Type", media_type);
        req.body = bytes;
        return req;
      });
  if (r.status != 201 && r.status != 200 && r.status != 202) fail(what, r);
  if (auto sent = r.header("Docker-Content-Digest"))
    if (sent->rfind("sha256:", 0) == 0 && *sent != digest.str())
      throw Error("registry " + registry() + ": " + what + ": registry stored digest " + *sent +
                  ", expected " + digest.str());
  if (oci_subject != nullptr) *oci_subject = r.header("OCI-Subject").value_or("");
  return digest;
}

bool RegistryClient::blob_exists(const std::string& repo, const Digest& digest) {
  std::string what = "check blob " + digest.short_hex() + " in " + repo;
  HttpResponse r = transport_.send(what, pull_scope(repo), [&](const std::string& base) {
    HttpRequest req;
    req.method = "HEAD";
    req.url = base + "/v2/" + repo + "/blobs/" + digest.str();
    return req;
  });
  if (r.status == 200) return true;
  if (r.status == 404) return false;
  // 401/403 on HEAD (a repository we may not read yet): treat as absent and
  // let the upload answer with the real error.
  if (r.status == 401 || r.status == 403) return false;
  fail(what, r);
}

void RegistryClient::fetch_blob(const std::string& repo, const Descriptor& blob,
                                const BlobStore& store, const ProgressFn& progress,
                                std::shared_ptr<GrowingFile> follower) {
  BlobWriter writer(store);
  if (follower) writer.follow(std::move(follower));
  download(repo, blob,
           {[&] { return writer.size(); },
            [&](const char* data, std::size_t n) {
              writer.write(data, n);
              if (progress) progress(writer.size());
            },
            [&] { writer.reset(); }});
  try {
    writer.commit(blob.digest);
  } catch (const Error& e) {
    throw Error("registry " + registry() + ": pull blob " + blob.digest.str() + " from " + repo +
                ": " + e.what());
  }
}

void RegistryClient::stream_blob(const std::string& repo, const Descriptor& blob,
                                 const std::function<void(const char*, std::size_t)>& sink) {
  const auto expected = static_cast<std::uint64_t>(blob.size);
  Sha256 hash;
  std::uint64_t delivered = 0;  // bytes the sink has
  std::uint64_t skip = 0;       // bytes of a restarted body the sink has already
  auto write = [&](const char* data, std::size_t n) {
    std::size_t drop = static_cast<std::size_t>(std::min<std::uint64_t>(skip, n));
    skip -= drop;
    data += drop;
    n -= drop;
    if (n == 0) return;
    hash.update(data, n);
    if (delivered + n == expected) {
      Digest actual = hash.finish();
      if (actual != blob.digest)
        throw Error("registry " + registry() + ": pull blob " + blob.digest.str() + " from " +
                    repo + ": digest mismatch: got " + actual.str());
    }
    sink(data, n);
    delivered += n;
  };
  download(repo, blob, {[&] { return delivered - skip; }, write, [&] { skip = delivered; }});
}

void RegistryClient::download(const std::string& repo, const Descriptor& blob,
                              const DownloadTarget& target) {
  const std::string what = "pull blob " + blob.digest.str() + " from " + repo;
  const auto scopes = pull_scope(repo);
  const std::string base = transport_.base_url();
  const auto expected = static_cast<std::uint64_t>(blob.size);
  const int max_attempts = transport_.options().max_attempts;
  bool short_body = false;
  for (int attempt = 1;; ++attempt) {
    HttpRequest req;
    req.url = base + "/v2/" + repo + "/blobs/" + blob.digest.str();
    req.fresh_connection = short_body;
    const std::uint64_t have = target.size();
    if (have > 0) req.headers.emplace_back("Range", "bytes=" + std::to_string(have) + "-");
    req.on_body_start = [&](long status, const HttpHeaders& headers) {
      if (status == 206) {
        auto cr = find_header(headers, "Content-Range");
        std::string want = "bytes " + std::to_string(have) + "-";
        if (!cr || cr->rfind(want, 0) != 0) target.restart();  // not where we asked: start over
      } else if (target.size() > 0) {
        target.restart();  // the registry ignored Range: the whole blob comes again
      }
    };
    auto sink = [&](const char* data, std::size_t n) {
      if (target.size() + n > expected)
        throw Error("registry " + registry() + ": " + what + ": more bytes than the expected " +
                    std::to_string(expected));
      target.write(data, n);
    };
    HttpResponse r;
    try {
      r = transport_.send_once(scopes, req, sink);
    } catch (const TransportError& e) {
      if (e.is_tls() || attempt >= max_attempts)
        throw Error("registry " + registry() + ": " + what + ": " + e.what());
      transport_.wait_before_retry(attempt, what, e.what(), nullptr);
      continue;
    }
    if (r.status == 200 || r.status == 206) {
      if (target.size() == expected) return;
      // Closed early without a transport error (a truncated body): resume.
      if (attempt >= max_attempts)
        throw Error("registry " + registry() + ": " + what + ": got " +
                    std::to_string(target.size()) + " of " + std::to_string(expected) + " bytes");
      transport_.wait_before_retry(attempt, what, "short body", nullptr);
      short_body = true;
      continue;
    }
    if (r.status == 416 && have > 0) {  // our Range is past what it has: start over
      target.restart();
      continue;
    }
    if (is_retryable_status(r.status) && attempt < max_attempts) {
      transport_.wait_before_retry(attempt, what, describe_registry_error(r), &r);
      continue;
    }
    fail(what, r);
  }
}

std::string RegistryClient::start_upload(const std::string& repo,
                                         const std::vector<std::string>& scopes,
                                         std::uint64_t* min_chunk) {
  std::string what = "start upload to " + repo;
  std::string url;
  HttpResponse r = transport_.send(what, scopes, [&](const std::string& base) {
    HttpRequest req;
    req.method = "POST";
    req.url = url = base + "/v2/" + repo + "/blobs/uploads/";
    return req;
  });
  if (r.status != 202) fail(what, r);
  auto location = r.header("Location");
  if (!location) throw Error("registry " + registry() + ": " + what + ": 202 without a Location");
  if (min_chunk != nullptr) {
    if (auto m = r.header("OCI-Chunk-Min-Length"))
      if (!m->empty() && m->find_first_not_of("0123456789") == std::string::npos)
        *min_chunk = std::stoull(*m);
  }
  return resolve_url(url, *location);
}

void RegistryClient::upload_monolithic(const std::string& repo,
                                       const std::vector<std::string>& scopes,
                                       const std::string& location, const Descriptor& blob,
                                       const BlobOpener& open) {
  std::string what = "upload blob " + blob.digest.short_hex() + " to " + repo;
  HttpResponse r = transport_.send(
      what, scopes,
      [&](const std::string&) {
        HttpRequest req;
        req.method = "PUT";
        req.url = with_query(location, "digest=" + blob.digest.str());
        req.headers.emplace_back("Content-Type", "application/octet-stream");
        req.body_size = static_cast<std::uint64_t>(blob.size);
        req.body_reader = open(0, req.body_size);
        return req;
      },
      /*retry=*/false);
  if (r.status != 201 && r.status != 204) fail(what, r);
}

void RegistryClient::upload_chunked(const std::string& repo,
                                    const std::vector<std::string>& scopes, std::string location,
                                    const Descriptor& blob, const BlobOpener& open,
                                    std::uint64_t chunk_size) {
  std::string what = "upload blob " + blob.digest.short_hex() + " to " + repo;
  const auto total = static_cast<std::uint64_t>(blob.size);
  std::uint64_t offset = 0;
  int failures = 0;
  while (offset < total) {
    const std::uint64_t length = std::min(chunk_size, total - offset);
    HttpResponse r;
    bool transport_failed = false;
    try {
      r = transport_.send(
          what, scopes,
          [&](const std::string&) {
            HttpRequest req;
            req.method = "PATCH";
            req.url = location;
            req.headers.emplace_back("Content-Type", "application/octet-stream");
            req.headers.emplace_back("Content-Range", std::to_string(offset) + "-" +
                                                          std::to_string(offset + length - 1));
            req.body_size = length;
            req.body_reader = open(offset, length);
            return req;
          },
          /*retry=*/false);
    } catch (const TransportError&) {
      transport_failed = true;
    }
    if (!transport_failed && r.status == 202) {
      if (auto loc = r.header("Location")) location = resolve_url(location, *loc);
      offset += length;
      failures = 0;
      continue;
    }
    // The chunk failed (416, 5xx, reset): ask the session what it holds and
    // go on from there.
    if (++failures >= transport_.options().max_attempts) {
      if (transport_failed) throw Error("registry " + registry() + ": " + what + ": connection failed");
      fail(what, r);
    }
    if (!transport_failed && !is_retryable_status(r.status) && r.status != 416) fail(what, r);
    transport_.wait_before_retry(failures, what,
                                 transport_failed ? "connection failed" : describe_registry_error(r),
                                 transport_failed ? nullptr : &r);
    HttpResponse status = transport_.send(what, scopes, [&](const std::string&) {
      HttpRequest req;
      req.url = location;
      return req;
    });
    if (status.status == 204 || status.status == 202) {
      if (auto loc = status.header("Location")) location = resolve_url(location, *loc);
      auto end = range_end(status);
      offset = end ? *end + 1 : 0;
      if (offset > total) offset = total;
    } else {
      // The session is gone: a new one, from the start.
      location = start_upload(repo, scopes, nullptr);
      offset = 0;
    }
  }
  finish_session(what, scopes, location, blob, /*retry=*/true);
}

void RegistryClient::finish_session(const std::string& what, const std::vector<std::string>& scopes,
                                    const std::string& session, const Descriptor& blob, bool retry) {
  HttpResponse r = transport_.send(
      what, scopes,
      [&](const std::string&) {
        HttpRequest req;
        req.method = "PUT";
        req.url = with_query(session, "digest=" + blob.digest.str());
        req.headers.emplace_back("Content-Type", "application/octet-stream");
        return req;
      },
      retry);
  if (r.status != 201 && r.status != 204) fail(what, r);
}

bool RegistryClient::mount_blob(const std::string& repo, const Digest& digest,
                                const std::string& from) {
  std::vector<std::string> scopes = {"repository:" + repo + ":pull,push",
                                     "repository:" + from + ":pull"};
  std::string url;
  HttpResponse r;
  try {
    r = transport_.send("mount blob " + digest.short_hex() + " from " + from, scopes,
                        [&](const std::string& base) {
                          HttpRequest req;
                          req.method = "POST";
                          req.url = url = base + "/v2/" + repo + "/blobs/uploads/?mount=" +
                                          digest.str() + "&from=" + from;
                          return req;
                        });
  } catch (const RegistryError&) {
    return false;
  }
  if (r.status == 201) return true;
  if (r.status == 202)
    if (auto loc = r.header("Location")) cancel_session(scopes, resolve_url(url, *loc));  // not mounted
  return false;
}

BlobPushOutcome RegistryClient::push_blob(const std::string& repo, const Descriptor& blob,
                                          const std::filesystem::path& file,
                                          const std::string& mount_from, std::uint64_t chunk_size,
                                          const ProgressFn& progress, bool verify) {
  if (blob_exists(repo, blob.digest)) return BlobPushOutcome::kSkipped;
  std::vector<std::string> scopes = {"repository:" + repo + ":pull,push"};
  std::string location;
  if (!mount_from.empty() && mount_from != repo) {
    // Always with `from`: some registries refuse a mount without it.
    std::vector<std::string> mount_scopes = scopes;
    mount_scopes.push_back("repository:" + mount_from + ":pull");
    std::string url;
    try {
      HttpResponse r = transport_.send(
          "mount blob " + blob.digest.short_hex() + " from " + mount_from, mount_scopes,
          [&](const std::string& base) {
            HttpRequest req;
            req.method = "POST";
            req.url = url = base + "/v2/" + repo + "/blobs/uploads/?mount=" + blob.digest.str() +
                            "&from=" + mount_from;
            return req;
          });
      if (r.status == 201) return BlobPushOutcome::kMounted;
      if (r.status == 202)
        if (auto loc = r.header("Location")) location = resolve_url(url, *loc);
    } catch (const RegistryError&) {
      // A mount may be refused (no pull on the source): upload instead.
    }
  }
  upload_file(repo, scopes, location, blob, file, chunk_size, progress, verify);
  return BlobPushOutcome::kUploaded;
}

void RegistryClient::upload_blob(const std::string& repo, const Descriptor& blob, const std::filesystem::path& file,
                                 std::uint64_t chunk_size, const ProgressFn& progress, const std::string& session) {
  upload_file(repo, {"repository:" + repo + ":pull,push"}, session, blob, file, chunk_size, progress, false);
}

void RegistryClient::upload_bytes(const std::string& repo, const Descriptor& blob, std::string_view bytes,
                                  const ProgressFn& progress, const std::string& session) {
  if (bytes.size() != static_cast<std::uint64_t>(blob.size))
    throw Error("blob " + blob.digest.str() + " has " + std::to_string(bytes.size()) +
                " bytes, its descriptor says " + std::to_string(blob.size));
  BlobOpener open = [&](std::uint64_t offset, std::uint64_t length) -> BlobReader {
    auto pos = std::make_shared<std::uint64_t>(0);
    return [bytes, offset, length, pos, progress](char* buf, std::size_t cap) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(length - *pos, cap));
      std::memcpy(buf, bytes.data() + offset + *pos, n);
      *pos += n;
      if (progress && n > 0) progress(offset + *pos);
      return n;
    };
  };
  upload_with_retries(repo, {"repository:" + repo + ":pull,push"}, session, blob, open, 0);
}

std::string RegistryClient::open_upload(const std::string& repo) {
  return start_upload(repo, {"repository:" + repo + ":pull,push"}, nullptr);
}

std::string RegistryClient::stream_into(const std::string& repo, const std::string& session, const BlobReader& body,
                                       std::uint64_t* received) {
  std::string what = "stream blob to " + repo;
  HttpResponse r = transport_.send(
      what, {"repository:" + repo + ":pull,push"},
      [&](const std::string&) {
        HttpRequest req;
        req.method = "PATCH";
        req.url = session;
        req.headers.emplace_back("Content-Type", "application/octet-stream");
        req.body_reader = body;
        req.body_size_unknown = true;
        return req;
      },
      /*retry=*/false);
  if (r.status != 202) fail(what, r);
  auto location = r.header("Location");
  auto end = range_end(r);
  if (!location || !end) throw Error("registry " + registry() + ": " + what + ": 202 without a Location or Range");
  *received = *end + 1;
  return resolve_url(session, *location);
}

void RegistryClient::commit_upload(const std::string& repo, const std::string& session, const Descriptor& blob) {
  finish_session("finish upload of blob " + blob.digest.short_hex() + " to " + repo,
                 {"repository:" + repo + ":pull,push"}, session, blob, /*retry=*/false);
}

void RegistryClient::cancel_upload(const std::string& repo, const std::string& session) {
  cancel_session({"repository:" + repo + ":pull,push"}, session);
}

void RegistryClient::cancel_session(const std::vector<std::string>& scopes, const std::string& session) {
  try {
    transport_.send("cancel upload", scopes, [&](const std::string&) {
      HttpRequest req;
      req.method = "DELETE";
      req.url = session;
      return req;
    }, /*retry=*/false);
  } catch (const Error&) {
    // The registry drops idle sessions on its own.
  }
}

void RegistryClient::upload_file(const std::string& repo, const std::vector<std::string>& scopes,
                                 const std::string& location, const Descriptor& blob,
                                 const std::filesystem::path& file, std::uint64_t chunk_size,
                                 const ProgressFn& progress, bool verify) {
  BlobOpener open = [&](std::uint64_t offset, std::uint64_t length) {
    return file_reader(file, offset, length, progress, offset, verify ? &blob : nullptr);
  };
  upload_with_retries(repo, scopes, location, blob, open, chunk_size);
}

void RegistryClient::upload_blob_stream(const std::string& repo, const Descriptor& blob,
                                        const std::function<BlobReader()>& open) {
  BlobOpener opener = [&](std::uint64_t, std::uint64_t) { return open(); };
  upload_with_retries(repo, {"repository:" + repo + ":pull,push"}, "", blob, opener, 0);
}

void RegistryClient::upload_with_retries(const std::string& repo,
                                         const std::vector<std::string>& scopes,
                                         std::string location, const Descriptor& blob,
                                         const BlobOpener& open, std::uint64_t chunk_size) {
  for (int attempt = 1;; ++attempt) {
    std::uint64_t min_chunk = 0;
    if (location.empty()) location = start_upload(repo, scopes, &min_chunk);
    try {
      const auto size = static_cast<std::uint64_t>(blob.size);
      std::uint64_t chunk = chunk_size == 0 ? 0 : std::max(chunk_size, min_chunk);
      if (chunk == 0 || size <= chunk)
        upload_monolithic(repo, scopes, location, blob, open);
      else
        upload_chunked(repo, scopes, location, blob, open, chunk);
      return;
    } catch (const RegistryError& e) {
      if (!is_retryable_status(e.status()) || attempt >= transport_.options().max_attempts) throw;
      transport_.wait_before_retry(attempt, "upload blob " + blob.digest.short_hex(), e.what(), nullptr);
    } catch (const TransportError& e) {
      if (e.is_tls() || attempt >= transport_.options().max_attempts) throw;
      transport_.wait_before_retry(attempt, "upload blob " + blob.digest.short_hex(), e.what(), nullptr);
    }
    location.clear();  // a failed session restarts from a new one
  }
}

}  // namespace dockless
