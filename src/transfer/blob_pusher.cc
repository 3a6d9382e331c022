#include "src/transfer/blob_pusher.h"

#include <algorithm>

#include "base/error.h"
#include "src/transfer/tag_contents.h"

namespace dockless {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

BlobPusher::BlobPusher(ImageTransfer& transfer, const std::vector<Reference>& destinations,
                       const BlobStore& store, int jobs, Clock::time_point zero)
    : transfer_(transfer), zero_(zero) {
  std::set<std::string> seen;
  for (const auto& ref : destinations)
    if (seen.insert(ref.registry + "/" + ref.repository).second)
      destinations_.push_back(Destination{ref, &transfer_.client(ref.registry), {}, {}});
  for (auto& d : destinations_) d.at_tag = read_tag(*d.client, d.ref, store);
  int threads = std::max(jobs, 1);
  // Entries are descriptors, not bytes: the bound keeps a stalled registry
  // from letting the queue grow with every layer, at no memory cost.
  bound_ = static_cast<std::size_t>(threads) * 16;
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

BlobPusher::~BlobPusher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  changed_.notify_all();
  for (auto& t : threads_) t.join();
}

void BlobPusher::add(PushItem item) {
  std::unique_lock<std::mutex> lock(mu_);
  if (error_) std::rethrow_exception(error_);
  if (!queued_.insert(item.blob.digest.str()).second) return;
  changed_.wait(lock, [&] { return queue_.size() < bound_ || error_ || stopping_; });
  if (error_) std::rethrow_exception(error_);
  queue_.push_back(std::move(item));
  changed_.notify_all();
}

void BlobPusher::open_sessions(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (n <= 0 || error_) return;
  sessions_wanted_ += n;
  changed_.notify_all();
}

std::string BlobPusher::take_session(Destination& d) {
  std::lock_guard<std::mutex> lock(mu_);
  if (d.sessions.empty()) return "";
  std::string s = std::move(d.sessions.back());
  d.sessions.pop_back();
  return s;
}

std::set<std::string> BlobPusher::finish() {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return error_ || (queue_.empty() && busy_ == 0 && sessions_wanted_ == 0); });
  if (error_) std::rethrow_exception(error_);
  for (auto& d : destinations_) {
    for (const auto& session : d.sessions) d.client->cancel_upload(d.ref.repository, session);
    d.sessions.clear();
  }
  return pushed_;
}

std::vector<UploadTiming> BlobPusher::timings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return timings_;
}

std::map<std::string, TagContents> BlobPusher::tags_read() const {
  std::map<std::string, TagContents> out;
  for (const auto& d : destinations_)
    if (!d.ref.tag.empty()) out[d.ref.str()] = d.at_tag;
  return out;
}

void BlobPusher::fail(std::exception_ptr e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_) error_ = e;
  queue_.clear();  // nothing more goes out: the build fails, no manifest is pushed
  changed_.notify_all();
}

void BlobPusher::work() {
  for (;;) {
    PushItem item;
    bool open_session = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return stopping_ || !queue_.empty() || sessions_wanted_ > 0; });
      if (stopping_ || error_) return;
      ++busy_;
      if (sessions_wanted_ > 0) {
        --sessions_wanted_;
        open_session = true;
      } else {
        item = std::move(queue_.front());
        queue_.pop_front();
        changed_.notify_all();  // a slot in the queue is free
      }
    }
    if (open_session) {
      try {
        for (auto& d : destinations_) {
          std::string session = d.client->open_upload(d.ref.repository);
          std::lock_guard<std::mutex> lock(mu_);
          d.sessions.push_back(std::move(session));
        }
      } catch (const Error&) {
        // A session opened ahead is an optimisation: the upload opens its own.
      }
      std::lock_guard<std::mutex> lock(mu_);
      --busy_;
      changed_.notify_all();
      continue;
    }
    bool everywhere = true;
    try {
      for (auto& d : destinations_) everywhere = push_one(item, d) && everywhere;
    } catch (...) {
      fail(std::current_exception());
      everywhere = false;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (everywhere) pushed_.insert(item.blob.digest.str());
    --busy_;
    changed_.notify_all();
  }
}

bool BlobPusher::push_one(const PushItem& item, Destination& d) {
  const Descriptor& b = item.blob;
  const std::string repo = d.ref.registry + "/" + d.ref.repository;
  const std::string id = b.digest.str() + (destinations_.size() > 1 ? " " + repo : "");
  // A mount is a registry's own copy: only within one registry, across repositories.
  const std::string mount_from =
      item.source_registry == d.ref.registry && item.source_repo != d.ref.repository ? item.source_repo : "";
  auto start = Clock::now();
  std::string action;
  bool streamed = false;
  const bool at_tag = d.at_tag.blobs.count(b.digest.str()) > 0;  // in the repository already: no HEAD
  if (at_tag || item.bytes || (item.store != nullptr && item.store->contains(b.digest))) {
    Progress& progress = transfer_.progress();
    progress.start(id, short_label(b), static_cast<std::uint64_t>(b.size));
    auto update = [&](std::uint64_t done) { progress.update(id, done); };
    BlobPushOutcome outcome = BlobPushOutcome::kSkipped;
    const bool unasked = item.fresh && b.size <= kFreshUploadLimit;  // sent without a HEAD
    if (at_tag) {
      // In the repository already.
    } else if (item.streamed && item.streamed->registry() == d.ref.registry &&
               item.streamed->repository() == d.ref.repository && item.streamed->commit(b)) {
      outcome = BlobPushOutcome::kUploaded;
      streamed = true;
    } else if (item.bytes) {
      if (unasked || !d.client->blob_exists(d.ref.repository, b.digest)) {
        d.client->upload_bytes(d.ref.repository, b, *item.bytes, update, take_session(d));
        outcome = BlobPushOutcome::kUploaded;
      }
    } else if (unasked) {
      d.client->upload_blob(d.ref.repository, b, item.store->path_of(b.digest), transfer_.chunk_size(), update,
                            take_session(d));
      outcome = BlobPushOutcome::kUploaded;
    } else {
      outcome = d.client->push_blob(d.ref.repository, b, item.store->path_of(b.digest), mount_from,
                                    transfer_.chunk_size(), update);
    }
    action = outcome == BlobPushOutcome::kUploaded  ? "transferred"
             : outcome == BlobPushOutcome::kMounted ? "mounted"
                                                    : "skipped";
    progress.finish(id, outcome == BlobPushOutcome::kUploaded  ? "pushed"
                        : outcome == BlobPushOutcome::kMounted ? "mounted from " + mount_from
                                                               : "already in registry");
  } else if (d.client->blob_exists(d.ref.repository, b.digest)) {
    action = "skipped";
  } else if (!mount_from.empty() && d.client->mount_blob(d.ref.repository, b.digest, mount_from)) {
    action = "mounted";
  } else {
    return false;  // in another registry: the final push streams it across
  }
  std::lock_guard<std::mutex> lock(mu_);
  timings_.push_back(UploadTiming{item.label, repo, b.digest, action, seconds_between(zero_, start),
                                  seconds_between(zero_, Clock::now()), streamed});
  return true;
}

}  // namespace dockless
