#include "src/build/python_dist.h"

namespace dockless {

std::string normalize_python_name(std::string_view name) {
  std::string out;
  bool sep = false;
  for (char c : name) {
    if (c == '-' || c == '_' || c == '.') {
      sep = true;
      continue;
    }
    if (sep && !out.empty()) out += '-';
    sep = false;
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return out;
}

std::optional<std::pair<std::string, std::string>> dist_info_name(const std::string& dir) {
  const std::string suffix = ".dist-info";
  if (dir.size() <= suffix.size() || dir.compare(dir.size() - suffix.size(), suffix.size(), suffix) != 0)
    return std::nullopt;
  std::string stem = dir.substr(0, dir.size() - suffix.size());
  std::size_t dash = stem.find('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == stem.size()) return std::nullopt;
  return std::make_pair(stem.substr(0, dash), stem.substr(dash + 1));
}

}  // namespace dockless
