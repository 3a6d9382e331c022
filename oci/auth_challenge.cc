#include "oci/auth_challenge.h"

#include <cctype>

namespace dockless {

namespace {
std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

std::vector<std::string> AuthChallenge::scopes() const {
  std::vector<std::string> out;
  std::string s = param("scope");
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t end = s.find(' ', pos);
    if (end == std::string::npos) end = s.size();
    if (end > pos) out.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

std::optional<AuthChallenge> parse_auth_challenge(std::string_view h) {
  std::size_t i = 0;
  auto skip_ws = [&] {
    while (i < h.size() && (h[i] == ' ' || h[i] == '\t')) ++i;
  };
  skip_ws();
  std::size_t start = i;
  while (i < h.size() && h[i] != ' ' && h[i] != '\t') ++i;
  AuthChallenge c;
  c.scheme = lower(h.substr(start, i - start));
  if (c.scheme != "bearer" && c.scheme != "basic") return std::nullopt;
  // auth-param list: key=value or key="quoted \" value", comma separated.
  while (i < h.size()) {
    skip_ws();
    std::size_t key_start = i;
    while (i < h.size() && h[i] != '=' && h[i] != ',') ++i;
    std::string key = lower(h.substr(key_start, i - key_start));
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    if (i >= h.size() || h[i] == ',') {
      ++i;
      continue;
    }
    ++i;  // '='
    skip_ws();
    std::string value;
    if (i < h.size() && h[i] == '"') {
      ++i;
      while (i < h.size() && h[i] != '"') {
        if (h[i] == '\\' && i + 1 < h.size()) ++i;
        value += h[i++];
      }
      ++i;  // closing quote
    } else {
      while (i < h.size() && h[i] != ',') value += h[i++];
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    }
    if (!key.empty()) c.params[key] = value;
    skip_ws();
    if (i < h.size() && h[i] == ',') ++i;
  }
  return c;
}

}  // namespace dockless
