// Image references in the docker grammar: [registry[:port]/]repo[:tag][@digest].
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "oci/digest.h"

namespace dockless {

/// A parsed, normalised image reference.
///   "python"                      -> docker.io / library/python : latest
///   "localhost:5000/app:1@sha256:.." -> localhost:5000 / app : 1 @ digest
/// The first path component is a registry when it contains '.' or ':' or is
/// "localhost" (docker's rule); otherwise the registry is docker.io and a
/// single-component repository gets the "library/" prefix.
struct Reference {
  std::string registry;    ///< host[:port], "docker.io" for Docker Hub
  std::string repository;  ///< path components joined by '/', lowercase
  std::string tag;         ///< empty when only a digest was given
  std::optional<Digest> digest;

  /// Parses and normalises. A reference with neither tag nor digest gets
  /// tag "latest". Throws Error naming the reference and what is wrong with it
  /// (uppercase repository, bad tag, bad digest, bad port, empty component...).
  static Reference parse(std::string_view text);

  /// The fully qualified form: registry/repository[:tag][@digest].
  std::string str() const;

  /// What to put in the manifest URL: the digest when present, else the tag.
  std::string manifest_ref() const;

  /// The host that API requests go to ("registry-1.docker.io" for docker.io).
  std::string api_host() const;

  friend bool operator==(const Reference&, const Reference&) = default;
};

}  // namespace dockless
