// Runs a function over items on a few threads: how blob transfers use
// --jobs. The first exception stops new work and is rethrown to the caller
// once every running item has ended.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace dockless {

template <class T, class Fn>
void parallel_for_each(const std::vector<T>& items, int jobs, Fn fn) {
  std::size_t threads = std::min<std::size_t>(items.size(), static_cast<std::size_t>(std::max(jobs, 1)));
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first_error;
  std::mutex error_mu;
  auto worker = [&] {
    for (;;) {
      std::size_t i = next.fetch_add(1);
      if (i >= items.size() || failed.load()) return;
      try {
        fn(items[i]);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!first_error) first_error = std::current_exception();
        failed = true;
      }
    }
  };
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (std::size_t t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (auto& th : pool) th.join();
  }
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace dockless
