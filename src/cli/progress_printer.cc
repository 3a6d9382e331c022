#include "src/cli/progress_printer.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "base/error.h"
#include "src/transfer/progress.h"

namespace dockless {

namespace {

using Kind = ProgressEvent::Kind;

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kStarted: return "started";
    case Kind::kAdvanced: return "advanced";
    case Kind::kFinished: return "finished";
    case Kind::kNote: return "note";
    case Kind::kWarning: return "warning";
  }
  return "note";
}

/// At most `width` columns (bytes; never cutting a UTF-8 sequence), so a live
/// line never wraps and the cursor-up count stays right.
std::string fit(std::string line, int width) {
  std::size_t n = static_cast<std::size_t>(width > 1 ? width - 1 : 1);
  if (line.size() <= n) return line;
  while (n > 0 && (static_cast<unsigned char>(line[n]) & 0xC0) == 0x80) --n;
  line.resize(n);
  return line;
}

winsize terminal_size(std::FILE* out) {
  winsize ws{};
  if (::ioctl(::fileno(out), TIOCGWINSZ, &ws) != 0) ws = winsize{};
  return ws;
}

}  // namespace

ProgressStyle choose_progress_style(const std::string& option, bool quiet, std::FILE* out) {
  ProgressStyle style;
  if (option == "auto" || option.empty())
    style = ::isatty(::fileno(out)) ? ProgressStyle::kTerminal : ProgressStyle::kPlain;
  else if (option == "plain") style = ProgressStyle::kPlain;
  else if (option == "tty") style = ProgressStyle::kTerminal;
  else if (option == "json") style = ProgressStyle::kJson;
  else throw UsageError("--progress \"" + option + "\": expected auto, plain, tty or json");
  return quiet ? ProgressStyle::kQuiet : style;
}

ProgressPrinter::ProgressPrinter(ProgressStyle style, std::FILE* out, int rows, int columns)
    : style_(style), out_(out), rows_(rows), columns_(columns) {}

ProgressPrinter::~ProgressPrinter() {
  std::lock_guard<std::mutex> lock(mu_);
  if (style_ == ProgressStyle::kTerminal) redraw(true);
}

void ProgressPrinter::report(const ProgressEvent& event) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!track(event)) return;
  switch (style_) {
    case ProgressStyle::kQuiet:
      if (event.kind == Kind::kWarning) print_plain(event);
      break;
    case ProgressStyle::kPlain: print_plain(event); break;
    case ProgressStyle::kJson: print_json(event); break;
    case ProgressStyle::kTerminal: print_terminal(event); break;
  }
}

bool ProgressPrinter::track(const ProgressEvent& event) {
  auto now = Clock::now();
  if (event.kind == Kind::kStarted) {
    if (items_.empty()) first_start_ = now;
    Item item;
    item.label = event.label;
    item.total = event.total;
    item.started = now;
    if (items_.emplace(event.id, item).second) active_.push_back(event.id);
    return true;
  }
  if (event.kind != Kind::kAdvanced && event.kind != Kind::kFinished) return true;
  auto it = items_.find(event.id);
  if (it == items_.end()) return false;
  Item& item = it->second;
  if (event.kind == Kind::kAdvanced) {
    if (event.done > item.done) moved_ += event.done - item.done;
    item.done = event.done;
    return true;
  }
  if (item.finished) return true;
  item.finished = true;
  item.done = item.total;
  ++finished_;
  std::erase(active_, event.id);
  return true;
}

std::string ProgressPrinter::finished_line(const std::string& id, const std::string& state) const {
  const Item& item = items_.at(id);
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f",
                std::chrono::duration<double>(Clock::now() - item.started).count());
  return item.label + ": " + state + " in " + secs + " s";
}

// The same lines as before events existed: the integration tests and
// people's log scrapers read them.
void ProgressPrinter::print_plain(const ProgressEvent& event) {
  switch (event.kind) {
    case Kind::kStarted:
      std::fprintf(out_, "%s: started (%s)\n", event.label.c_str(), human_bytes(event.total).c_str());
      break;
    case Kind::kAdvanced: return;
    case Kind::kFinished:
      std::fprintf(out_, "%s\n", finished_line(event.id, event.state).c_str());
      break;
    case Kind::kNote: std::fprintf(out_, "%s\n", event.message.c_str()); break;
    case Kind::kWarning: std::fprintf(out_, "dockless: warning: %s\n", event.message.c_str()); break;
  }
  std::fflush(out_);
}

void ProgressPrinter::print_json(const ProgressEvent& event) {
  auto now = Clock::now();
  auto it = items_.find(event.id);
  if (event.kind == Kind::kAdvanced) {
    // A blob reports every buffer it moves; a CI log wants about one line a second.
    if (now - it->second.last_json < std::chrono::seconds(1)) return;
    it->second.last_json = now;
  }
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("event");
  w.String(kind_name(event.kind));
  if (event.kind == Kind::kNote || event.kind == Kind::kWarning) {
    w.Key("message");
    w.String(event.message.c_str());
  } else {
    const Item& item = it->second;
    w.Key("id");
    w.String(event.id.c_str());
    w.Key("label");
    w.String(item.label.c_str());
    w.Key("bytes");
    w.Uint64(item.done);
    w.Key("total");
    w.Uint64(item.total);
  }
  if (event.kind == Kind::kFinished) {
    w.Key("state");
    w.String(event.state.c_str());
    w.Key("seconds");
    w.Double(std::chrono::duration<double>(now - it->second.started).count());
  }
  w.EndObject();
  std::fprintf(out_, "%s\n", buf.GetString());
  std::fflush(out_);
}

// A finished item prints one permanent line above the live area, as buildah
// ("Copying blob ... done") and docker (each layer's "Pull complete") leave
// one line per blob behind: the scrollback then says what happened to every
// blob, while the live area stays as small as the work in flight.
void ProgressPrinter::print_terminal(const ProgressEvent& event) {
  switch (event.kind) {
    case Kind::kStarted: break;
    case Kind::kAdvanced: return redraw(false);
    case Kind::kFinished: permanent_.push_back(finished_line(event.id, event.state)); break;
    case Kind::kNote: permanent_.push_back(event.message); break;
    case Kind::kWarning: permanent_.push_back("dockless: warning: " + event.message); break;
  }
  redraw(true);
}

void ProgressPrinter::redraw(bool force) {
  auto now = Clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  std::string frame;
  if (drawn_lines_ > 0) frame += "\x1b[" + std::to_string(drawn_lines_) + "A\x1b[J";
  for (const auto& line : permanent_) frame += line + "\n";
  permanent_.clear();
  std::vector<std::string> live = live_lines();
  for (const auto& line : live) frame += fit(line, columns()) + "\n";
  drawn_lines_ = static_cast<int>(live.size());
  std::fputs(frame.c_str(), out_);
  std::fflush(out_);
}

// The active items and one summary line, never taller than the terminal:
// items that do not fit are counted in a "... more" line, as ninja shows
// only what it can.
std::vector<std::string> ProgressPrinter::live_lines() const {
  std::vector<std::string> lines;
  if (items_.empty()) return lines;
  std::size_t budget = static_cast<std::size_t>(std::max(2, rows() - 1)) - 1;  // minus the summary
  std::size_t shown = active_.size() <= budget ? active_.size() : budget - 1;
  for (std::size_t i = 0; i < shown; ++i) lines.push_back(item_line(items_.at(active_[i])));
  if (shown < active_.size())
    lines.push_back("... and " + std::to_string(active_.size() - shown) + " more");
  lines.push_back(summary_line());
  return lines;
}

std::string ProgressPrinter::item_line(const Item& item) const {
  double secs = std::chrono::duration<double>(Clock::now() - item.started).count();
  std::string line = item.label + "  " + human_bytes(item.done) + " / " + human_bytes(item.total);
  if (secs > 0.2 && item.done > 0)
    line += "  " + human_bytes(static_cast<std::uint64_t>(static_cast<double>(item.done) / secs)) + "/s";
  return line;
}

std::string ProgressPrinter::summary_line() const {
  std::uint64_t done = 0, total = 0;
  for (const auto& [id, item] : items_) {
    done += item.done;
    total += item.total;
  }
  std::string line = "[" + std::to_string(finished_) + "/" + std::to_string(items_.size()) + "] " +
                     human_bytes(done) + " / " + human_bytes(total);
  double secs = std::chrono::duration<double>(Clock::now() - first_start_).count();
  if (secs > 0.2 && moved_ > 0)
    line += "  " + human_bytes(static_cast<std::uint64_t>(static_cast<double>(moved_) / secs)) + "/s";
  return line;
}

int ProgressPrinter::rows() const {
  if (rows_ > 0) return rows_;
  winsize ws = terminal_size(out_);
  return ws.ws_row > 0 ? ws.ws_row : 24;
}

int ProgressPrinter::columns() const {
  if (columns_ > 0) return columns_;
  winsize ws = terminal_size(out_);
  return ws.ws_col > 0 ? ws.ws_col : 80;
}

}  // namespace dockless
