#pragma once
// Leader election through a coordination.k8s.io Lease, as client-go does it:
// one holder renews the lease; a stand-by takes it over when it has not been
// renewed for `lease_seconds`. Lets a second controller manager or scheduler
// wait safely beside the first.

#include <atomic>
#include <memory>
#include <string>

#include "client/client.h"

namespace minik::client {

class LeaderElector {
 public:
  LeaderElector(std::shared_ptr<Client> c, std::string ns, std::string name, std::string identity,
                int lease_seconds = 15, int renew_seconds = 2);
  // Blocks until this process holds the lease (true) or `stop` is set (false).
  bool Acquire(const std::atomic<bool>& stop);
  // Renews the lease; false when it was lost (another holder, or not renewed in time).
  bool Renew();
  // Renews the lease every `renew_seconds` until `stop` is set (true) or the
  // lease is lost (false).
  bool KeepRenewed(const std::atomic<bool>& stop);
  // Gives the lease up (holder cleared, duration 1 s), as client-go's
  // ReleaseOnCancel does, so that the next instance takes over at once
  // instead of waiting for the lease to expire. Best effort.
  void Release();
  const std::string& identity() const { return identity_; }
  int renew_seconds() const { return renew_seconds_; }

 private:
  // One attempt to take or keep the lease.
  bool TryAcquireOrRenew();

  std::shared_ptr<Client> client_;
  std::string ns_, name_, identity_;
  int lease_seconds_, renew_seconds_;
  std::chrono::steady_clock::time_point last_renewed_;
};

}  // namespace minik::client
