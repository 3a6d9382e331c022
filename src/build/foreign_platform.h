// A build for a platform this machine cannot execute (linux/arm64 on an
// amd64 host): what needs emulation and whether binfmt_misc offers it, the
// uv --python-platform for the target, and the check that a venv made by
// the host-platform twin of the base is valid in the target's.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "oci/platform.h"

namespace dockless {

/// True when `target` runs natively here (same OS and architecture).
bool runs_natively(const Platform& target, const Platform& host);

/// The ELF e_machine of a platform's binaries (EM_X86_64 62, EM_AARCH64 183,
/// ...), or 0 when unknown.
int elf_machine_of(const Platform& platform);

/// Whether `binfmt_dir` (/proc/sys/fs/binfmt_misc) has an enabled handler
/// with the F flag (interpreter opened at registration, so it works inside
/// a sandbox's root) whose magic and mask match ELF executables of `platform`.
bool binfmt_handler_for(const Platform& platform,
                        const std::filesystem::path& binfmt_dir = "/proc/sys/fs/binfmt_misc");

/// The one line a build fails with when `what` needs emulation and there is none.
std::string emulation_hint(const Platform& platform, const std::string& what);

/// Packages of uv.lock (`lock_text`) that have an sdist and no wheel for
/// `platform` (none tagged `any` or a linux tag of its architecture):
/// uv would build them on the host, wrong for the target. "name==version".
std::vector<std::string> sdist_only_packages(std::string_view lock_text, const std::string& lock_name,
                                             const Platform& platform);

/// uv's --python-platform for `platform` from the glibc of the root
/// filesystem `rootfs` (dpkg's libc6 version, else libc-2.NN.so's name),
/// clamped to what uv accepts (manylinux_2_28 .. 2_40), 2_28 when unknown:
/// "aarch64-manylinux_2_36".
std::string python_platform_for(const Platform& platform, const std::filesystem::path& rootfs);

/// Parses "2.36-9+deb12u4" (a libc6 version) into 36; -1 when it is no glibc 2.x version.
int glibc_minor(std::string_view version);

/// "3.11" from the interpreter `python` (an image path) in `rootfs`, its
/// symlinks resolved inside that root; "" when it is missing or its name
/// does not say.
std::string python_minor_in(const std::filesystem::path& rootfs, const std::string& python);

/// Refuses (Error, one line naming both) unless `python` exists in both root
/// filesystems with the same major.minor.
void check_same_python(const std::filesystem::path& target_rootfs, const Platform& target,
                       const std::filesystem::path& host_rootfs, const Platform& host, const std::string& python);

}  // namespace dockless
