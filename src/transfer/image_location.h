// Where an image is read from or written to, as the user spells it:
//   oci:DIR[:TAG]                 an OCI image layout
//   docker-archive:FILE[:REF]     a docker save/load tarball
//   docker://REF or REF           a registry
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "layers/docker_archive.h"
#include "oci/oci_layout.h"
#include "oci/reference.h"

namespace dockless {

struct ImageLocation {
  std::variant<LayoutRef, DockerArchiveRef, Reference> where;

  /// Throws UsageError naming the text and the accepted forms.
  static ImageLocation parse(std::string_view text);

  bool is_layout() const { return std::holds_alternative<LayoutRef>(where); }
  bool is_archive() const { return std::holds_alternative<DockerArchiveRef>(where); }
  bool is_registry() const { return std::holds_alternative<Reference>(where); }
  const LayoutRef& layout() const { return std::get<LayoutRef>(where); }
  const DockerArchiveRef& archive() const { return std::get<DockerArchiveRef>(where); }
  const Reference& reference() const { return std::get<Reference>(where); }

  std::string str() const;
};

}  // namespace dockless
