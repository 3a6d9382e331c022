// Transfer progress for people: on a terminal, one live line per blob with
// bytes/total and speed; in a log, a plain line when a blob starts and one
// when it ends. Events come from the transfer threads; this is the only
// place that prints them.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace dockless {

class Progress {
 public:
  enum class Mode { kQuiet, kPlain, kTerminal };
  /// kTerminal when `out` is a TTY, else kPlain; kQuiet when quiet.
  static Mode detect(std::FILE* out, bool quiet);

  Progress(Mode mode, std::FILE* out);
  ~Progress();

  void start(const std::string& id, const std::string& label, std::uint64_t total);
  void update(const std::string& id, std::uint64_t done);
  /// `outcome`: "done", "exists", "mounted", "cached"...
  void finish(const std::string& id, const std::string& outcome);
  /// A line that is not about one blob (a retry notice, "writing manifest").
  void note(const std::string& line);
  /// "dockless: warning: LINE", printed even when quiet: something the user
  /// should fix although the command goes on.
  void warn(const std::string& line);

 private:
  struct Item {
    std::string label;
    std::uint64_t total = 0, done = 0;
    std::chrono::steady_clock::time_point started;
    std::string outcome;  // set when finished
  };
  void redraw_locked(bool force);
  std::string render(const Item& item) const;

  Mode mode_;
  std::FILE* out_;
  std::mutex mu_;
  std::vector<std::string> order_;
  std::map<std::string, Item> items_;
  int drawn_lines_ = 0;
  std::chrono::steady_clock::time_point last_draw_;
};

/// "12.3 MiB".
std::string human_bytes(std::uint64_t bytes);

}  // namespace dockless
