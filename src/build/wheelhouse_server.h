// The --wheels-from files served to uv on a loopback HTTP port while a
// build runs. Not file:// URLs, though uv 0.13 takes them: uv caches a
// local file as a ".rev" entry, which the image's shipped uv cache cannot
// use for the project's own uv.lock (its http URLs need ".http" entries);
// downloaded over HTTP, a wheel lands in the uv cache as it does from the
// index. GET and HEAD only, one connection at a time, "Connection: close";
// every other path is a 404 whose reason says the file is not in the
// wheelhouse (uv quotes it), or a 304 when uv revalidates a copy in its
// cache (If-None-Match / If-Modified-Since): under --offline every URL of
// uv.lock leads here, and a cached file must stay usable.
#pragma once

#include <filesystem>
#include <string>
#include <thread>

namespace dockless {

class WheelhouseServer {
 public:
  /// Serves the files under `dir` at http://127.0.0.1:<port>/<path in dir>
  /// until destroyed. Throws Error when it cannot listen.
  explicit WheelhouseServer(std::filesystem::path dir);
  ~WheelhouseServer();
  WheelhouseServer(const WheelhouseServer&) = delete;
  WheelhouseServer& operator=(const WheelhouseServer&) = delete;

  /// "http://127.0.0.1:PORT"
  std::string base_url() const;

 private:
  void run();
  void serve(int fd) const;

  std::filesystem::path dir_;
  int listen_fd_ = -1;
  int stop_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
};

}  // namespace dockless
