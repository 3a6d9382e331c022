#include "src/build/push_pipeline.h"


namespace dockless {

void start_push_pipeline(BuildState& s, const std::vector<Reference>& tags, int fresh_ahead) {
  if (!s.opt.push || tags.empty()) return;
  s.pusher = std::make_unique<BlobPusher>(s.transfer, tags, s.store, s.opt.transfer.jobs, s.started);
  s.pusher->open_sessions(fresh_ahead);
  int n = 0;
  for (const auto& l : s.base.layers)
    s.pusher->add(PushItem{l.descriptor, "base layer " + std::to_string(++n), &s.store,
                           s.base.image.source_registry, s.base.image.source_repo, false, nullptr, nullptr});
}

void push_layer_ahead(BuildState& s, const CachedLayer& layer, bool made_now,
                      std::shared_ptr<const std::string> bytes, std::shared_ptr<StreamedUpload> streamed) {
  if (!s.pusher || !s.plan.ships(layer)) return;
  PushItem item{layer.blob.descriptor, layer.name, &s.store, "", "", made_now, std::move(bytes), std::move(streamed)};
  // A layer left in a registry cache (--cache-from): mounted from there.
  if (!s.store.contains(layer.blob.descriptor.digest)) {
    auto remote = s.cache.remote_blobs();
    if (auto it = remote.find(layer.blob.descriptor.digest.str()); it != remote.end())
      std::tie(item.source_registry, item.source_repo) = it->second;
  }
  s.pusher->add(std::move(item));
}

void push_config_ahead(BuildState& s, const Descriptor& config, std::shared_ptr<const std::string> bytes) {
  if (!s.pusher) return;
  // A config is new whenever a layer is, and a few KiB sent again otherwise.
  s.pusher->add(PushItem{config, "config", &s.store, "", "", /*fresh=*/true, std::move(bytes), nullptr});
}

void finish_push_pipeline(BuildState& s) {
  if (!s.pusher) return;
  auto t = Clock::now();
  s.pushed_blobs = s.pusher->finish();
  s.tags_read = s.pusher->tags_read();
  s.uploads = s.pusher->timings();
  s.pusher.reset();
  s.note("uploads: " + std::to_string(s.uploads.size()) + " blobs, all in " + format_seconds(seconds_since(t)) +
         " after the image was assembled");
}

}  // namespace dockless
