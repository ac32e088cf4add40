// The ReplicaSet controller: keeps `spec.replicas` active pods that match the
// selector, owning them through controller references. It adopts orphans that
// match, releases pods that stop matching, replaces pods that are deleted or
// fail, and writes status (replicas, ready, available, observedGeneration).
// The same controller runs ReplicationControllers (core/v1), as upstream's
// does through adapters: their selector is a plain map of labels.

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "api/selectors.h"
#include "client/events.h"
#include "common/log.h"
#include "controllers/controller.h"
#include "controllers/util.h"
#include "controllers/workloads.h"

namespace minik::controllers {
namespace {

// Which pods go first when scaling down: not scheduled, pending, not ready,
// ready for less time, more restarts, newer.
bool DeleteFirst(const json& a, const json& b) {
  bool as = !GetString(a, "spec.nodeName").empty(), bs = !GetString(b, "spec.nodeName").empty();
  if (as != bs) {
    return !as;
  }
  auto phase_rank = [](const json& p) {
    std::string ph = GetString(p, "status.phase");
    return ph == "Pending" ? 0 : ph == "Unknown" ? 1 : 2;
  };
  if (phase_rank(a) != phase_rank(b)) {
    return phase_rank(a) < phase_rank(b);
  }
  if (IsPodReady(a) != IsPodReady(b)) {
    return !IsPodReady(a);
  }
  return GetString(a, "metadata.creationTimestamp") > GetString(b, "metadata.creationTimestamp");
}

// What differs between the two kinds the controller runs.
struct ReplicaKind {
  const char* controller;  // the controller's and its events' name
  const char* kind;
  client::ResourcePath resource;
  bool map_selector;  // ReplicationController: spec.selector is a map of labels
};

const ReplicaKind kReplicaSetKind{"replicaset", "ReplicaSet", client::resources::kReplicaSets,
                                  false};
const ReplicaKind kReplicationControllerKind{"replicationcontroller",
                                             "ReplicationController",
                                             {"/api/v1", "replicationcontrollers", true},
                                             true};

class ReplicaSetController : public QueueController {
 public:
  ReplicaSetController(Context ctx, const ReplicaKind& kind)
      : QueueController(kind.controller, ctx, 2), kind_(kind) {
    if (kind_.map_selector) {
      ctx_.events = std::make_shared<client::EventRecorder>(ctx_.client, "replication-controller");
    }
    sets_ = ctx_.informers->For(kind_.resource);
    pods_ = ctx_.informers->For(client::resources::kPods);
    sets_->AddHandlers(
        {[this](const client::Object& o) { EnqueueObject(o); },
         [this](const client::Object& old, const client::Object& o) {
           // Deleted and made again under its name: what was expected of the
           // old one is not expected of the new one.
           if (Replaced(*old, *o)) {
             expectations_.Forget(client::KeyOf(*o));
           }
           EnqueueObject(o);
         },
         [this](const client::Object& o) { expectations_.Forget(client::KeyOf(*o)); }});
    pods_->AddHandlers({[this](const client::Object& p) {
                          if (auto k = OwnerKey(*p); !k.empty()) {
                            if (IsPodTerminating(*p)) {
                              expectations_.DeletionObserved(k);
                            } else {
                              expectations_.CreationObserved(k);
                            }
                          }
                          PodChanged(p);
                        },
                        [this](const client::Object& old, const client::Object& p) {
                          // A deletion counts as seen once the pod is terminating (the
                          // kubelet may take its grace period to remove it).
                          if (!IsPodTerminating(*old) && IsPodTerminating(*p)) {
                            if (auto k = OwnerKey(*p); !k.empty()) {
                              expectations_.DeletionObserved(k);
                            }
                          }
                          PodChanged(p);
                          if (OwnerKey(*old) != OwnerKey(*p)) {
                            PodChanged(old);
                          }
                        },
                        [this](const client::Object& p) {
                          if (auto k = OwnerKey(*p); !k.empty() && !IsPodTerminating(*p)) {
                            expectations_.DeletionObserved(k);
                          }
                          PodChanged(p);
                        }});
  }

 private:
  // The key of the ReplicaSet that controls `pod`, when that ReplicaSet (the
  // same UID) is the one in the cache.
  std::string OwnerKey(const json& pod) const {
    return ResolveControllerRef(pod, kind_.kind, *sets_);
  }

  // `spec.selector` as a LabelSelector (a ReplicationController's is a map).
  json Selector(const json& rs) const {
    const json* sel = Find(rs, "spec.selector");
    if (!sel) {
      return json();
    }
    return kind_.map_selector ? json{{"matchLabels", *sel}} : *sel;
  }

  void PodChanged(const client::Object& p) {
    std::string key = OwnerKey(*p);
    if (!key.empty()) {
      Enqueue(key);
      return;
    }
    if (ControllerRef(*p)) {
      return;  // someone else's, or an owner that is gone
    }
    // An orphan: every ReplicaSet that selects it may adopt it.
    const json* labels = Find(*p, "metadata.labels");
    for (const auto& rs : sets_->ListNamespace(GetString(*p, "metadata.namespace"))) {
      if (api::LabelSelector::FromJson(Selector(*rs)).Matches(labels ? *labels : json())) {
        EnqueueObject(rs);
      }
    }
  }

  void Sync(const std::string& key) override {
    client::Object rs_obj = sets_->Get(key);
    if (!rs_obj) {
      expectations_.Forget(key);
      return;
    }
    const json& rs = *rs_obj;
    std::string ns = GetString(rs, "metadata.namespace");
    std::string uid = GetString(rs, "metadata.uid");
    bool deleting = Find(rs, "metadata.deletionTimestamp") != nullptr;
    // Expectations before the pods: a pod observed in between is then either
    // in the list or keeps the expectations unmet (never neither, which would
    // create one too many).
    bool satisfied = expectations_.Satisfied(key);
    std::vector<client::Object> owned;
    if (kind_.map_selector) {
      json view = rs;
      view["spec"]["selector"] = Selector(rs);
      owned = ClaimPods(*ctx_.client, *pods_, view, deleting);
    } else {
      owned = ClaimPods(*ctx_.client, *pods_, rs, deleting);
    }
    std::vector<client::Object> active;
    for (auto& p : owned) {
      if (IsPodActive(*p)) {
        active.push_back(p);
      }
    }
    int64_t want = IntAt(rs, "spec.replicas", 1);
    std::string failure;
    if (!deleting && satisfied) {
      int64_t diff = static_cast<int64_t>(active.size()) - want;
      if (diff < 0) {
        failure = CreatePods(rs, key, -diff);
      } else if (diff > 0) {
        std::sort(
            active.begin(), active.end(),
            [](const client::Object& a, const client::Object& b) { return DeleteFirst(*a, *b); });
        int n = static_cast<int>(diff);
        expectations_.Expect(key, 0, n);
        for (int i = 0; i < n; ++i) {
          std::string name = GetString(*active[static_cast<size_t>(i)], "metadata.name");
          try {
            ctx_.client->Delete("/api/v1/namespaces/" + ns + "/pods/" + name);
            ctx_.events->Event(rs, "Normal", "SuccessfulDelete", "Deleted pod: " + name);
          } catch (const client::ApiError& e) {
            expectations_.DeletionObserved(key);
            if (e.code != 404) {
              throw;
            }
          }
        }
      }
    }
    UpdateStatus(rs, owned, failure);
  }

  // Creates `n` pods in batches that double (1, 2, 4, ...), the pods of a
  // batch at once, and stops at the first failure (kube's slow start: a
  // template the API server refuses costs one request, not n).
  std::string CreatePods(const json& rs, const std::string& key, int64_t n) {
    std::string ns = GetString(rs, "metadata.namespace");
    std::string generate = GetString(rs, "metadata.name") + "-";
    expectations_.Expect(key, static_cast<int>(n), 0);
    std::mutex mu;
    std::string failure;
    std::atomic<int64_t> created{0};
    int64_t done = 0;
    for (int64_t batch = 1; done < n && failure.empty(); batch *= 2) {
      batch = std::min(batch, n - done);
      std::atomic<int64_t> next{0};
      auto work = [&] {
        while (next++ < batch) {
          {
            std::lock_guard lock(mu);
            if (!failure.empty()) {
              return;
            }
          }
          try {
            json pod = PodFromTemplate(*Find(rs, "spec.template"), rs, generate);
            json made = ctx_.client->Post("/api/v1/namespaces/" + ns + "/pods", pod);
            ++created;
            ctx_.events->Event(rs, "Normal", "SuccessfulCreate",
                               "Created pod: " + GetString(made, "metadata.name"));
          } catch (const std::exception& e) {  // never out of a helper thread
            std::lock_guard lock(mu);
            if (failure.empty()) {
              failure = e.what();
            }
          }
        }
      };
      std::vector<std::thread> helpers;
      for (int64_t i = 1; i < std::min<int64_t>(batch, kCreateParallelism); ++i) {
        helpers.emplace_back(work);
      }
      work();
      for (auto& t : helpers) {
        t.join();
      }
      done += batch;
    }
    if (!failure.empty()) {
      // What was not created will not be observed.
      for (int64_t k = created; k < n; ++k) {
        expectations_.CreationObserved(key);
      }
      ctx_.events->Event(rs, "Warning", "FailedCreate", "Error creating: " + failure);
    }
    return failure;
  }

  void UpdateStatus(const json& rs, const std::vector<client::Object>& owned,
                    const std::string& failure) {
    int64_t replicas = 0, labeled = 0, ready = 0, available = 0;
    int64_t min_ready = IntAt(rs, "spec.minReadySeconds");
    SystemTime now = Now();
    const json* tmpl_labels = Find(rs, "spec.template.metadata.labels");
    api::LabelSelector tl = api::LabelSelector::FromMap(tmpl_labels ? *tmpl_labels : json());
    bool waiting_for_available = false;
    for (const auto& pp : owned) {
      const json& p = *pp;
      if (!IsPodActive(p)) {
        continue;
      }
      ++replicas;
      const json* labels = Find(p, "metadata.labels");
      if (tl.nothing() || tl.Matches(labels ? *labels : json())) {
        ++labeled;
      }
      if (IsPodReady(p)) {
        ++ready;
        if (IsPodAvailable(p, min_ready, now)) {
          ++available;
        } else {
          waiting_for_available = true;
        }
      }
    }
    json next = rs;
    json& st = next["status"];
    if (!st.is_object()) {
      st = json::object();
    }
    st["replicas"] = replicas;
    st["fullyLabeledReplicas"] = labeled;
    st["readyReplicas"] = ready;
    st["availableReplicas"] = available;
    st["observedGeneration"] = IntAt(rs, "metadata.generation", 1);
    if (!failure.empty()) {
      SetCondition(next, "ReplicaFailure", "True", "FailedCreate", failure);
    } else if (GetCondition(next, "ReplicaFailure")) {
      json kept = json::array();
      for (auto& c : st["conditions"]) {
        if (c.value("type", "") != "ReplicaFailure") {
          kept.push_back(c);
        }
      }
      st["conditions"] = kept;
    }
    if (st.contains("conditions") && st["conditions"].empty()) {
      st.erase("conditions");
    }
    for (const char* k : {"readyReplicas", "availableReplicas", "fullyLabeledReplicas"}) {
      if (st[k] == 0) {
        st.erase(k);
      }
    }
    if (next["status"] != rs.value("status", json::object())) {
      std::string path =
          kind_.resource.Item(GetString(rs, "metadata.namespace"), GetString(rs, "metadata.name")) +
          "/status";
      try {
        ctx_.client->Put(path, next);
      } catch (const client::ApiError& e) {
        if (e.code != 404 && e.code != 409) {
          throw;
        }
        if (e.code == 409) {
          Enqueue(client::KeyOf(rs));
        }
      }
    }
    if (waiting_for_available) {
      EnqueueAfter(client::KeyOf(rs), std::chrono::seconds(std::max<int64_t>(1, min_ready)));
    }
  }

  static constexpr int64_t kCreateParallelism = 16;
  const ReplicaKind& kind_;
  std::shared_ptr<client::Informer> sets_, pods_;
  Expectations expectations_;
};

}  // namespace

std::unique_ptr<Controller> NewReplicaSetController(Context ctx) {
  return std::make_unique<ReplicaSetController>(std::move(ctx), kReplicaSetKind);
}

std::unique_ptr<Controller> NewReplicationControllerController(Context ctx) {
  return std::make_unique<ReplicaSetController>(std::move(ctx), kReplicationControllerKind);
}

}  // namespace minik::controllers
