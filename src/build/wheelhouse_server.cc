#include "src/build/wheelhouse_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/error.h"

namespace dockless {

namespace {

constexpr int kRequestTimeoutMs = 10000;  // a client that sends nothing cannot hold the server
constexpr std::size_t kMaxRequest = 16384;

bool send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

/// The request line and headers, or "" when the client sent none in time.
std::string read_request(int fd) {
  std::string req;
  char buf[4096];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < kMaxRequest) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kRequestTimeoutMs) <= 0) return "";
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    req.append(buf, static_cast<std::size_t>(n));
  }
  return req;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// "/<64 hex>/<file name>", percent-decoded; "" for any other path.
std::string file_of(const std::string& target) {
  std::string path;
  for (std::size_t i = 0; i < target.size() && target[i] != '?' && target[i] != '#'; ++i) {
    if (target[i] == '%' && i + 2 < target.size() && hex_digit(target[i + 1]) >= 0 && hex_digit(target[i + 2]) >= 0) {
      path += static_cast<char>(hex_digit(target[i + 1]) * 16 + hex_digit(target[i + 2]));
      i += 2;
    } else {
      path += target[i];
    }
  }
  if (path.size() < 67 || path[0] != '/' || path[65] != '/') return "";
  for (std::size_t i = 1; i < 65; ++i)
    if (hex_digit(path[i]) < 0) return "";
  std::string name = path.substr(66);
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos)
    return "";
  return path.substr(1);
}

/// The request asks to revalidate a copy (If-None-Match / If-Modified-Since).
bool conditional(const std::string& request) {
  std::string lower;
  for (char c : request) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return lower.find("\r\nif-none-match:") != std::string::npos ||
         lower.find("\r\nif-modified-since:") != std::string::npos;
}

void answer(int fd, const std::string& status, const std::string& extra, const std::string& body) {
  std::string head = "HTTP/1.1 " + status + "\r\nConnection: close\r\n" + extra +
                     "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  send_all(fd, head.data(), head.size());
}

}  // namespace

WheelhouseServer::WheelhouseServer(std::filesystem::path dir) : dir_(std::move(dir)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw_errno("wheelhouse server: socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || ::pipe2(stop_, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(listen_fd_);
    throw_errno("wheelhouse server: cannot listen on 127.0.0.1 (is loopback up?)", e);
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

WheelhouseServer::~WheelhouseServer() {
  if (::write(stop_[1], "x", 1) < 0) { /* the thread also ends when the pipe closes */ }
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(stop_[0]);
  ::close(stop_[1]);
}

std::string WheelhouseServer::base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

void WheelhouseServer::run() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    serve(fd);
    ::close(fd);
  }
}

void WheelhouseServer::serve(int fd) const {
  std::string req = read_request(fd);
  auto sp1 = req.find(' ');
  auto sp2 = sp1 == std::string::npos ? sp1 : req.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) return answer(fd, "400 Bad Request", "", "");
  std::string method = req.substr(0, sp1), rel = file_of(req.substr(sp1 + 1, sp2 - sp1 - 1));
  if (method != "GET" && method != "HEAD") return answer(fd, "405 Method Not Allowed", "", "");
  int file = rel.empty() ? -1 : ::open((dir_ / rel).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat st {};
  if (file < 0 || ::fstat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (file >= 0) ::close(file);
    // uv revalidating a stale entry of its cache (for a file the wheelhouse
    // lacks): the copy it holds is the locked one, and uv checks its hash.
    if (conditional(req)) return answer(fd, "304 Not Modified", "", "");
    return answer(fd, "404 Not in the --wheels-from wheelhouse, and --offline fetches nothing else", "",
                  "not in the --wheels-from wheelhouse\n");
  }
  // Immutable, as on files.pythonhosted.org: the name holds the digest.
  std::string head = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n"
                     "Cache-Control: max-age=365000000, immutable, public\r\nContent-Length: " +
                     std::to_string(st.st_size) + "\r\n\r\n";
  bool ok = send_all(fd, head.data(), head.size());
  std::vector<char> buf(1 << 16);
  while (ok && method == "GET") {
    ssize_t n = ::read(file, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ok = send_all(fd, buf.data(), static_cast<std::size_t>(n));
  }
  ::close(file);
}

}  // namespace dockless
