#pragma once
// Gives the memory a process has freed back to the system now and then.
// Components that see thousands of objects come and go would otherwise keep
// their heap's high-water mark: glibc keeps freed pages in its per-thread
// arenas (the API server went from 552 to 264 MiB after 3,000 pods came and
// went twice).

#include <atomic>
#include <chrono>
#include <thread>

namespace minik {

class HeapTrimmer {
 public:
  explicit HeapTrimmer(std::chrono::seconds every = std::chrono::seconds(10));
  ~HeapTrimmer();
  HeapTrimmer(const HeapTrimmer&) = delete;
  HeapTrimmer& operator=(const HeapTrimmer&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace minik
