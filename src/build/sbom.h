// The image's SBOM: a CycloneDX 1.5 JSON document of the Python packages in
// its venvs and uv cache (read from the layers' *.dist-info, hashes from
// uv.lock), the base's Debian packages (dpkg's status file), uv and Python;
// attached to the image as an OCI 1.1 referrer, and found again by
// `dockless sbom`.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/descriptor.h"
#include "src/transfer/image_location.h"
#include "src/transfer/transfer.h"

namespace dockless {

struct BuildState;

inline constexpr std::string_view kCycloneDxJson = "application/vnd.cyclonedx+json";

/// A Python distribution found in the image.
struct SbomPythonPackage {
  std::string name, version;       ///< as the dist-info directory names them
  std::vector<std::string> venvs;  ///< the venvs holding it, sorted
  bool in_uv_cache = false;        ///< unpacked in the shipped uv cache
};

/// One installed package of dpkg's status file.
struct SbomDebPackage {
  std::string name, version, arch;
};

struct SbomInputs {
  Digest image;            ///< the image manifest's digest (the serial number's seed)
  std::string image_name;  ///< a tag, or ""
  std::vector<SbomPythonPackage> python;
  /// uv.lock's SHA-256 hex digests per "normalized-name@version".
  std::map<std::string, std::vector<std::string>> lock_hashes;
  std::vector<SbomDebPackage> debs;
  std::string uv_version, python_version;  ///< "" when not in the image
};

/// Every [[package]] of uv.lock text with the sha256 of its sdist and wheels.
std::map<std::string, std::vector<std::string>> lock_hashes(std::string_view lock_text, const std::string& what);
/// The installed packages ("install ok installed") of a dpkg status file.
std::vector<SbomDebPackage> parse_dpkg_status(std::string_view text);
/// "urn:uuid:..." made from the digest's bytes (a version 5 layout).
std::string sbom_serial_number(const Digest& image);
/// The CycloneDX 1.5 JSON document, components sorted by bom-ref; a
/// timestamp only when SOURCE_DATE_EPOCH is set.
std::string cyclonedx_json(const SbomInputs& in);

/// build --sbom: makes the SBOM of the built image `manifest`, stores it and
/// its referrer manifest in the build's store, and writes the referrer to
/// every oci: output and every pushed tag (the registry's referrers API, or
/// the sha256-<hex> tag index).
void attach_sbom(BuildState& s, const Descriptor& manifest, const std::vector<ImageLocation>& outputs,
                 const std::vector<Reference>& tags);

/// `dockless sbom IMAGE`: the SBOM referrer's document, or Error ("no SBOM
/// ...") when the image has none.
std::string run_sbom(const ImageLocation& image, const TransferOptions& options);

}  // namespace dockless
