#include "src/cache/cache_key.h"


namespace dockless {

CacheKey::CacheKey(std::string_view kind) { add("kind", kind); }

CacheKey& CacheKey::add(std::string_view field, std::string_view value) {
  // field and value each prefixed with their length: no two inputs collide.
  bytes_ += std::to_string(field.size()) + ":" + std::string(field) + "=" +
            std::to_string(value.size()) + ":" + std::string(value) + ";";
  std::string shown(value.substr(0, 120));
  if (value.size() > 120) shown += "...";
  lines_.push_back(std::string(field) + " = " + shown);
  return *this;
}

CacheKey& CacheKey::add(std::string_view field, const std::vector<std::string>& values) {
  std::string joined;
  for (const auto& v : values) joined += std::to_string(v.size()) + ":" + v + ",";
  return add(field, joined);
}

CacheKey& CacheKey::add(std::string_view field, bool value) {
  return add(field, std::string_view(value ? "true" : "false"));
}

std::string CacheKey::hex() const { return sha256_of(bytes_).hex(); }

}  // namespace dockless
