// An in-memory OCI distribution registry answering through FakeHttp, for
// tests of what sits above the registry client (transfers, the build
// cache), and the options that plug a FakeHttp into the registry stack.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "oci/digest.h"
#include "oci/keychain.h"
#include "oci/registry_transport.h"
#include "tests/fake_http_client.h"
#include "tests/test_support.h"

namespace dockless::test {

/// A FakeHttp, a keychain (explicit `creds`, else only an auth.json holding
/// `auth_json`: anonymous by default, whatever the environment has), and
/// registry options that use them and record retry delays instead of
/// sleeping.
struct RegistryHarness {
  FakeHttp http;
  TempDir dir;
  std::vector<std::chrono::milliseconds> sleeps;
  std::vector<std::string> retry_notes;
  Keychain keychain;

  explicit RegistryHarness(std::optional<Credentials> creds = std::nullopt,
                           const std::string& auth_json = "{}");
  RegistryOptions options(int max_attempts = 4);
};

/// Serves /v2/ of `base`: manifests (GET, HEAD, PUT), blobs (GET with
/// Range, HEAD), uploads (POST with or without mount, PATCH, PUT ?digest=,
/// DELETE). Routes added to the FakeHttp before it take precedence.
class FakeRegistry {
 public:
  explicit FakeRegistry(FakeHttp& http, std::string base = "https://reg.test");

  Digest add_blob(const std::string& repo, const std::string& bytes);
  Digest add_manifest(const std::string& repo, const std::string& tag, const std::string& bytes,
                      const std::string& media_type);
  bool has_blob(const std::string& repo, const Digest& digest) const;
  /// The bytes of a manifest by tag or digest.
  std::optional<std::string> manifest(const std::string& repo, const std::string& ref) const;
  /// False: mount requests open an upload session instead (202).
  bool allow_mounts = true;
  /// True: GET /v2/NAME/referrers/DIGEST lists the manifests whose subject
  /// is DIGEST, and a PUT of one answers OCI-Subject. False: 404, as
  /// distribution 2.8.
  bool referrers_api = false;
  /// The registry's answer, for a test's route that wraps it.
  FakeResponse answer(const RecordedRequest& request);

 private:
  struct Manifest {
    std::string bytes, media_type;
  };
  FakeResponse answer_manifest(const RecordedRequest& r, const std::string& repo, const std::string& ref);
  FakeResponse answer_upload(const RecordedRequest& r, const std::string& repo, const std::string& id,
                             const std::map<std::string, std::string>& query);
  FakeResponse new_session(const std::string& repo);
  FakeResponse answer_referrers(const std::string& repo, const std::string& digest);

  std::string base_;
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, std::string>> blobs_;  // repo -> digest -> bytes
  std::map<std::string, std::map<std::string, Manifest>> manifests_;  // repo -> ref -> manifest
  std::map<std::string, std::string> uploads_;                       // session id -> bytes so far
  int sessions_ = 0;
};

}  // namespace dockless::test
