#include "src/transfer/progress.h"

#include <cstdio>
#include <mutex>

namespace dockless {

namespace {

/// The sink when none is given: only warnings, which must never be lost.
class WarningsOnlySink : public ProgressSink {
 public:
  void report(const ProgressEvent& event) override {
    if (event.kind != ProgressEvent::Kind::kWarning) return;
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(stderr, "dockless: warning: %s\n", event.message.c_str());
    std::fflush(stderr);
  }

 private:
  std::mutex mu_;
};

ProgressSink* warnings_only_sink() {
  static WarningsOnlySink sink;
  return &sink;
}

}  // namespace

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

Progress::Progress(ProgressSink* sink) : sink_(sink != nullptr ? sink : warnings_only_sink()) {}

void Progress::start(const std::string& id, const std::string& label, std::uint64_t total) {
  ProgressEvent e;
  e.kind = ProgressEvent::Kind::kStarted;
  e.id = id;
  e.label = label;
  e.total = total;
  sink_->report(e);
}

void Progress::update(const std::string& id, std::uint64_t done) {
  ProgressEvent e;
  e.kind = ProgressEvent::Kind::kAdvanced;
  e.id = id;
  e.done = done;
  sink_->report(e);
}

void Progress::finish(const std::string& id, const std::string& outcome) {
  ProgressEvent e;
  e.kind = ProgressEvent::Kind::kFinished;
  e.id = id;
  e.state = outcome;
  sink_->report(e);
}

void Progress::note(const std::string& line) {
  ProgressEvent e;
  e.kind = ProgressEvent::Kind::kNote;
  e.message = line;
  sink_->report(e);
}

void Progress::warn(const std::string& line) {
  ProgressEvent e;
  e.kind = ProgressEvent::Kind::kWarning;
  e.message = line;
  sink_->report(e);
}

}  // namespace dockless
