#include "common/heap.h"

#include <malloc.h>

namespace minik {

HeapTrimmer::HeapTrimmer(std::chrono::seconds every) {
  thread_ = std::thread([this, every] {
    auto next = std::chrono::steady_clock::now() + every;
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (std::chrono::steady_clock::now() >= next) {
        malloc_trim(0);
        next = std::chrono::steady_clock::now() + every;
      }
    }
  });
}

HeapTrimmer::~HeapTrimmer() {
  stop_ = true;
  thread_.join();
}

}  // namespace minik
