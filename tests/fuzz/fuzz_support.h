// Shared by the fuzz targets: the rule that a parser either returns or throws
// dockless::Error (anything else is a bug the fuzzer must report), invariant
// checks that abort with a message, and scratch directories on tmpfs.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "base/error.h"

namespace dockless::fuzz {

/// Aborts (a crash to libFuzzer and to the replay test) with a reason.
[[noreturn]] inline void fail(const std::string& why) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", why.c_str());
  std::fflush(stderr);
  std::abort();
}

inline void check(bool ok, const std::string& why) {
  if (!ok) fail(why);
}

/// Runs fn; dockless::Error (and UsageError) is an accepted answer to bad
/// input, any other exception is a bug. Returns whether fn returned.
template <typename Fn>
bool returns_or_throws_error(Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const Error&) {
    return false;
  } catch (const std::exception& e) {
    fail(std::string("exception other than dockless::Error: ") + typeid(e).name() + ": " + e.what());
  } catch (...) {
    fail("non-std exception");
  }
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// One scratch directory per process (on tmpfs when there is one), emptied
/// by clear() after each input and removed at exit.
class Scratch {
 public:
  Scratch() {
    std::error_code ec;
    std::string base = std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/dockless-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) fail("mkdtemp failed");
    path_ = tmpl;
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  const std::filesystem::path& path() const { return path_; }

  /// Removes everything inside, keeping the directory itself (directories
  /// an input made unreadable are opened up first, for a non-root run).
  void clear() const {
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(path_, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_directory(ec) && !it->is_symlink(ec))
        std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all,
                                     std::filesystem::perm_options::add, ec);
    for (std::filesystem::directory_iterator it(path_, ec), end; !ec && it != end; it.increment(ec))
      std::filesystem::remove_all(it->path(), ec);
  }

  void write(const std::filesystem::path& rel, std::string_view bytes) const {
    std::filesystem::create_directories((path_ / rel).parent_path());
    std::ofstream out(path_ / rel, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) fail("cannot write scratch file " + (path_ / rel).string());
  }

 private:
  std::filesystem::path path_;
};

}  // namespace dockless::fuzz
