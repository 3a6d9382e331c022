#include "oci/reference.h"

#include <cstddef>
#include <string>
#include <string_view>

#include "base/error.h"

namespace dockless {

namespace {

constexpr std::string_view kDockerHub = "docker.io";
constexpr std::string_view kDockerHubLegacy = "index.docker.io";
constexpr std::string_view kDockerHubApiHost = "registry-1.docker.io";
constexpr std::string_view kOfficialPrefix = "library/";
constexpr std::string_view kDefaultTag = "latest";
// distribution/reference caps the repository path (registry excluded) at 255.
constexpr std::size_t kMaxRepositoryLength = 255;
constexpr std::size_t kMaxTagLength = 128;
constexpr unsigned long kMaxPort = 65535;

// Locale-independent classes: the grammar is ASCII only.
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || is_digit(c); }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_alnum(char c) { return is_lower_alnum(c) || is_upper(c); }
bool is_word(char c) { return is_alnum(c) || c == '_'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool contains_upper(std::string_view s) {
  for (char c : s)
    if (is_upper(c)) return true;
  return false;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
bool is_path_component(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  auto alnum_run = [&] {
    std::size_t start = i;
    while (i < n && is_lower_alnum(s[i])) ++i;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < n) {
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      ++i;
      if (i < n && s[i] == '_') ++i;  // "__" is one separator, "___" is not
    } else if (s[i] == '-') {
      while (i < n && s[i] == '-') ++i;
    } else {
      return false;
    }
    if (!alnum_run()) return false;  // separators must sit between alphanumerics
  }
  return true;
}

// [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool is_domain_component(std::string_view s) {
  if (s.empty() || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  for (char c : s)
    if (!is_alnum(c) && c != '-') return false;
  return true;
}

bool is_domain_name(std::string_view s) {
  for (;;) {
    std::size_t dot = s.find('.');
    if (!is_domain_component(s.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    s.remove_prefix(dot + 1);
  }
}

// [\w][\w.-]{0,127}
bool is_valid_tag(std::string_view s) {
  if (s.empty() || s.size() > kMaxTagLength || !is_word(s.front())) return false;
  for (char c : s)
    if (!is_word(c) && c != '.' && c != '-') return false;
  return true;
}

// Docker refuses a bare 64-hex reference: it would be mistaken for an image ID.
bool is_image_id(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!is_digit(c) && !(c >= 'a' && c <= 'f')) return false;
  return true;
}

// The first path component is a registry by docker's rule, not by lookup.
bool looks_like_registry(std::string_view component) {
  return component.find_first_of(".:") != std::string_view::npos || component == "localhost";
}

class ReferenceParser {
 public:
  explicit ReferenceParser(std::string_view text) : text_(text) {}

  Reference parse() {
    if (text_.empty()) fail("reference is empty");
    if (is_image_id(text_))
      fail("a 64-hex string is an image ID, not a reference; use name@sha256:<hex>");

    Reference ref;
    std::string_view name = text_;

    // '@' cannot occur in a name or tag, so the first one starts the digest.
    if (std::size_t at = name.find('@'); at != std::string_view::npos) {
      std::string_view digest_text = name.substr(at + 1);
      if (digest_text.empty()) fail("digest after '@' is empty");
      try {
        ref.digest = Digest::parse(digest_text);
      } catch (const Error& e) {
        fail(e.what());
      }
      name = name.substr(0, at);
    }

    // A ':' after the last '/' starts the tag; an earlier one belongs to a port.
    std::size_t colon = name.rfind(':');
    std::size_t slash = name.rfind('/');
    if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
      ref.tag = std::string(name.substr(colon + 1));
      name = name.substr(0, colon);
      check_tag(ref.tag);
    }

    if (name.empty()) fail("repository name is empty");

    std::string_view path = name;
    if (std::size_t first_slash = name.find('/');
        first_slash != std::string_view::npos && looks_like_registry(name.substr(0, first_slash))) {
      std::string_view registry = name.substr(0, first_slash);
      check_registry(registry);
      ref.registry = std::string(registry);
      path = name.substr(first_slash + 1);
    }
    if (ref.registry.empty() || ref.registry == kDockerHubLegacy) ref.registry = kDockerHub;

    check_path(path);
    ref.repository = std::string(path);
    // Docker Hub's official images live under library/.
    if (ref.registry == kDockerHub && path.find('/') == std::string_view::npos)
      ref.repository.insert(0, kOfficialPrefix);

    if (ref.repository.size() > kMaxRepositoryLength)
      fail("repository name \"" + ref.repository + "\" is too long (" +
           std::to_string(ref.repository.size()) + " characters, maximum " +
           std::to_string(kMaxRepositoryLength) + ")");

    if (ref.tag.empty() && !ref.digest) ref.tag = kDefaultTag;
    return ref;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error("invalid reference " + quoted(text_) + ": " + why);
  }

  void check_tag(std::string_view tag) const {
    if (tag.empty()) fail("tag after ':' is empty");
    if (tag.size() > kMaxTagLength)
      fail("tag is too long (" + std::to_string(tag.size()) + " characters, maximum " +
           std::to_string(kMaxTagLength) + ")");
    if (!is_valid_tag(tag))
      fail("invalid tag " + quoted(tag) +
           ": must start with a letter, digit or '_' and contain only letters, digits, '_', "
           "'.' and '-'");
  }

  void check_registry(std::string_view registry) const {
    std::string_view host = registry;
    std::string_view port;
    bool has_port = false;
    if (registry.front() == '[') {
      // IPv6 literal: "[hex:...]" then an optional ":port".
      std::size_t close = registry.find(']');
      if (close == std::string_view::npos)
        fail("registry " + quoted(registry) + " has an unclosed '[' in its IPv6 address");
      std::string_view address = registry.substr(1, close - 1);
      bool address_ok = !address.empty();
      for (char c : address)
        if (!is_hex(c) && c != ':') address_ok = false;
      if (!address_ok)
        fail("registry " + quoted(registry) + " has an invalid IPv6 address " + quoted(address));
      host = registry.substr(0, close + 1);
      std::string_view rest = registry.substr(close + 1);
      if (!rest.empty()) {
        if (rest.front() != ':')
          fail("registry " + quoted(registry) + " has unexpected text after the IPv6 address");
        has_port = true;
        port = rest.substr(1);
      }
    } else {
      // Domain components cannot hold ':', so the first one separates the port.
      std::size_t colon = registry.find(':');
      if (colon != std::string_view::npos) {
        host = registry.substr(0, colon);
        port = registry.substr(colon + 1);
        has_port = true;
      }
      if (!is_domain_name(host))
        fail("invalid registry host " + quoted(host) +
             ": expected a domain name, IPv4 address, [IPv6] address or localhost");
    }
    if (has_port) check_port(registry, port);
  }

  void check_port(std::string_view registry, std::string_view port) const {
    if (port.empty()) fail("registry " + quoted(registry) + " has an empty port after ':'");
    unsigned long value = 0;
    for (char c : port) {
      if (!is_digit(c))
        fail("invalid port " + quoted(port) + " in registry " + quoted(registry) +
             ": must be a number");
      value = value * 10 + static_cast<unsigned long>(c - '0');
      if (value > kMaxPort) break;  // stop before a long digit string overflows
    }
    if (value > kMaxPort)
      fail("invalid port " + quoted(port) + " in registry " + quoted(registry) +
           ": must be at most 65535");
  }

  void check_path(std::string_view path) const {
    if (path.empty()) fail("repository path is empty");
    // Checked before the grammar so the message names the usual mistake.
    if (contains_upper(path)) fail("repository name must be lowercase");
    if (path.back() == '/') fail("repository path ends with '/'");
    for (;;) {
      std::size_t slash = path.find('/');
      std::string_view component = path.substr(0, slash);
      if (component.empty())
        fail("repository path has an empty component (leading or doubled '/')");
      if (!is_path_component(component))
        fail("invalid path component " + quoted(component) +
             ": use lowercase letters and digits, separated by '.', '_', '__' or dashes");
      if (slash == std::string_view::npos) break;
      path.remove_prefix(slash + 1);
    }
  }

  std::string_view text_;
};

}  // namespace

Reference Reference::parse(std::string_view text) { return ReferenceParser(text).parse(); }

std::string Reference::str() const {
  std::string out = registry + "/" + repository;
  if (!tag.empty()) out += ":" + tag;
  if (digest) out += "@" + digest->str();
  return out;
}

std::string Reference::manifest_ref() const { return digest ? digest->str() : tag; }

std::string Reference::api_host() const {
  return registry == kDockerHub ? std::string(kDockerHubApiHost) : registry;
}

}  // namespace dockless
