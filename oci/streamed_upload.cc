#include "oci/streamed_upload.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"

namespace dockless {

namespace {
/// Thrown by the body reader to end the PATCH when the upload gave up.
struct GaveUp : Error {
  GaveUp() : Error("streamed upload given up") {}
};
}  // namespace

StreamedUpload::StreamedUpload(RegistryClient& client, std::string repo, std::size_t bound)
    : client_(client), repo_(std::move(repo)), bound_(bound) {
  thread_ = std::thread([this] { run(); });
}

StreamedUpload::~StreamedUpload() {
  abandon();
  thread_.join();
  if (!committed_ && !session_.empty()) client_.cancel_upload(repo_, session_);
}

void StreamedUpload::feed(const void* data, std::size_t size) {
  if (size == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (gave_up_ || ended_) return;
  if (pending_bytes_ + size > bound_) {
    gave_up_ = true;  // the registry is behind: the blob goes the usual way
  } else {
    pending_.emplace_back(static_cast<const char*>(data), size);
    pending_bytes_ += size;
    fed_ += size;
  }
  changed_.notify_all();
}

void StreamedUpload::end() {
  std::lock_guard<std::mutex> lock(mu_);
  ended_ = true;
  changed_.notify_all();
}

void StreamedUpload::abandon() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ended_) gave_up_ = true;
  changed_.notify_all();
}

std::size_t StreamedUpload::read(char* buf, std::size_t cap) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return gave_up_ || ended_ || !pending_.empty(); });
  if (gave_up_) throw GaveUp();
  std::size_t n = 0;
  while (n < cap && !pending_.empty()) {
    const std::string& front = pending_.front();
    const std::size_t take = std::min(cap - n, front.size() - offset_);
    std::memcpy(buf + n, front.data() + offset_, take);
    n += take;
    offset_ += take;
    pending_bytes_ -= take;
    if (offset_ == front.size()) {
      pending_.pop_front();
      offset_ = 0;
    }
  }
  return n;  // 0 only once ended and drained
}

void StreamedUpload::run() {
  std::string session;
  std::uint64_t received = 0;
  try {
    session = client_.open_upload(repo_);
    session = client_.stream_into(repo_, session, [this](char* buf, std::size_t cap) { return read(buf, cap); },
                                  &received);
  } catch (const Error&) {
    // Given up, or the registry refused: the caller uploads the usual way.
    received = 0;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (received == 0) gave_up_ = true;
  session_ = session;
  received_ = received;
  sent_ = true;
  changed_.notify_all();
}

bool StreamedUpload::commit(const Descriptor& blob) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return sent_; });
    if (gave_up_ || !ended_ || received_ != fed_ || fed_ != static_cast<std::uint64_t>(blob.size)) return false;
  }
  try {
    client_.commit_upload(repo_, session_, blob);
  } catch (const Error&) {
    return false;  // a wrong digest or a refusal: sent again the usual way
  }
  committed_ = true;
  return true;
}

}  // namespace dockless
