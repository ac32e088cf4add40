#include "client/leader_election.h"

#include <thread>

#include "common/clock.h"
#include "common/log.h"

namespace minik::client {

LeaderElector::LeaderElector(std::shared_ptr<Client> c, std::string ns, std::string name,
                             std::string identity, int lease_seconds, int renew_seconds)
    : client_(std::move(c)),
      ns_(std::move(ns)),
      name_(std::move(name)),
      identity_(std::move(identity)),
      lease_seconds_(lease_seconds),
      renew_seconds_(renew_seconds) {}

bool LeaderElector::TryAcquireOrRenew() {
  std::string base = "/apis/coordination.k8s.io/v1/namespaces/" + ns_ + "/leases";
  std::string now = FormatMicroTime(Now());
  json lease;
  try {
    lease = client_->Get(base + "/" + name_);
  } catch (const ApiError& e) {
    if (e.code != 404) {
      throw;
    }
    client_->Post(base, {{"apiVersion", "coordination.k8s.io/v1"},
                         {"kind", "Lease"},
                         {"metadata", {{"name", name_}, {"namespace", ns_}}},
                         {"spec",
                          {{"holderIdentity", identity_},
                           {"leaseDurationSeconds", lease_seconds_},
                           {"acquireTime", now},
                           {"renewTime", now},
                           {"leaseTransitions", 0}}}});
    return true;
  }
  json& spec = lease["spec"];
  std::string holder = spec.value("holderIdentity", "");
  if (holder != identity_ && !holder.empty()) {
    SystemTime renewed{};
    ParseTime(spec.value("renewTime", ""), &renewed);
    int duration = spec.value("leaseDurationSeconds", lease_seconds_);
    if (Now() < renewed + std::chrono::seconds(duration)) {
      return false;  // someone else holds it and keeps it fresh
    }
    spec["leaseTransitions"] = spec.value("leaseTransitions", 0) + 1;
    spec["acquireTime"] = now;
    log::Info("taking over lease {}/{} from {}", ns_, name_, holder);
  }
  spec["holderIdentity"] = identity_;
  spec["leaseDurationSeconds"] = lease_seconds_;
  spec["renewTime"] = now;
  // The resourceVersion in the body makes this a compare-and-swap: two
  // candidates cannot both win.
  client_->Put(base + "/" + name_, lease);
  return true;
}

bool LeaderElector::Acquire(const std::atomic<bool>& stop) {
  bool waiting_logged = false;
  while (!stop) {
    try {
      if (TryAcquireOrRenew()) {
        last_renewed_ = std::chrono::steady_clock::now();
        log::Info("acquired lease {}/{} as {}", ns_, name_, identity_);
        return true;
      }
      if (!waiting_logged) {
        log::Info("lease {}/{} is held by another instance; standing by", ns_, name_);
        waiting_logged = true;
      }
    } catch (const std::exception& e) {
      log::Debug("lease {}/{}: {}", ns_, name_, e.what());
    }
    for (int i = 0; i < renew_seconds_ * 10 && !stop; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return false;
}

bool LeaderElector::Renew() {
  try {
    if (TryAcquireOrRenew()) {
      last_renewed_ = std::chrono::steady_clock::now();
      return true;
    }
    return false;
  } catch (const std::exception& e) {
    log::Warn("renew lease {}/{}: {}", ns_, name_, e.what());
    // Transient failures are fine until the lease would expire.
    return std::chrono::steady_clock::now() - last_renewed_ <
           std::chrono::seconds(lease_seconds_ - renew_seconds_);
  }
}

bool LeaderElector::KeepRenewed(const std::atomic<bool>& stop) {
  while (!stop) {
    for (int i = 0; i < renew_seconds_ * 10 && !stop; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!stop && !Renew()) {
      log::Error("lost the lease {}/{}", ns_, name_);
      return false;
    }
  }
  return true;
}

void LeaderElector::Release() {
  std::string path = "/apis/coordination.k8s.io/v1/namespaces/" + ns_ + "/leases/" + name_;
  try {
    json lease = client_->Get(path);
    if (GetString(lease, "spec.holderIdentity") != identity_) {
      return;
    }
    std::string now = FormatMicroTime(Now());
    lease["spec"]["holderIdentity"] = "";
    lease["spec"]["leaseDurationSeconds"] = 1;
    lease["spec"]["renewTime"] = now;
    lease["spec"]["acquireTime"] = now;
    client_->Put(path, lease);
    log::Info("released lease {}/{}", ns_, name_);
  } catch (const std::exception& e) {
    log::Warn("release lease {}/{}: {}", ns_, name_, e.what());
  }
}

}  // namespace minik::client
