// The image configuration (OCI image spec "config.md"; Docker's is a superset
// whose extra fields are kept as unknown fields).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/digest.h"
#include "oci/json_util.h"

namespace dockless {

/// What the runtime uses to start a container ("config" in the document).
struct ContainerConfig {
  std::string user;
  std::optional<std::vector<std::string>> exposed_ports;  ///< "80/tcp" keys
  std::vector<std::string> env;                           ///< "K=V", order kept
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> cmd;
  std::optional<std::vector<std::string>> volumes;
  std::string working_dir;
  std::map<std::string, std::string> labels;
  std::string stop_signal;
  json::UnknownFields unknown;  ///< Healthcheck, Shell, ArgsEscaped, ...

  /// Sets K in env, replacing an existing K=... in place.
  void set_env(const std::string& key, const std::string& value);
  /// The value of K in env, if present.
  std::optional<std::string> get_env(const std::string& key) const;
};

struct HistoryEntry {
  std::string created;  ///< RFC 3339; empty = absent
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;
  json::UnknownFields unknown;
};

struct ImageConfig {
  std::string created;  ///< RFC 3339; empty = absent
  std::string author;
  std::string architecture;
  std::string os;
  std::string os_version;
  std::string variant;
  ContainerConfig config;
  std::vector<Digest> diff_ids;
  std::vector<HistoryEntry> history;
  json::UnknownFields unknown;

  static ImageConfig parse(std::string_view text);
  /// Compact, byte-stable JSON.
  std::string to_json() const;
};

/// RFC 3339 UTC time of a Unix time: "2023-11-14T22:13:20Z".
std::string format_rfc3339(long long unix_seconds);

}  // namespace dockless
