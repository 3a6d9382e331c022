#include "oci/streamed_upload.h"

#include "base/error.h"

namespace dockless {

namespace {
/// Thrown by the body reader to end the PATCH when the upload gave up.
struct GaveUp : Error {
  GaveUp() : Error("streamed upload given up") {}
};
}  // namespace

StreamedUpload::StreamedUpload(RegistryClient& client, std::string repo, std::size_t bound)
    : client_(client), repo_(std::move(repo)), pipe_(bound) {
  thread_ = std::thread([this] { run(); });
}

StreamedUpload::StreamedUpload(RegistryClient& client, std::string repo, std::shared_ptr<GrowingFile> file)
    : client_(client), repo_(std::move(repo)), pipe_(0), file_(std::move(file)) {
  thread_ = std::thread([this] { run(); });
}

StreamedUpload::~StreamedUpload() {
  abandon();
  thread_.join();
  if (!committed_ && !session_.empty()) client_.cancel_upload(repo_, session_);
}

void StreamedUpload::give_up() {
  gave_up_ = true;
  pipe_.close(std::make_exception_ptr(GaveUp()));
}

void StreamedUpload::feed(const void* data, std::size_t size) {
  if (size == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (gave_up_ || ended_) return;
  // Never waits: when the registry is this far behind (or the PATCH is
  // over), the blob goes the usual way.
  if (pipe_.try_write(static_cast<const char*>(data), size))
    fed_ += size;
  else
    give_up();
}

void StreamedUpload::end() {
  std::lock_guard<std::mutex> lock(mu_);
  ended_ = true;
  pipe_.close(nullptr);
}

void StreamedUpload::abandon() {
  if (file_) {
    file_->abandon();  // no-op once whole; else its reader stops waiting
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!ended_ && !gave_up_) give_up();
}

void StreamedUpload::run() {
  std::string session;
  std::uint64_t received = 0;
  try {
    session = client_.open_upload(repo_);
    session = client_.stream_into(
        repo_, session,
        [this](char* buf, std::size_t cap) { return file_ ? file_->read(buf, cap) : pipe_.read(buf, cap); },
        &received);
  } catch (const Error&) {
    // Given up, or the registry refused: the caller uploads the usual way.
    received = 0;
  }
  pipe_.cancel();  // a feed after the PATCH gives up at once
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
    if (file_) {
      ended_ = file_->whole();
      fed_ = file_->size();
    }
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
