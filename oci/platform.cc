#include "oci/platform.h"

#include <sys/utsname.h>

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "base/error.h"

namespace dockless {

namespace {

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// The characters containerd accepts in a platform part (plus '.', for "v8.2").
bool is_part_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

// Maps the architecture aliases docker accepts (and uname machine names) onto
// GOARCH names, the only spelling that appears in image indexes. A variant the
// alias implies is filled in only when none was given: an explicit one wins.
void normalise_aliases(Platform& p) {
  p.os = to_lower(p.os);
  p.architecture = to_lower(p.architecture);
  p.variant = to_lower(p.variant);
  std::string& arch = p.architecture;
  std::string& variant = p.variant;

  if (arch == "x86_64" || arch == "x86-64") {
    arch = "amd64";
  } else if (arch == "aarch64") {
    arch = "arm64";
  } else if (arch == "armhf") {
    arch = "arm";
    if (variant.empty()) variant = "v7";
  } else if (arch == "armel") {
    arch = "arm";
    if (variant.empty()) variant = "v6";
  } else if (arch.size() > 4 && arch.starts_with("armv") && arch[4] >= '5' && arch[4] <= '8') {
    // uname's "armv7l", "armv6l": the digit is the variant.
    if (variant.empty()) variant = std::string("v") + arch[4];
    arch = "arm";
  } else if (arch == "i386" || arch == "i486" || arch == "i586" || arch == "i686") {
    arch = "386";
  }
  // Indexes spell variants "v7", but docker also accepts a bare "7".
  if ((arch == "arm" || arch == "arm64") && all_digits(variant)) variant = "v" + variant;
}

// docker reads a bare "arm" as arm/v7, the common 32-bit ARM target; leaving
// it empty would match whichever arm variant an index happens to list first.
void apply_default_variant(Platform& p) {
  if (p.architecture == "arm" && p.variant.empty()) p.variant = "v7";
}

[[noreturn]] void fail_platform(std::string_view text, const std::string& why) {
  throw Error("invalid platform \"" + std::string(text) + "\": " + why);
}

// arm64 images without a variant are v8 images, so the two must compare equal.
std::string effective_variant(const Platform& p) {
  if (p.architecture == "arm64" && p.variant.empty()) return "v8";
  return p.variant;
}

}  // namespace

Platform Platform::parse(std::string_view text) {
  if (text.empty()) fail_platform(text, "platform is empty; expected os/architecture[/variant]");

  std::array<std::string_view, 3> parts;
  std::size_t count = 0;
  std::string_view rest = text;
  for (;;) {
    std::size_t slash = rest.find('/');
    if (count == parts.size())
      fail_platform(text, "too many '/'-separated parts; expected os/architecture[/variant]");
    parts[count++] = rest.substr(0, slash);
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  if (count < 2) fail_platform(text, "missing architecture; expected os/architecture[/variant]");

  static constexpr std::array<const char*, 3> kPartNames = {"os", "architecture", "variant"};
  for (std::size_t i = 0; i < count; ++i) {
    if (parts[i].empty()) fail_platform(text, std::string(kPartNames[i]) + " is empty");
    for (char c : parts[i])
      if (!is_part_char(c))
        fail_platform(text, std::string(kPartNames[i]) + " \"" + std::string(parts[i]) +
                                "\" may contain only letters, digits, '_', '-' and '.'");
  }

  Platform p{std::string(parts[0]), std::string(parts[1]),
             count == 3 ? std::string(parts[2]) : std::string()};
  normalise_aliases(p);
  apply_default_variant(p);
  return p;
}

Platform Platform::host() {
  struct utsname info {};
  if (uname(&info) != 0) throw_errno("uname");
  Platform p{"linux", info.machine, ""};
  normalise_aliases(p);
  apply_default_variant(p);
  return p;
}

std::string Platform::str() const {
  std::string out = os + "/" + architecture;
  if (!variant.empty()) out += "/" + variant;
  return out;
}

bool Platform::matches(const Platform& candidate) const {
  // Index entries are not guaranteed to be normalised; compare canonical forms.
  Platform wanted = *this;
  Platform offered = candidate;
  normalise_aliases(wanted);
  normalise_aliases(offered);
  if (wanted.os != offered.os || wanted.architecture != offered.architecture) return false;
  std::string wanted_variant = effective_variant(wanted);
  std::string offered_variant = effective_variant(offered);
  return wanted_variant.empty() || offered_variant.empty() || wanted_variant == offered_variant;
}

}  // namespace dockless
