// RegistryClient's referrers calls (declared in registry_client.h).
#include "base/error.h"
#include "oci/content_graph.h"
#include "oci/referrers.h"
#include "oci/registry_client.h"

namespace dockless {

std::optional<std::vector<Descriptor>> RegistryClient::referrers_api(const std::string& repo,
                                                                     const Digest& subject) {
  std::string what = "list referrers of " + repo + "@" + subject.str();
  HttpResponse r = transport_.send(what, {"repository:" + repo + ":pull"},
                                   [&](const std::string& base) {
                                     HttpRequest req;
                                     req.url = base + "/v2/" + repo + "/referrers/" + subject.str();
                                     req.headers.emplace_back("Accept", "application/vnd.oci.image.index.v1+json");
                                     req.max_body = kMaxManifestBytes;
                                     return req;
                                   });
  // distribution 2.8 and other registries without the API answer 404 (or
  // refuse the path); an API with nothing to list answers 200 and [].
  if (r.status == 404 || r.status == 400 || r.status == 405) return std::nullopt;
  if (r.status != 200) fail(what, r);
  std::string ct = r.header("Content-Type").value_or("");
  if (ct.rfind("application/vnd.oci.image.index.v1+json", 0) != 0) return std::nullopt;
  return parse_referrers(r.body, "registry " + registry() + ": " + what);
}

std::optional<ManifestData> RegistryClient::find_manifest(const std::string& repo,
                                                          const std::string& ref) {
  try {
    return get_manifest(repo, ref);
  } catch (const RegistryError& e) {
    if (e.status() == 404) return std::nullopt;
    throw;
  }
}

}  // namespace dockless
