#include "src/transfer/image_location.h"

#include "base/error.h"

namespace dockless {

ImageLocation ImageLocation::parse(std::string_view text) {
  if (text.rfind("oci:", 0) == 0) return {LayoutRef::parse(text)};
  if (text.rfind("docker-archive:", 0) == 0) return {DockerArchiveRef::parse(text)};
  std::string_view ref = text;
  if (ref.rfind("docker://", 0) == 0) ref.remove_prefix(9);
  auto colon = ref.find(':');
  auto slash = ref.find('/');
  // "dir:..." or "oci-archive:..." style transports we don't speak.
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon < slash)) {
    std::string_view prefix = ref.substr(0, colon);
    bool looks_like_port = !ref.substr(colon + 1).empty() &&
                           std::isdigit(static_cast<unsigned char>(ref[colon + 1])) &&
                           slash != std::string_view::npos;
    if (!looks_like_port && (prefix == "dir" || prefix == "oci-archive" ||
                             prefix == "containers-storage" || prefix == "docker-daemon"))
      throw UsageError("transport \"" + std::string(prefix) +
                       ":\" is not supported (use oci:DIR[:TAG], docker-archive:FILE[:REF] or a "
                       "registry reference)");
  }
  try {
    return {Reference::parse(ref)};
  } catch (const Error& e) {
    throw UsageError(std::string(e.what()) +
                     " (expected oci:DIR[:TAG], docker-archive:FILE[:REF] or [docker://]REF)");
  }
}

std::string ImageLocation::str() const {
  if (is_layout()) return layout().str();
  if (is_archive()) return archive().str();
  return "docker://" + reference().str();
}

}  // namespace dockless
