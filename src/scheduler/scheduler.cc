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
#include "common/heap.h"
#include "common/log.h"

namespace minik::scheduler {
namespace {

bool Pending(const json& pod) {
  std::string sched = GetString(pod, "spec.schedulerName", "default-scheduler");
  std::string phase = GetString(pod, "status.phase");
  return GetString(pod, "spec.nodeName").empty() && sched == "default-scheduler" &&
         !Find(pod, "metadata.deletionTimestamp") && phase != "Succeeded" && phase != "Failed";
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
    nodes_->AddHandlers({[this](const client::Object& n) {
                           cache_.SetNode(n);
                           RetryUnschedulable();
                         },
                         [this](const client::Object&, const client::Object& n) {
                           cache_.SetNode(n);
                           RetryUnschedulable();
                         },
                         [this](const client::Object& n) {
                           cache_.RemoveNode(GetString(*n, "metadata.name"));
                           RetryUnschedulable();
                         }});
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
    cache_.SetPod(p);
    if (Pending(*p)) {
      Queue(client::KeyOf(*p));
    }
  }
  void PodUpdated(const client::Object& old, const client::Object& p) {
    // After a relist, a pod deleted and made again under its name arrives as
    // an update: the old one goes first.
    if (GetString(*old, "metadata.uid") != GetString(*p, "metadata.uid")) {
      cache_.RemovePod(*old);
    }
    cache_.SetPod(p);
    if (Pending(*p)) {
      Queue(client::KeyOf(*p));
    }
    // A pod that leaves a node (finishes or terminates) frees room.
    if (!GetString(*p, "spec.nodeName").empty() && IsActive(*old) && !IsActive(*p)) {
      RetryUnschedulable();
    }
  }
  void PodDeleted(const client::Object& p) {
    cache_.RemovePod(*p);
    RetryUnschedulable();
  }

  void ScheduleOne(const std::string& key) {
    client::Object obj = pods_->Get(key);
    if (!obj || !Pending(*obj)) {
      return;
    }
    const json& pod = *obj;
    PodQuery q(pod);
    // A claim that is not bound yet keeps the pod waiting.
    for (const auto& v : ArrayAt(pod, "spec.volumes")) {
      std::string claim = GetString(v, "persistentVolumeClaim.claimName");
      if (claim.empty()) {
        continue;
      }
      auto pvc = pvcs_->Get(q.ns + "/" + claim);
      if (!pvc) {
        Unschedulable(pod, "persistentvolumeclaim \"" + claim + "\" not found");
        return;
      }
      if (GetString(*pvc, "status.phase") != "Bound") {
        Unschedulable(pod, "pod has unbound immediate PersistentVolumeClaims");
        return;
      }
      if (auto pv = pvs_->Get(GetString(*pvc, "spec.volumeName"))) {
        q.volumes.push_back(pv);
      }
    }
    std::string uid = GetString(pod, "metadata.uid");
    std::map<std::string, int> reasons;
    std::string node;
    size_t count = 0;
    {
      std::lock_guard lock(cache_.mu());
      if (cache_.Has(uid)) {
        // A pending pod is in the cache only once bound: by us (the informer
        // has not caught up) or since this cycle read it.
        return;
      }
      ClusterView& all = cache_.View();
      const auto& nodes = all.nodes;
      count = nodes.size();
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
        const NodeInfo& n = *nodes[(next_node_ + i) % nodes.size()];
        std::string why = Filter(q, n, all);
        if (why.empty()) {
          feasible.push_back(&n);
        } else {
          ++reasons[why];
        }
        if (feasible.size() == want || i + 1 == nodes.size()) {
          next_node_ = (next_node_ + i + 1) % nodes.size();
        }
      }
      if (!feasible.empty()) {
        PrepareSpread(q, all);
        int64_t best = INT64_MIN;
        std::vector<const NodeInfo*> top;
        for (const auto* n : feasible) {
          int64_t s = Score(q, *n, all);
          if (s > best) {
            best = s;
            top = {n};
          } else if (s == best) {
            top.push_back(n);
          }
        }
        node = top[std::uniform_int_distribution<size_t>(0, top.size() - 1)(rng_)]->name;
        auto assumed = std::make_shared<json>(pod);
        (*assumed)["spec"]["nodeName"] = node;
        cache_.Assume(std::move(assumed));
      }
    }
    if (node.empty()) {
      std::string msg = "0/" + std::to_string(count) + " nodes are available";
      if (count == 0) {
        msg += ": no nodes available to schedule pods";
      } else {
        msg += ": ";
        bool first = true;
        for (auto& [why, n] : reasons) {
          msg += (first ? "" : ", ") + std::to_string(n) + " " + why;
          first = false;
        }
        msg += ". preemption: 0/" + std::to_string(count) +
               " nodes are available: " + std::to_string(count) +
               " Preemption is not helpful for scheduling.";
      }
      Unschedulable(pod, msg);
      return;
    }
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
        cache_.Forget(uid);
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
  std::mt19937 rng_{std::random_device{}()};
  Cache cache_;
  size_t next_node_ = 0;  // where the next pod's search for nodes starts
  std::mutex bind_mu_;
  std::condition_variable bind_cv_;
  std::deque<BindJob> bind_queue_;
  static constexpr int kBinders = 16;
};

}  // namespace

int RunScheduler(const SchedulerOptions& opts) {
  log::SetComponent("scheduler");
  sigset_t set = exec::BlockTerminationSignals();
  // After the signals are blocked: its thread must not take SIGTERM.
  HeapTrimmer trimmer;  // thousands of objects come and go
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
  if (!elector.KeepRenewed(stop)) {
    _exit(1);  // another instance leads now: stop at once rather than act twice
  }
  log::Info("shutting down");
  runner.join();
  elector.Release();
  waiter.join();
  return 0;
}

}  // namespace minik::scheduler
