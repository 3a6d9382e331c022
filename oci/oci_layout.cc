#include "oci/oci_layout.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/file_lock.h"
#include "base/file_util.h"
#include "oci/media_types.h"

namespace dockless {

namespace {
constexpr const char* kRefNameKey = "org.opencontainers.image.ref.name";
constexpr std::string_view kLayoutHeader = R"({"imageLayoutVersion":"1.0.0"})";

bool path_exists(const std::filesystem::path& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}
}  // namespace

LayoutRef LayoutRef::parse(std::string_view text) {
  constexpr std::string_view kPrefix = "oci:";
  if (text.substr(0, kPrefix.size()) != kPrefix)
    throw UsageError("\"" + std::string(text) + "\" is not an OCI layout reference (expected oci:DIR[:TAG])");
  std::string_view rest = text.substr(kPrefix.size());
  LayoutRef ref;
  auto colon = rest.find(':');
  ref.dir = std::string(rest.substr(0, colon));
  if (colon != std::string_view::npos) {
    ref.tag = std::string(rest.substr(colon + 1));
    if (ref.tag.empty())
      throw UsageError("\"" + std::string(text) + "\": empty tag after ':'");
  }
  if (ref.dir.empty()) throw UsageError("\"" + std::string(text) + "\": empty directory");
  return ref;
}

std::string LayoutRef::str() const {
  return "oci:" + dir.string() + (tag.empty() ? "" : ":" + tag);
}

OciLayout::OciLayout(std::filesystem::path dir) : dir_(std::move(dir)), blobs_(dir_) {}

OciLayout OciLayout::open(const std::filesystem::path& dir) {
  if (!path_exists(dir / "oci-layout") || !path_exists(dir / "index.json"))
    throw Error("no OCI image layout at " + dir.string() + " (oci-layout or index.json missing)");
  return OciLayout(dir);
}

OciLayout OciLayout::open_or_create(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create " + dir.string() + ": " + ec.message());
  OciLayout layout(dir);
  if (!path_exists(dir / "oci-layout")) write_file_atomic(dir / "oci-layout", kLayoutHeader);
  if (!path_exists(dir / "index.json")) {
    ImageIndex empty;
    empty.media_type = std::string(media_type::kOciIndex);
    write_file_atomic(dir / "index.json", empty.to_json());
  }
  return layout;
}

ImageIndex OciLayout::read_index() const {
  std::string text;
  try {
    text = read_file(dir_ / "index.json");
  } catch (const Error& e) {
    throw Error("OCI layout " + dir_.string() + ": " + e.what());
  }
  try {
    return ImageIndex::parse(text);
  } catch (const Error& e) {
    throw Error("OCI layout " + dir_.string() + ": index.json: " + e.what());
  }
}

std::vector<std::string> OciLayout::tags() const {
  std::vector<std::string> out;
  for (const auto& m : read_index().manifests)
    if (!m.ref_name().empty()) out.push_back(m.ref_name());
  return out;
}

Descriptor OciLayout::resolve(const std::string& tag) const {
  ImageIndex idx = read_index();
  if (tag.empty()) {
    if (idx.manifests.size() == 1) return idx.manifests.front();
    if (idx.manifests.empty()) throw Error("OCI layout " + dir_.string() + " holds no image");
    std::string known;
    for (const auto& m : idx.manifests)
      if (!m.ref_name().empty()) known += (known.empty() ? "" : ", ") + m.ref_name();
    throw Error("OCI layout " + dir_.string() + " holds " + std::to_string(idx.manifests.size()) +
                " images: name one with oci:DIR:TAG" + (known.empty() ? "" : " (tags: " + known + ")"));
  }
  std::string known;
  for (const auto& m : idx.manifests) {
    if (m.ref_name() == tag) return m;
    if (!m.ref_name().empty()) known += (known.empty() ? "" : ", ") + m.ref_name();
  }
  throw Error("OCI layout " + dir_.string() + " has no image tagged \"" + tag + "\"" +
              (known.empty() ? " (it has no tags)" : " (tags: " + known + ")"));
}

void OciLayout::set_tag(Descriptor manifest, const std::string& tag) const {
  // flock on oci-layout serialises read-modify-write of index.json.
  FileLock lock(dir_ / "oci-layout", LockMode::kExclusive);
  ImageIndex idx = read_index();
  if (idx.media_type.empty()) idx.media_type = std::string(media_type::kOciIndex);
  std::vector<Descriptor> kept;
  // An untagged entry (a referrer) is listed once per digest.
  for (auto& m : idx.manifests)
    if (tag.empty() ? (!m.ref_name().empty() || m.digest != manifest.digest) : m.ref_name() != tag)
      kept.push_back(std::move(m));
  if (!tag.empty()) manifest.annotations[kRefNameKey] = tag;
  kept.push_back(std::move(manifest));
  idx.manifests = std::move(kept);
  write_file_atomic(dir_ / "index.json", idx.to_json());
}

}  // namespace dockless
