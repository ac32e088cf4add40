#include "controllers/controller.h"

#include "common/log.h"

namespace minik::controllers {

QueueController::QueueController(std::string name, Context ctx, int workers)
    : ctx_(std::move(ctx)), name_(std::move(name)), workers_(workers) {}

QueueController::~QueueController() {
  Stop();
}

void QueueController::Start() {
  for (int i = 0; i < workers_; ++i) {
    threads_.emplace_back([this] { Work(); });
  }
}

void QueueController::Stop() {
  queue_.ShutDown();
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
  threads_.clear();
}

void QueueController::Work() {
  while (auto key = queue_.Get()) {
    try {
      Sync(*key);
      std::lock_guard lock(failures_mu_);
      failures_.erase(*key);
    } catch (const std::exception& e) {
      int n;
      {
        std::lock_guard lock(failures_mu_);
        n = ++failures_[*key];
      }
      auto delay = std::chrono::milliseconds(100) * (1 << std::min(n - 1, 9));
      delay = std::min<std::chrono::milliseconds>(delay, std::chrono::seconds(30));
      log::Warn("{} controller: sync {}: {} (retry {} in {}ms)", name_, *key, e.what(), n,
                delay.count());
      queue_.AddAfter(*key, delay);
    }
    queue_.Done(*key);
  }
}

void Expectations::Expect(const std::string& key, int adds, int deletes) {
  std::lock_guard lock(mu_);
  pending_[key] = Pending{adds, deletes, std::chrono::steady_clock::now()};
}

void Expectations::CreationObserved(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(key);
  if (it != pending_.end() && it->second.adds > 0) {
    --it->second.adds;
  }
}

void Expectations::DeletionObserved(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(key);
  if (it != pending_.end() && it->second.deletes > 0) {
    --it->second.deletes;
  }
}

bool Expectations::Satisfied(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(key);
  if (it == pending_.end()) {
    return true;
  }
  if ((it->second.adds <= 0 && it->second.deletes <= 0) ||
      std::chrono::steady_clock::now() - it->second.at > std::chrono::minutes(5)) {
    pending_.erase(it);
    return true;
  }
  return false;
}

void Expectations::Forget(const std::string& key) {
  std::lock_guard lock(mu_);
  pending_.erase(key);
}

}  // namespace minik::controllers
