#pragma once
// A work queue of object keys as controllers use it: a key waiting is queued
// once however often it is added, a key being processed is not handed out
// twice, and keys can come back after a delay.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

namespace minik::client {

class WorkQueue {
 public:
  void Add(const std::string& key) {
    std::lock_guard lock(mu_);
    if (queued_.insert(key).second) {
      items_.push_back(key);
      cv_.notify_one();
    }
  }
  void AddAfter(const std::string& key, std::chrono::milliseconds delay) {
    std::lock_guard lock(mu_);
    auto when = std::chrono::steady_clock::now() + delay;
    auto it = delayed_.find(key);
    if (it == delayed_.end() || when < it->second) {
      delayed_[key] = when;
    }
    cv_.notify_one();
  }
  // Blocks until a key is ready or the queue shuts down (nullopt).
  std::optional<std::string> Get() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (shutdown_) {
        return std::nullopt;
      }
      auto now = std::chrono::steady_clock::now();
      auto next = now + std::chrono::seconds(1);
      for (auto it = delayed_.begin(); it != delayed_.end();) {
        if (it->second <= now) {
          if (queued_.insert(it->first).second) {
            items_.push_back(it->first);
          }
          it = delayed_.erase(it);
        } else {
          next = std::min(next, it->second);
          ++it;
        }
      }
      for (auto it = items_.begin(); it != items_.end(); ++it) {
        if (!processing_.count(*it)) {
          std::string key = *it;
          items_.erase(it);
          queued_.erase(key);
          processing_.insert(key);
          return key;
        }
      }
      cv_.wait_until(lock, next);
    }
  }
  void Done(const std::string& key) {
    std::lock_guard lock(mu_);
    processing_.erase(key);
    cv_.notify_one();
  }
  void ShutDown() {
    std::lock_guard lock(mu_);
    shutdown_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> items_;
  std::set<std::string> queued_, processing_;
  std::map<std::string, std::chrono::steady_clock::time_point> delayed_;
  bool shutdown_ = false;
};

}  // namespace minik::client
