// The producers' side of progress: a small façade that turns "this blob
// started / moved / ended" calls into ProgressEvents for a sink. Printing
// is done by the sink the CLI passes in (src/cli/progress_printer.h).
#pragma once

#include <cstdint>
#include <string>

#include "src/transfer/progress_events.h"

namespace dockless {

class Progress {
 public:
  /// `sink` is not owned. Null: no progress, but warnings still reach stderr
  /// (as "dockless: warning: LINE"), so a library caller never loses one.
  explicit Progress(ProgressSink* sink);

  void start(const std::string& id, const std::string& label, std::uint64_t total);
  void update(const std::string& id, std::uint64_t done);
  /// `outcome`: "pulled", "already in registry", "mounted from R"...
  void finish(const std::string& id, const std::string& outcome);
  /// A line that is not about one blob (a retry notice, "writing manifest").
  void note(const std::string& line);
  /// Something the user should fix although the command goes on; shown
  /// even when progress is quiet.
  void warn(const std::string& line);

 private:
  ProgressSink* sink_;
};

/// "12.3 MiB".
std::string human_bytes(std::uint64_t bytes);

}  // namespace dockless
