// WWW-Authenticate challenges (RFC 7235) as registries send them:
//   Bearer realm="https://auth/token",service="registry",scope="repository:a:pull"
//   Basic realm="Registry Realm"
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dockless {

struct AuthChallenge {
  std::string scheme;  ///< lowercase: "bearer" or "basic"
  std::map<std::string, std::string> params;  ///< keys lowercase

  std::string param(const std::string& key) const {
    auto it = params.find(key);
    return it == params.end() ? "" : it->second;
  }
  /// The space-separated scopes of the "scope" parameter.
  std::vector<std::string> scopes() const;
};

/// Parses one header value; nullopt when it holds no scheme we understand.
std::optional<AuthChallenge> parse_auth_challenge(std::string_view header);

}  // namespace dockless
