// Image platforms: os/architecture[/variant], as in image indexes and configs.
#pragma once

#include <string>
#include <string_view>

namespace dockless {

struct Platform {
  std::string os;            ///< "linux"
  std::string architecture;  ///< GOARCH names: amd64, arm64, arm, 386, ppc64le, s390x, riscv64
  std::string variant;       ///< "v8" for arm64, "v7" for arm; may be empty

  /// Parses "os/arch[/variant]". Normalises the aliases that docker accepts
  /// (x86_64/x86-64 -> amd64, aarch64 -> arm64, armhf -> arm/v7, i386 -> 386).
  /// Throws Error on an empty or malformed value.
  static Platform parse(std::string_view text);

  /// The platform of the running machine (uname), e.g. linux/amd64.
  static Platform host();

  /// "os/arch" or "os/arch/variant".
  std::string str() const;

  /// True if an index entry with platform `candidate` serves a request for
  /// *this. An empty variant on either side matches any variant, except that
  /// arm64 treats an empty variant as v8.
  bool matches(const Platform& candidate) const;

  friend bool operator==(const Platform&, const Platform&) = default;
};

}  // namespace dockless
