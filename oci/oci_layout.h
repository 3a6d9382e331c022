// An OCI image layout directory: oci-layout, index.json, blobs/. Several
// images live in one layout, told apart by org.opencontainers.image.ref.name.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "oci/blob_store.h"
#include "oci/descriptor.h"
#include "oci/image_index.h"

namespace dockless {

/// "oci:DIR[:TAG]" as skopeo writes it. DIR cannot contain ':'.
struct LayoutRef {
  std::filesystem::path dir;
  std::string tag;  ///< empty when not given

  /// Throws UsageError when text does not start with "oci:" or DIR is empty.
  static LayoutRef parse(std::string_view text);
  std::string str() const;
};

class OciLayout {
 public:
  /// Opens an existing layout; throws Error if `dir` holds none.
  static OciLayout open(const std::filesystem::path& dir);
  /// Opens, or creates an empty layout (oci-layout + empty index.json).
  static OciLayout open_or_create(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  const BlobStore& blobs() const { return blobs_; }
  ImageIndex read_index() const;

  /// The descriptor tagged `tag`. An empty tag picks the only image when the
  /// layout holds one. Throws Error listing the tags that exist otherwise.
  Descriptor resolve(const std::string& tag) const;

  /// Points `tag` at `manifest` in index.json (replacing what had that tag),
  /// atomically and under a lock, so concurrent taggers never lose an entry.
  /// An empty tag adds an untagged entry (a referrer), once per digest.
  /// The manifest's blobs must already be stored.
  void set_tag(Descriptor manifest, const std::string& tag) const;

  /// Every tag in index.json, in order.
  std::vector<std::string> tags() const;

 private:
  explicit OciLayout(std::filesystem::path dir);
  std::filesystem::path dir_;
  BlobStore blobs_;
};

}  // namespace dockless
