// Copying images and any other OCI content (artifacts, indexes, nested
// indexes, manifests with a subject, and optionally their referrers)
// between an OCI layout, a docker-archive and a registry: what `pull`,
// `push` and `copy` do, and how `build` fetches its base and writes its
// outputs. Everything passes through a local blob store (the destination
// layout's, or dockless's cache), so each blob is verified once and never
// fetched twice, except layers copied from registry to registry: those are
// mounted or streamed across (src/transfer/blob_stream.h). Manifests keep
// their bytes, so digests stay the same (except Docker schema2 written into
// an OCI layout, converted as skopeo does). The graph walk itself is oci/content_graph.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "oci/blob_store.h"
#include "oci/descriptor.h"
#include "oci/image_index.h"
#include "oci/keychain.h"
#include "oci/oci_layout.h"
#include "oci/platform.h"
#include "oci/registry_client.h"
#include "oci/registry_transport.h"
#include "src/transfer/image_location.h"
#include "src/transfer/progress.h"
#include "src/transfer/tag_contents.h"

namespace dockless {

struct TransferOptions {
  RegistryOptions registry;
  KeychainOptions keychain;
  Platform platform;           ///< which manifest of an index to take
  bool all_platforms = false;  ///< keep the whole index
  bool referrers = false;      ///< run_copy: bring the referrers along
  bool verify_sources = false; ///< hash every blob read from an OCI layout
  /// Hash each blob pushed from a file while uploading it (one read of the
  /// file instead of two); a wrong one aborts its upload before the end.
  bool verify_pushes = false;
  int jobs = 4;                ///< parallel blob transfers
  std::uint64_t chunk_size = 0;  ///< 0: monolithic uploads
  ProgressSink* progress = nullptr;  ///< where progress events go (not owned); null: warnings only
  std::filesystem::path report_file;  ///< JSON report; empty: none
  std::filesystem::path cache_dir;
};

/// An image whose blobs are all in `store`. `top` is a manifest or an index.
struct LocalImage {
  const BlobStore* store = nullptr;
  Descriptor top;
  /// Where the image's blobs also live in a registry (for cross-repository
  /// mounts when pushing to the same registry); empty when unknown.
  std::string source_registry, source_repo;
  /// Blobs that are not in `store` but in another repository (layers a build
  /// took from a registry cache): digest -> (registry, repository).
  std::map<std::string, std::pair<std::string, std::string>> remote_blobs;
  /// Blobs already pushed to the destination repository (a build's
  /// BlobPusher): a push to a registry does not ask for them again.
  std::set<std::string> pushed;
  /// What destination tags (Reference::str()) named when that pusher
  /// began: the push reads such a tag again only to learn what it read.
  std::map<std::string, TagContents> tags_read;
};

/// A manifest (or index) whose subject is another manifest of a copy: an
/// SBOM, a signature. Its graph is in the store the copy loaded into.
struct Referrer {
  Digest subject;
  Descriptor manifest;  ///< as a referrers list shows it (artifactType, annotations)
};

class ImageTransfer {
 public:
  explicit ImageTransfer(const TransferOptions& options);
  ~ImageTransfer();

  /// Brings src into a local store: `work_store` for registries and
  /// archives, the layout's own store for oci:. An index is narrowed to the
  /// options' platform unless all_platforms.
  /// With `layers_on_demand` (a copy to a registry), layer blobs stay in
  /// the source registry: store() mounts them or streams them across
  /// (chunked uploads fetch them first).
  LocalImage load(const ImageLocation& src, const BlobStore& work_store,
                  bool layers_on_demand = false);

  /// Writes image to dst; returns the digest dst holds at the top.
  /// `default_tag` names the image in a docker-archive when dst gives none.
  Digest store(const LocalImage& image, const ImageLocation& dst, const std::string& default_tag);

  /// The referrers of every manifest of `image` at `src`, and theirs in
  /// turn, each loaded with its graph into image.store and checked to name
  /// its subject. Registries: the referrers API, else the sha256-<hex> tag
  /// index. OCI layouts: the index.json entries whose subject is the image.
  std::vector<Referrer> load_referrers(const ImageLocation& src, const LocalImage& image);
  /// Writes referrers (after their subjects) to dst: a registry gets each
  /// by digest, and its sha256-<hex> tag index kept up to date unless it
  /// answers with OCI-Subject (its referrers API indexed it); an OCI layout
  /// gets each as an untagged entry of index.json.
  void store_referrers(const LocalImage& image, const std::vector<Referrer>& referrers,
                       const ImageLocation& dst);

  /// Writes the JSON report of every blob moved so far (when asked for).
  void write_report(const std::string& source, const std::string& destination, const Digest& top);

  Progress& progress() { return progress_; }
  /// The client for one registry (made on first use, with these options).
  RegistryClient& client(const std::string& registry);
  /// Downloads those of `blobs` that `store` lacks from registry/repo, in
  /// parallel (--jobs), each verified. `followers` (by digest) read those
  /// blobs as they land (RegistryClient::fetch_blob).
  void fetch_missing(const std::string& registry, const std::string& repo,
                     const std::vector<Descriptor>& blobs, const BlobStore& store,
                     const std::map<std::string, std::shared_ptr<GrowingFile>>& followers = {});
  int jobs() const { return opt_.jobs; }
  std::uint64_t chunk_size() const { return opt_.chunk_size; }
  /// The platform picked from an index by later loads.
  void set_platform(const Platform& p) { opt_.platform = p; }

 private:
  struct ReportEntry {
    std::string direction;  // pull, push
    Digest digest;
    std::int64_t size = 0;
    std::string action;  // transferred, mounted, skipped
    double seconds = 0;
  };

  void record(const std::string& direction, const Descriptor& d, const std::string& action,
              std::chrono::steady_clock::time_point start);
  LocalImage load_layout(const LayoutRef& ref);
  LocalImage load_registry(const Reference& ref, const BlobStore& store, bool layers_on_demand);
  /// Manifests under `top` (nested indexes included) that `store` lacks,
  /// then the blobs, from registry/repo.
  void pull_graph(RegistryClient& c, const std::string& repo, const Descriptor& top,
                  const BlobStore& store, bool layers_on_demand, const std::string& what);
  void fetch_manifests(RegistryClient& c, const std::string& repo, const Descriptor& d,
                       const BlobStore& store, int depth);
  /// Checks the layout holds every manifest and blob of `top` (and hashes
  /// the blobs with verify_sources).
  void check_layout_graph(const BlobStore& store, const Descriptor& top, const std::string& what) const;
  /// Pushes blobs and manifests of image; the top under ref's tag, or by
  /// digest when ref has none. `oci_subject` gets the top PUT's OCI-Subject.
  Digest push_graph(const LocalImage& image, const Reference& ref, std::string* oci_subject);
  /// A blob of image that is not in its store: skipped, mounted or streamed
  /// from its registry (true), or fetched into the store to push (false).
  bool copy_remote_blob(RegistryClient& c, const LocalImage& image, const Reference& ref,
                        const Descriptor& b, std::chrono::steady_clock::time_point start);
  /// Copies the graph's blobs and manifests (bytes as they are) into layout.
  void copy_into_layout(const LocalImage& image, const OciLayout& layout) const;
  Descriptor select_platform(const ImageIndex& index, const std::string& what) const;
  Digest store_layout(const LocalImage& image, const LayoutRef& ref);
  Descriptor store_docker_in_layout(const LocalImage& image, const OciLayout& layout);
  Digest store_archive(const LocalImage& image, const DockerArchiveRef& ref,
                       const std::string& default_tag);
  Digest store_registry(const LocalImage& image, const Reference& ref);

  TransferOptions opt_;
  Keychain keychain_;
  Progress progress_;
  std::chrono::steady_clock::time_point started_;
  std::map<std::string, std::unique_ptr<RegistryClient>> clients_;
  std::vector<std::unique_ptr<OciLayout>> layouts_;  // opened sources, kept alive
  std::mutex report_mu_;
  std::vector<ReportEntry> report_;
  std::set<std::string> reported_;
};

/// Config and layers of one manifest (its bytes must be in store).
std::vector<Descriptor> manifest_blobs(const BlobStore& store, const Descriptor& manifest);

/// Copies src to dst with all it references (and with options.referrers,
/// its referrers); resumable: blobs and manifests dst has are skipped.
/// Returns the digest of what dst now holds at the top (the manifest or
/// artifact, or the index unless a platform was picked from it). The one
/// function behind copy, pull and push, for other commands to reuse.
Digest run_copy(const ImageLocation& src, const ImageLocation& dst, const TransferOptions& options);

/// "blob 1a2b3c4d5e6f" or "config ...": how progress lines name a descriptor.
std::string short_label(const Descriptor& d);

}  // namespace dockless
