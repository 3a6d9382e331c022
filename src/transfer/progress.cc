#include "src/transfer/progress.h"

#include <unistd.h>

namespace dockless {

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

Progress::Mode Progress::detect(std::FILE* out, bool quiet) {
  if (quiet) return Mode::kQuiet;
  return ::isatty(::fileno(out)) ? Mode::kTerminal : Mode::kPlain;
}

Progress::Progress(Mode mode, std::FILE* out) : mode_(mode), out_(out) {}

Progress::~Progress() {
  std::lock_guard<std::mutex> lock(mu_);
  if (mode_ == Mode::kTerminal) redraw_locked(true);
}

void Progress::start(const std::string& id, const std::string& label, std::uint64_t total) {
  if (mode_ == Mode::kQuiet) return;
  std::lock_guard<std::mutex> lock(mu_);
  Item item;
  item.label = label;
  item.total = total;
  item.started = std::chrono::steady_clock::now();
  if (items_.emplace(id, item).second) order_.push_back(id);
  if (mode_ == Mode::kPlain) {
    std::fprintf(out_, "%s: started (%s)\n", label.c_str(), human_bytes(total).c_str());
    std::fflush(out_);
  } else {
    redraw_locked(true);
  }
}

void Progress::update(const std::string& id, std::uint64_t done) {
  if (mode_ != Mode::kTerminal) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = items_.find(id);
  if (it == items_.end()) return;
  it->second.done = done;
  redraw_locked(false);
}

void Progress::finish(const std::string& id, const std::string& outcome) {
  if (mode_ == Mode::kQuiet) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = items_.find(id);
  if (it == items_.end()) return;
  it->second.outcome = outcome;
  it->second.done = it->second.total;
  if (mode_ == Mode::kPlain) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                it->second.started)
                      .count();
    std::fprintf(out_, "%s: %s in %.1f s\n", it->second.label.c_str(), outcome.c_str(), secs);
    std::fflush(out_);
  } else {
    redraw_locked(true);
  }
}

void Progress::note(const std::string& line) {
  if (mode_ == Mode::kQuiet) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (mode_ == Mode::kTerminal && drawn_lines_ > 0) {
    // Print above the live block, then draw it again below.
    std::fprintf(out_, "\x1b[%dA\x1b[J", drawn_lines_);
    drawn_lines_ = 0;
  }
  std::fprintf(out_, "%s\n", line.c_str());
  if (mode_ == Mode::kTerminal) redraw_locked(true);
  std::fflush(out_);
}

void Progress::warn(const std::string& line) {
  if (mode_ != Mode::kQuiet) return note("dockless: warning: " + line);
  std::lock_guard<std::mutex> lock(mu_);
  std::fprintf(out_, "dockless: warning: %s\n", line.c_str());
  std::fflush(out_);
}

std::string Progress::render(const Item& item) const {
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - item.started).count();
  std::string line = item.label + "  ";
  if (!item.outcome.empty()) return line + item.outcome;
  line += human_bytes(item.done) + " / " + human_bytes(item.total);
  if (secs > 0.2 && item.done > 0)
    line += "  " + human_bytes(static_cast<std::uint64_t>(static_cast<double>(item.done) / secs)) + "/s";
  return line;
}

void Progress::redraw_locked(bool force) {
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  if (drawn_lines_ > 0) std::fprintf(out_, "\x1b[%dA", drawn_lines_);
  for (const auto& id : order_) std::fprintf(out_, "\x1b[2K%s\n", render(items_.at(id)).c_str());
  drawn_lines_ = static_cast<int>(order_.size());
  std::fflush(out_);
}

}  // namespace dockless
