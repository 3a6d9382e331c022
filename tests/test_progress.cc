// Tests for the progress display (src/cli/progress_printer, fed through the
// producers' façade src/transfer/progress): the terminal display stays as
// small as the work in flight and never taller than the terminal; plain
// lines are the ones logs have always had; JSON lines parse and say which
// blob, how many bytes and how it ended.
#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "base/error.h"
#include "src/cli/progress_printer.h"
#include "src/transfer/progress.h"

using dockless::Progress;
using dockless::ProgressPrinter;
using dockless::ProgressStyle;

namespace {

/// A FILE* on a memfd whose bytes the test reads back.
class CapturedOutput {
 public:
  CapturedOutput() : fd_(::memfd_create("progress", 0)), file_(::fdopen(fd_, "w+")) {
    REQUIRE(file_ != nullptr);
  }
  ~CapturedOutput() { std::fclose(file_); }
  std::FILE* file() { return file_; }
  std::string text() {
    std::fflush(file_);
    std::string out;
    char buf[4096];
    ssize_t n;
    off_t pos = 0;
    while ((n = ::pread(fd_, buf, sizeof buf, pos)) > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      pos += n;
    }
    return out;
  }

 private:
  int fd_;
  std::FILE* file_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  return lines;
}

/// The height of every live area the printer erased ("ESC[NA", cursor up N).
std::vector<int> erased_heights(const std::string& text) {
  std::vector<int> heights;
  std::regex up("\x1b\\[([0-9]+)A");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), up); it != std::sregex_iterator(); ++it)
    heights.push_back(std::stoi((*it)[1].str()));
  return heights;
}

/// What is on screen after the last redraw: the text after the last erase.
std::string last_frame(const std::string& text) {
  auto pos = text.rfind("\x1b[J");
  return pos == std::string::npos ? text : text.substr(pos + 3);
}

std::string label(int i) { return "layer" + std::to_string(i) + ".tar"; }
std::string id(int i) { return "sha256:" + std::string(60, 'a') + std::to_string(1000 + i); }

}  // namespace

TEST_CASE("terminal: 100 blobs, 3 at a time: the live area is the 3 active ones plus a summary",
          "[progress]") {
  CapturedOutput out;
  {
    ProgressPrinter printer(ProgressStyle::kTerminal, out.file(), 24, 80);
    Progress progress(&printer);
    for (int i = 0; i < 100; ++i) {
      progress.start(id(i), label(i), 1000);
      progress.update(id(i), 500);
      if (i >= 2) progress.finish(id(i - 2), "pulled");  // 3 active at most
    }
  }
  std::string text = out.text();
  std::vector<int> heights = erased_heights(text);
  REQUIRE(heights.size() >= 100);
  CHECK(*std::max_element(heights.begin(), heights.end()) <= 3 + 1);
  // Every finished blob left exactly one permanent line behind.
  for (int i = 0; i < 98; ++i) {
    std::string line = label(i) + ": pulled in ";
    auto first = text.find(line);
    REQUIRE(first != std::string::npos);
    CHECK(text.find(line, first + 1) == std::string::npos);
  }
  // The last frame: the two blobs still going, then the summary.
  std::vector<std::string> frame = lines_of(last_frame(text));
  REQUIRE(frame.size() == 3);
  CHECK(frame[0].rfind(label(98) + "  500 B / 1000 B", 0) == 0);
  CHECK(frame[1].rfind(label(99) + "  500 B / 1000 B", 0) == 0);
  CHECK(frame[2].rfind("[98/100] ", 0) == 0);
}

TEST_CASE("terminal: more active blobs than rows never draws past the terminal", "[progress]") {
  CapturedOutput out;
  {
    ProgressPrinter printer(ProgressStyle::kTerminal, out.file(), 10, 40);
    Progress progress(&printer);
    for (int i = 0; i < 50; ++i) progress.start(id(i), label(i) + std::string(60, 'x'), 1 << 20);
    progress.note("writing manifest");
  }
  std::string text = out.text();
  std::vector<int> heights = erased_heights(text);
  REQUIRE(!heights.empty());
  CHECK(*std::max_element(heights.begin(), heights.end()) <= 9);
  std::vector<std::string> frame = lines_of(last_frame(text));
  REQUIRE(frame.size() == 9);
  CHECK(frame[7] == "... and 43 more");  // 7 shown
  CHECK(frame[8].rfind("[0/50] ", 0) == 0);
  for (const auto& line : frame) CHECK(line.size() < 40);  // never wraps
  CHECK(text.find("writing manifest\n") != std::string::npos);
}

TEST_CASE("terminal: a finished blob leaves the live area for one permanent line", "[progress]") {
  CapturedOutput out;
  ProgressPrinter printer(ProgressStyle::kTerminal, out.file(), 24, 80);
  Progress progress(&printer);
  progress.start(id(1), "a.tar", 2048);
  progress.start(id(2), "b.tar", 4096);
  progress.finish(id(1), "already in registry");
  std::string frame = last_frame(out.text());
  std::vector<std::string> lines = lines_of(frame);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].rfind("a.tar: already in registry in ", 0) == 0);
  CHECK(lines[1] == "b.tar  0 B / 4.0 KiB");
  CHECK(lines[2].rfind("[1/2] 2.0 KiB / 6.0 KiB", 0) == 0);
  CHECK(erased_heights(out.text()).back() == 3);  // a, b and the summary were erased
}

TEST_CASE("plain: the same lines as always; quiet keeps only warnings", "[progress]") {
  CapturedOutput out;
  {
    ProgressPrinter printer(ProgressStyle::kPlain, out.file());
    Progress progress(&printer);
    progress.start(id(1), "config", 1536);
    progress.update(id(1), 1000);
    progress.finish(id(1), "pushed");
    progress.finish(id(7), "pushed");  // never started: nothing to say
    progress.note("writing manifest sha256:abc to r/x:1");
    progress.warn("build cache r/c not used: 404");
  }
  std::vector<std::string> lines = lines_of(out.text());
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == "config: started (1.5 KiB)");
  CHECK(std::regex_match(lines[1], std::regex("config: pushed in [0-9]+\\.[0-9] s")));
  CHECK(lines[2] == "writing manifest sha256:abc to r/x:1");
  CHECK(lines[3] == "dockless: warning: build cache r/c not used: 404");

  CapturedOutput quiet;
  {
    ProgressPrinter printer(ProgressStyle::kQuiet, quiet.file());
    Progress progress(&printer);
    progress.start(id(1), "config", 1536);
    progress.finish(id(1), "pushed");
    progress.note("writing manifest");
    progress.warn("replacing r/x: 500");
  }
  CHECK(quiet.text() == "dockless: warning: replacing r/x: 500\n");
}

TEST_CASE("json: one object per event that carries digest, bytes and state", "[progress]") {
  CapturedOutput out;
  {
    ProgressPrinter printer(ProgressStyle::kJson, out.file());
    Progress progress(&printer);
    progress.start(id(1), "layer1.tar", 4096);
    progress.finish(id(1), "mounted from lib/base");
    progress.warn("slow \"registry\"");
  }
  std::vector<std::string> lines = lines_of(out.text());
  REQUIRE(lines.size() == 3);
  std::vector<rapidjson::Document> docs(lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    docs[i].Parse(lines[i].c_str());
    REQUIRE_FALSE(docs[i].HasParseError());
    REQUIRE(docs[i].IsObject());
  }
  CHECK(std::string(docs[0]["event"].GetString()) == "started");
  CHECK(std::string(docs[0]["id"].GetString()) == id(1));
  CHECK(docs[0]["total"].GetUint64() == 4096);
  CHECK(std::string(docs[1]["event"].GetString()) == "finished");
  CHECK(std::string(docs[1]["id"].GetString()) == id(1));
  CHECK(docs[1]["bytes"].GetUint64() == 4096);
  CHECK(std::string(docs[1]["state"].GetString()) == "mounted from lib/base");
  CHECK(std::string(docs[2]["event"].GetString()) == "warning");
  CHECK(std::string(docs[2]["message"].GetString()) == "slow \"registry\"");
}

TEST_CASE("--progress picks the style; -q wins; a wrong word is a usage error", "[progress]") {
  CapturedOutput out;  // a memfd, not a terminal
  CHECK(dockless::choose_progress_style("auto", false, out.file()) == ProgressStyle::kPlain);
  CHECK(dockless::choose_progress_style("tty", false, out.file()) == ProgressStyle::kTerminal);
  CHECK(dockless::choose_progress_style("plain", false, out.file()) == ProgressStyle::kPlain);
  CHECK(dockless::choose_progress_style("json", false, out.file()) == ProgressStyle::kJson);
  CHECK(dockless::choose_progress_style("json", true, out.file()) == ProgressStyle::kQuiet);
  CHECK_THROWS_AS(dockless::choose_progress_style("fancy", false, out.file()), dockless::UsageError);
}
