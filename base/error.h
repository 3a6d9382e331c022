// The one error style of dockless: exceptions carrying their context.
// Everything below main() throws; only main() prints and picks the exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace dockless {

/// A failure the user can act on. what() is one line, ready to print after
/// "dockless: ". It never contains a credential.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A bad command line: printed like Error, but exits with status 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

/// Throws Error("<what>: <strerror(errno)>") for the current errno.
[[noreturn]] void throw_errno(const std::string& what);

/// Same, for an explicit error number (e.g. one returned by a pthread call).
[[noreturn]] void throw_errno(const std::string& what, int errnum);

}  // namespace dockless
