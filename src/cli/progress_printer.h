// The one place progress reaches people: turns the ProgressEvents of
// transfers and builds into a live terminal display, plain log lines, or
// JSON lines for CI. Made by the CLI and passed to the commands as their
// ProgressSink.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "src/transfer/progress_events.h"

namespace dockless {

enum class ProgressStyle {
  kQuiet,     ///< warnings only (-q)
  kPlain,     ///< one line when an item starts, one when it ends
  kTerminal,  ///< live lines for the active items plus a summary, redrawn
  kJson,      ///< one JSON object per event per line
};

/// --progress auto|plain|tty|json with -q. auto: tty when `out` is a
/// terminal, else plain. -q wins over every style: it promises silence.
/// Throws UsageError for another word.
ProgressStyle choose_progress_style(const std::string& option, bool quiet, std::FILE* out);

class ProgressPrinter : public ProgressSink {
 public:
  /// `rows`/`columns` 0: the terminal's size (TIOCGWINSZ), else 24x80.
  ProgressPrinter(ProgressStyle style, std::FILE* out, int rows = 0, int columns = 0);
  /// Leaves the terminal display with only its final summary line.
  ~ProgressPrinter() override;

  void report(const ProgressEvent& event) override;

 private:
  using Clock = std::chrono::steady_clock;
  struct Item {
    std::string label;
    std::uint64_t total = 0, done = 0;
    Clock::time_point started, last_json;
    bool finished = false;
  };

  /// Keeps items_/active_ current; false for an event about an unknown item.
  bool track(const ProgressEvent& event);
  void print_plain(const ProgressEvent& event);
  void print_json(const ProgressEvent& event);
  void print_terminal(const ProgressEvent& event);
  /// "LABEL: STATE in 1.2 s", the line of a finished item in every text style.
  std::string finished_line(const std::string& id, const std::string& state) const;
  void redraw(bool force);
  std::vector<std::string> live_lines() const;
  std::string item_line(const Item& item) const;
  std::string summary_line() const;
  int rows() const;
  int columns() const;

  ProgressStyle style_;
  std::FILE* out_;
  int rows_, columns_;
  std::mutex mu_;
  std::map<std::string, Item> items_;
  std::vector<std::string> active_;     ///< started, not finished; in start order
  std::vector<std::string> permanent_;  ///< lines to print above the live area
  std::uint64_t moved_ = 0;             ///< bytes actually transferred (for the speed)
  std::size_t finished_ = 0;
  Clock::time_point first_start_, last_draw_;
  int drawn_lines_ = 0;  ///< height of the live area on screen now
};

}  // namespace dockless
