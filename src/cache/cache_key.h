// Build-cache keys: a SHA-256 over typed, length-prefixed fields, so that
// ("a b", "c") and ("a", "b c") never collide, plus a readable list of what
// went in, for `--explain-cache` (why did this layer miss?).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "oci/digest.h"

namespace dockless {

class CacheKey {
 public:
  /// `kind` names what the key is for ("venv", "uv-cache", "source"...).
  explicit CacheKey(std::string_view kind);

  CacheKey& add(std::string_view field, std::string_view value);
  CacheKey& add(std::string_view field, const std::vector<std::string>& values);
  CacheKey& add(std::string_view field, bool value);
  /// A literal is text: without this, "abc" would convert to bool.
  CacheKey& add(std::string_view field, const char* value) { return add(field, std::string_view(value)); }

  /// Hex SHA-256 of everything added, in order.
  std::string hex() const;
  /// One "field = value" line per input (long values shortened).
  const std::vector<std::string>& explain() const { return lines_; }

 private:
  std::string bytes_;
  std::vector<std::string> lines_;
};

}  // namespace dockless
