// What a long-running command reports while it works: structured events
// that producers (transfers, builds, the cache) hand to a sink. How the
// events look on screen or in a CI log is the sink's business (the CLI's
// printer); producers never print progress themselves.
#pragma once

#include <cstdint>
#include <string>

namespace dockless {

struct ProgressEvent {
  enum class Kind { kStarted, kAdvanced, kFinished, kNote, kWarning };
  Kind kind = Kind::kNote;
  std::string id;            ///< the item, e.g. a blob digest; empty for notes and warnings
  std::string label;         ///< how people name the item (kStarted)
  std::uint64_t done = 0;    ///< bytes done so far (kAdvanced)
  std::uint64_t total = 0;   ///< bytes in all (kStarted)
  std::string state;         ///< outcome (kFinished): "pulled", "already in registry", "mounted from R"...
  std::string message;       ///< the line of a kNote or kWarning
};

/// Where events go. report() is called from several transfer threads at
/// once, so every sink must be thread-safe.
class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  virtual void report(const ProgressEvent& event) = 0;
};

}  // namespace dockless
