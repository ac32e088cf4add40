#include "scheduler/scheduler.h"

#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "api/quantity.h"
#include "client/client.h"
#include "client/events.h"
#include "client/leader_election.h"
#include "common/clock.h"
#include "common/exec.h"
#include "common/log.h"

namespace minik::scheduler {
namespace {

bool Pending(const json& pod) {
  std::string sched = GetString(pod, "spec.schedulerName", "default-scheduler");
  std::string phase = GetString(pod, "status.phase");
  return GetString(pod, "spec.nodeName").empty() && sched == "default-scheduler" &&
         !Find(pod, "metadata.deletionTimestamp") && phase != "Succeeded" && phase != "Failed";
}

bool Active(const json& pod) {
  std::string phase = GetString(pod, "status.phase");
  return phase != "Succeeded" && phase != "Failed";
}

class Scheduler {
 public:
  explicit Scheduler(std::shared_ptr<client::Client> c)
      : client_(c),
        informers_(std::make_shared<client::InformerFactory>(c)),
        events_(std::make_shared<client::EventRecorder>(c, "default-scheduler")) {
    pods_ = informers_->For(client::resources::kPods);
    nodes_ = informers_->For(client::resources::kNodes);
    pvs_ = informers_->For(client::resources::kPersistentVolumes);
    pvcs_ = informers_->For(client::resources::kPersistentVolumeClaims);
    pods_->AddHandlers(
        {[this](const client::Object& p) { PodAdded(p); },
         [this](const client::Object& o, const client::Object& p) { PodUpdated(o, p); },
         [this](const client::Object& p) { PodDeleted(p); }});
    auto wake = [this](const client::Object&) { RetryUnschedulable(); };
    nodes_->AddHandlers(
        {wake, [this](const client::Object&, const client::Object&) { RetryUnschedulable(); },
         wake});
    pvcs_->AddHandlers(
        {nullptr, [this](const client::Object&, const client::Object&) { RetryUnschedulable(); },
         nullptr});
  }

  void Run(const std::atomic<bool>& stop) {
    informers_->Start();
    informers_->WaitForSync(std::chrono::seconds(60));
    std::vector<std::thread> binders;
    for (int i = 0; i < kBinders; ++i) {
      binders.emplace_back([&] { Binder(stop); });
    }
    std::thread flusher([&] {
      while (!stop) {
        for (int i = 0; i < 300 && !stop; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        RetryUnschedulable();
      }
    });
    while (!stop) {
      std::string key;
      {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return !active_.empty(); });
        if (active_.empty()) {
          continue;
        }
        key = active_.front();
        active_.pop_front();
        queued_.erase(key);
      }
      try {
        ScheduleOne(key);
      } catch (const std::exception& e) {
        log::Warn("schedule {}: {}", key, e.what());
        std::lock_guard lock(mu_);
        unschedulable_.insert(key);
      }
    }
    flusher.join();
    bind_cv_.notify_all();
    for (auto& b : binders) {
      b.join();
    }
    informers_->Stop();
  }

 private:
  void Queue(const std::string& key) {
    std::lock_guard lock(mu_);
    unschedulable_.erase(key);
    if (queued_.insert(key).second) {
      active_.push_back(key);
      cv_.notify_one();
    }
  }

  void RetryUnschedulable() {
    std::lock_guard lock(mu_);
    for (const auto& k : unschedulable_) {
      if (queued_.insert(k).second) {
        active_.push_back(k);
      }
    }
    unschedulable_.clear();
    cv_.notify_one();
  }

  void PodAdded(const client::Object& p) {
    if (Pending(*p)) {
      Queue(client::KeyOf(*p));
    }
  }
  void PodUpdated(const client::Object& old, const client::Object& p) {
    if (Pending(*p)) {
      Queue(client::KeyOf(*p));
    }
    // A pod that leaves a node (finishes or terminates) frees room.
    if (!GetString(*p, "spec.nodeName").empty() && Active(*old) && !Active(*p)) {
      RetryUnschedulable();
    }
    std::lock_guard lock(mu_);
    assumed_.erase(GetString(*p, "metadata.uid"));
  }
  void PodDeleted(const client::Object& p) {
    std::lock_guard lock(mu_);
    assumed_.erase(GetString(*p, "metadata.uid"));
    for (const auto& k : unschedulable_) {
      if (queued_.insert(k).second) {
        active_.push_back(k);
      }
    }
    unschedulable_.clear();
    cv_.notify_one();
  }

  // Builds the per-node view from the informer caches plus pods bound but not yet seen.
  std::vector<NodeInfo> Snapshot() {
    std::map<std::string, NodeInfo> infos;
    for (const auto& n : nodes_->List()) {
      NodeInfo ni;
      ni.node = *n;
      const json* alloc = Find(*n, "status.allocatable");
      if (alloc) {
        ni.alloc_cpu = api::QuantityMilli(alloc->value("cpu", json()));
        ni.alloc_mem = api::QuantityMilli(alloc->value("memory", json()));
        ni.alloc_pods = api::QuantityMilli(alloc->value("pods", json(110)));
      }
      infos[GetString(*n, "metadata.name")] = std::move(ni);
    }
    auto account = [&](const std::shared_ptr<const json>& pp) {
      const json& p = *pp;
      auto it = infos.find(GetString(p, "spec.nodeName"));
      if (it == infos.end() || !Active(p)) {
        return;
      }
      CountPod(it->second, pp);
    };
    for (const auto& p : pods_->List()) {
      if (!GetString(*p, "spec.nodeName").empty()) {
        account(p);
      }
    }
    {
      std::lock_guard lock(mu_);
      for (const auto& [uid, p] : assumed_) {
        if (auto cached = pods_->Get(client::KeyOf(p));
            !cached || GetString(*cached, "spec.nodeName").empty()) {
          account(std::make_shared<const json>(p));
        }
      }
    }
    std::vector<NodeInfo> out;
    for (auto& [_, ni] : infos) {
      out.push_back(std::move(ni));
    }
    return out;
  }

  void ScheduleOne(const std::string& key) {
    client::Object obj = pods_->Get(key);
    if (!obj || !Pending(*obj)) {
      return;
    }
    {
      std::lock_guard lock(mu_);
      if (assumed_.count(GetString(*obj, "metadata.uid"))) {
        return;  // bound already; the informer has not caught up
      }
    }
    const json& pod = *obj;
    // The cluster as of at most kSnapshotAge ago, plus every binding made
    // since (applied below as it is made): rebuilding it from the caches for
    // every pod would cost O(pods) each time.
    auto now = std::chrono::steady_clock::now();
    bool fresh = now - snapshot_at_ > kSnapshotAge || stale_.exchange(false);
    if (fresh) {
      snapshot_ = Snapshot();
      snapshot_at_ = now;
    }
    std::vector<NodeInfo>& nodes = snapshot_;
    std::vector<json> pvs, pvcs;
    for (const auto& v : pvs_->List()) {
      pvs.push_back(*v);
    }
    for (const auto& v : pvcs_->ListNamespace(GetString(pod, "metadata.namespace"))) {
      pvcs.push_back(*v);
    }
    // A claim that is not bound yet keeps the pod waiting.
    for (const auto& v : pod["spec"].value("volumes", json::array())) {
      std::string claim = GetString(v, "persistentVolumeClaim.claimName");
      if (claim.empty()) {
        continue;
      }
      auto pvc = pvcs_->Get(GetString(pod, "metadata.namespace") + "/" + claim);
      if (!pvc) {
        Unschedulable(pod, "persistentvolumeclaim \"" + claim + "\" not found");
        return;
      }
      if (GetString(*pvc, "status.phase") != "Bound") {
        Unschedulable(pod, "pod has unbound immediate PersistentVolumeClaims");
        return;
      }
    }
    std::map<std::string, int> reasons;
    std::vector<const NodeInfo*> feasible;
    // As kube-scheduler does in large clusters, stop looking once enough
    // nodes fit (percentageOfNodesToScore: 50% less 1% per 125 nodes, at
    // least 5% and 100 nodes), starting where the last pod stopped so that
    // every node gets its turn.
    size_t want = nodes.size();
    if (nodes.size() > 100) {
      size_t percent = std::max<size_t>(5, 50 - std::min<size_t>(45, nodes.size() / 125));
      want = std::max<size_t>(100, nodes.size() * percent / 100);
    }
    for (size_t i = 0; i < nodes.size() && feasible.size() < want; ++i) {
      const NodeInfo& n = nodes[(next_node_ + i) % nodes.size()];
      std::string why = Filter(pod, n, nodes, pvs, pvcs);
      if (why.empty()) {
        feasible.push_back(&n);
      } else {
        ++reasons[why];
      }
      if (feasible.size() == want || i + 1 == nodes.size()) {
        next_node_ = (next_node_ + i + 1) % nodes.size();
      }
    }
    if (feasible.empty() && !fresh) {
      // Judged on a view that may be behind: judge again on a new one.
      snapshot_at_ = {};
      ScheduleOne(key);
      return;
    }
    if (feasible.empty()) {
      std::string msg = "0/" + std::to_string(nodes.size()) + " nodes are available";
      if (nodes.empty()) {
        msg += ": no nodes available to schedule pods";
      } else {
        msg += ": ";
        bool first = true;
        for (auto& [why, count] : reasons) {
          msg += (first ? "" : ", ") + std::to_string(count) + " " + why;
          first = false;
        }
        msg += ". preemption: 0/" + std::to_string(nodes.size()) +
               " nodes are available: " + std::to_string(nodes.size()) +
               " Preemption is not helpful for scheduling.";
      }
      Unschedulable(pod, msg);
      return;
    }
    PrepareSpread(pod, nodes);
    int64_t best = INT64_MIN;
    std::vector<const NodeInfo*> top;
    for (const auto* n : feasible) {
      int64_t s = Score(pod, *n, nodes);
      if (s > best) {
        best = s;
        top = {n};
      } else if (s == best) {
        top.push_back(n);
      }
    }
    const NodeInfo* chosen = top[std::uniform_int_distribution<size_t>(0, top.size() - 1)(rng_)];
    std::string node = GetString(chosen->node, "metadata.name");
    std::string ns = GetString(pod, "metadata.namespace");
    std::string name = GetString(pod, "metadata.name");
    json assumed = pod;
    assumed["spec"]["nodeName"] = node;
    {
      std::lock_guard lock(mu_);
      assumed_[GetString(pod, "metadata.uid")] = assumed;
    }
    CountPod(*const_cast<NodeInfo*>(chosen), std::make_shared<const json>(assumed));
    // The binding is written by a binder thread, as kube-scheduler's binding
    // cycle runs apart from scheduling: the next pod is scheduled meanwhile,
    // and concurrent bindings share the store's commits.
    {
      std::lock_guard lock(bind_mu_);
      bind_queue_.push_back({key, obj, node});
    }
    bind_cv_.notify_one();
  }

  struct BindJob {
    std::string key;
    client::Object pod;
    std::string node;
  };

  void Binder(const std::atomic<bool>& stop) {
    while (true) {
      BindJob job;
      {
        std::unique_lock lock(bind_mu_);
        bind_cv_.wait_for(lock, std::chrono::milliseconds(200),
                          [&] { return !bind_queue_.empty() || stop.load(); });
        if (bind_queue_.empty()) {
          if (stop) {
            return;
          }
          continue;
        }
        job = std::move(bind_queue_.front());
        bind_queue_.pop_front();
      }
      const json& pod = *job.pod;
      std::string ns = GetString(pod, "metadata.namespace"), name = GetString(pod, "metadata.name");
      std::string uid = GetString(pod, "metadata.uid");
      try {
        client_->Post("/api/v1/namespaces/" + ns + "/pods/" + name + "/binding",
                      {{"apiVersion", "v1"},
                       {"kind", "Binding"},
                       {"metadata", {{"name", name}, {"namespace", ns}, {"uid", uid}}},
                       {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", job.node}}}});
        events_->Event(pod, "Normal", "Scheduled",
                       "Successfully assigned " + ns + "/" + name + " to " + job.node);
      } catch (const std::exception& e) {
        // Not bound: forget the assumption (the view is rebuilt) and try again,
        // unless the pod is gone (404) or was bound by someone else (409).
        int code = 0;
        if (const auto* api = dynamic_cast<const client::ApiError*>(&e)) {
          code = api->code;
        }
        {
          std::lock_guard lock(mu_);
          assumed_.erase(uid);
        }
        stale_ = true;
        if (code != 404 && code != 409) {
          log::Warn("bind {} to {}: {}", job.key, job.node, e.what());
          Queue(job.key);
        }
      }
    }
  }

  void Unschedulable(const json& pod, const std::string& msg) {
    {
      std::lock_guard lock(mu_);
      unschedulable_.insert(client::KeyOf(pod));
    }
    const json* conds = Find(pod, "status.conditions");
    if (conds && conds->is_array()) {
      for (const auto& c : *conds) {
        if (c.value("type", "") == "PodScheduled" && c.value("status", "") == "False" &&
            c.value("message", "") == msg) {
          return;  // already said
        }
      }
    }
    json conditions = json::array();
    if (conds && conds->is_array()) {
      for (const auto& c : *conds) {
        if (c.value("type", "") != "PodScheduled") {
          conditions.push_back(c);
        }
      }
    }
    conditions.push_back({{"type", "PodScheduled"},
                          {"status", "False"},
                          {"reason", "Unschedulable"},
                          {"message", msg},
                          {"lastProbeTime", nullptr},
                          {"lastTransitionTime", FormatTime(Now())}});
    try {
      client_->Patch("/api/v1/namespaces/" + GetString(pod, "metadata.namespace") + "/pods/" +
                         GetString(pod, "metadata.name") + "/status",
                     {{"status", {{"conditions", conditions}}}});
    } catch (const client::ApiError& e) {
      log::Debug("pod condition: {}", e.what());
    }
    events_->Event(pod, "Warning", "FailedScheduling", msg);
  }

  std::shared_ptr<client::Client> client_;
  std::shared_ptr<client::InformerFactory> informers_;
  std::shared_ptr<client::EventRecorder> events_;
  std::shared_ptr<client::Informer> pods_, nodes_, pvs_, pvcs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> active_;
  std::set<std::string> queued_, unschedulable_;
  std::map<std::string, json> assumed_;  // uid -> pod with the node it was bound to
  std::mt19937 rng_{std::random_device{}()};
  // The scheduling thread's view of the nodes (see ScheduleOne).
  static constexpr std::chrono::milliseconds kSnapshotAge{250};
  std::vector<NodeInfo> snapshot_;
  std::chrono::steady_clock::time_point snapshot_at_{};
  std::atomic<bool> stale_{false};
  size_t next_node_ = 0;  // where the next pod's search for nodes starts  // a binding failed: the
                          // view has a pod it should not
  std::mutex bind_mu_;
  std::condition_variable bind_cv_;
  std::deque<BindJob> bind_queue_;
  static constexpr int kBinders = 16;
};

}  // namespace

int RunScheduler(const SchedulerOptions& opts) {
  log::SetComponent("scheduler");
  sigset_t set = exec::BlockTerminationSignals();
  auto c = std::make_shared<client::Client>(
      client::Config::FromCertDir(opts.server, opts.cert_dir, "scheduler"));
  std::atomic<bool> stop{false};
  std::thread waiter([&] {
    exec::WaitForSignal(set);
    stop = true;
  });
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  client::LeaderElector elector(c, "kube-system", "kube-scheduler",
                                std::string(host) + "_" + NewUid());
  if (!elector.Acquire(stop)) {
    waiter.join();
    return 0;
  }
  Scheduler s(c);
  std::thread runner([&] { s.Run(stop); });
  while (!stop) {
    for (int i = 0; i < elector.renew_seconds() * 10 && !stop; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!stop && !elector.Renew()) {
      log::Error("lost the lease kube-system/kube-scheduler; exiting");
      _exit(1);
    }
  }
  log::Info("shutting down");
  runner.join();
  waiter.join();
  return 0;
}

}  // namespace minik::scheduler
