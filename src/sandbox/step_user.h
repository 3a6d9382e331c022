// The user a build step runs as (`user = "..."`), resolved the way a
// container runtime does against the image's own /etc/passwd and /etc/group
// (not the host's: a step may run as a user an earlier step created).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace dockless::sandbox_detail {

struct StepUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  ///< supplementary groups, the primary one first
  std::string home = "/";
};

/// The colon-separated fields of each line of a passwd or group file
/// (empty lines and comments left out).
std::vector<std::vector<std::string>> passwd_records(const std::string& text);

/// A file's text; "" when `p` is nullopt or cannot be read.
std::string read_or_empty(const std::optional<std::filesystem::path>& p);

/// Resolves "NAME", "UID", "UID:GID", "NAME:GROUP" (or any mix) against the
/// text of passwd and group files. A numeric uid missing from passwd gets
/// gid 0 and HOME "/". Throws UsageError for a name that is not there.
StepUser resolve_step_user(const std::string& spec, const std::string& passwd,
                           const std::string& group);

/// The same, with /etc/passwd and /etc/group read through the layer stack
/// (see layer_stack.h); a missing file reads as empty.
StepUser resolve_step_user_in(const std::string& spec,
                              const std::vector<std::filesystem::path>& layers,
                              const std::filesystem::path& rootfs);

}  // namespace dockless::sandbox_detail
