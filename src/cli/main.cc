// dockless's entry point: the one place that prints errors and picks the exit
// status (0 ok, 1 failure, 2 usage error).
#include <csignal>
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "base/error.h"
#include "src/cli/cli.h"

namespace {
void print_error(const char* what) {
  std::string line(what);
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  std::fprintf(stderr, "dockless: error: %s\n", line.c_str());
}
}  // namespace

int main(int argc, char** argv) {
  // A closed pipe (dockless inspect | head) is an EPIPE error, not a kill.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return dockless::run_cli(argc, argv);
  } catch (const dockless::UsageError& e) {
    print_error(e.what());
    return 2;
  } catch (const dockless::Error& e) {
    print_error(e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    print_error("out of memory");
    return 1;
  } catch (const std::exception& e) {
    print_error(e.what());
    return 1;
  }
}
