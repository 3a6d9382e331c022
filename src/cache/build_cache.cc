#include "src/cache/build_cache.h"

#include <set>

#include "base/error.h"

namespace dockless {

BuildCache::BuildCache(const LayerCache& local, const BlobStore& store, ImageTransfer& transfer,
                       bool no_cache, bool download_hits)
    : local_(local), store_(store), transfer_(transfer), no_cache_(no_cache), download_hits_(download_hits) {}

void BuildCache::open(const std::vector<Reference>& from) {
  Progress& progress = transfer_.progress();
  for (const auto& ref : from) {
    try {
      std::optional<BuildCacheIndex> index = read_build_cache(transfer_.client(ref.registry), ref, store_);
      if (!index) {
        progress.note("no build cache at " + ref.str() + " yet");
        continue;
      }
      progress.note("build cache " + ref.str() + ": " + std::to_string(index->entries.size()) + " entries");
      remotes_.push_back(Remote{ref, std::move(*index)});
    } catch (const Error& e) {
      progress.warn("build cache " + ref.str() + " not used: " + e.what());
    }
  }
}

void BuildCache::download(const Remote& cache, const std::vector<CachedLayer>& layers) const {
  std::vector<Descriptor> blobs;
  for (const auto& l : layers) blobs.push_back(l.blob.descriptor);
  transfer_.fetch_missing(cache.ref.registry, cache.ref.repository, blobs, store_);
}

void BuildCache::fetch(const std::vector<CachedLayer>& layers) const {
  for (const auto& l : layers) {
    if (store_.contains(l.blob.descriptor.digest)) continue;
    auto it = remote_blobs_.find(l.blob.descriptor.digest.str());
    if (it == remote_blobs_.end())
      throw Error("layer " + l.name + " (" + l.blob.descriptor.digest.str() + ") is in no store or cache");
    download(*it->second, {l});
  }
}

std::optional<std::vector<CachedLayer>> BuildCache::find(
    const std::string& key, std::string& origin, const std::function<bool(const CachedLayer&)>& wanted) {
  if (no_cache_) return std::nullopt;
  if (auto hit = local_.find(key)) {
    origin = "hit";
    return hit;
  }
  for (const auto& remote : remotes_) {
    const BuildCacheEntry* e = remote.index.find(key);
    if (e == nullptr) continue;
    std::vector<CachedLayer> needed;
    for (const auto& l : e->layers)
      if (!wanted || wanted(l)) needed.push_back(l);
    try {
      if (download_hits_) download(remote, needed);
    } catch (const Error& err) {
      transfer_.progress().warn("build cache " + remote.ref.str() + ": " + err.what() + "; building instead");
      continue;
    }
    bool all_here = true;
    for (const auto& l : e->layers) {
      if (store_.contains(l.blob.descriptor.digest)) continue;
      remote_blobs_[l.blob.descriptor.digest.str()] = &remote;
      all_here = false;
    }
    if (all_here) local_.put(key, e->layers);
    origin = "remote";
    return e->layers;
  }
  return std::nullopt;
}

std::vector<BuildCache::RemoteEntry> BuildCache::remote_slot(const std::string& slot,
                                                             const BuildCacheIndex& like) const {
  std::vector<RemoteEntry> out;
  for (const auto& remote : remotes_) {
    const BuildCacheIndex& x = remote.index;
    if (x.platform != like.platform || x.uv_version != like.uv_version || x.uv_cache_dir != like.uv_cache_dir)
      continue;
    if (const BuildCacheEntry* e = x.find_slot(slot)) out.push_back(RemoteEntry{&remote, e});
  }
  return out;
}

std::map<std::string, std::pair<std::string, std::string>> BuildCache::remote_blobs() const {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for (const auto& [digest, remote] : remote_blobs_)
    if (!store_.contains(Digest::parse(digest))) out[digest] = {remote->ref.registry, remote->ref.repository};
  return out;
}

Digest BuildCache::write(const Reference& to, BuildCacheIndex index) {
  RegistryClient& client = transfer_.client(to.registry);
  std::set<std::string> slots;
  for (const auto& e : index.entries) slots.insert(e.slot);
  // What the cache there had: read again unless it is one of the caches read.
  std::optional<BuildCacheIndex> before;
  for (const auto& remote : remotes_)
    if (remote.ref.registry == to.registry && remote.ref.repository == to.repository && remote.ref.tag == to.tag)
      before = remote.index;
  if (!before) {
    try {
      before = read_build_cache(client, to, store_);
    } catch (const Error& e) {
      transfer_.progress().warn("replacing " + to.str() + ": " + e.what());
    }
  }
  if (before && before->platform == index.platform)
    for (const auto& e : before->entries)
      if (!slots.count(e.slot)) index.entries.push_back(e);
  // Layers this build left in another repository: mounted, else copied.
  for (const auto& e : index.entries)
    for (const auto& l : e.layers) {
      const Descriptor& d = l.blob.descriptor;
      auto src = remote_blobs_.find(d.digest.str());
      if (store_.contains(d.digest) || src == remote_blobs_.end()) continue;
      const Reference& from = src->second->ref;
      if ((from.registry == to.registry && from.repository == to.repository) ||
          client.blob_exists(to.repository, d.digest))
        continue;
      if (from.registry != to.registry || !client.mount_blob(to.repository, d.digest, from.repository))
        transfer_.client(from.registry).fetch_blob(from.repository, d, store_);
    }
  return write_build_cache(client, to, index, store_, transfer_.jobs(), transfer_.chunk_size());
}

}  // namespace dockless
