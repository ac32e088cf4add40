// The node lifecycle controller: a node whose Lease has not been renewed for
// 40 s (the node monitor grace period) gets its conditions set to Unknown and
// the `node.kubernetes.io/unreachable` taints (NoSchedule and NoExecute); when
// it reports again they are removed. The NoExecute taint evicts the node's
// pods: at once when they do not tolerate it, after `tolerationSeconds` when
// they do for a while (300 s by default, from the DefaultTolerationSeconds
// admission). The pressure conditions a kubelet reports (MemoryPressure,
// DiskPressure, PIDPressure) become NoSchedule taints while they are True.

#include <algorithm>

#include "common/log.h"
#include "controllers/core.h"
#include "controllers/util.h"

namespace minik::controllers {
namespace {

constexpr int kGraceSeconds = 40;
constexpr const char* kUnreachable = "node.kubernetes.io/unreachable";
constexpr const char* kNotReady = "node.kubernetes.io/not-ready";

class NodeLifecycleController : public QueueController {
 public:
  explicit NodeLifecycleController(Context ctx) : QueueController("nodelifecycle", ctx) {
    nodes_ = ctx_.informers->For(client::resources::kNodes);
    leases_ = ctx_.informers->For(client::resources::kLeases);
    pods_ = ctx_.informers->For(client::resources::kPods);
    nodes_->AddHandlers(
        {[this](const client::Object& n) { EnqueueObject(n); },
         [this](const client::Object&, const client::Object& n) { EnqueueObject(n); }, nullptr});
    leases_->AddHandlers({nullptr,
                          [this](const client::Object&, const client::Object& l) {
                            if (GetString(*l, "metadata.namespace") == "kube-node-lease") {
                              Enqueue(GetString(*l, "metadata.name"));
                            }
                          },
                          nullptr});
    pods_->AddHandlers({[this](const client::Object& p) {
                          std::string n = GetString(*p, "spec.nodeName");
                          if (!n.empty()) {
                            Enqueue(n);
                          }
                        },
                        nullptr, nullptr});
  }

  void Start() override {
    QueueController::Start();
    ticker_ = std::thread([this] {
      while (!stop_) {
        for (int i = 0; i < 50 && !stop_; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        for (const auto& n : nodes_->List()) {
          EnqueueObject(n);
        }
      }
    });
  }

  void Stop() override {
    stop_ = true;
    if (ticker_.joinable()) {
      ticker_.join();
    }
    QueueController::Stop();
  }

 private:
  void Sync(const std::string& name) override {
    client::Object obj = nodes_->Get(name);
    if (!obj) {
      return;
    }
    json node = *obj;
    SystemTime now = Now();
    SystemTime renewed{};
    client::Object lease = leases_->Get("kube-node-lease/" + name);
    if (lease) {
      ParseTime(GetString(*lease, "spec.renewTime"), &renewed);
    } else {
      // No lease yet: count from when the node registered.
      ParseTime(GetString(node, "metadata.creationTimestamp"), &renewed);
    }
    bool silent = now - renewed > std::chrono::seconds(kGraceSeconds);
    const json* ready = GetCondition(node, "Ready");
    std::string ready_status = ready ? ready->value("status", "Unknown") : "Unknown";
    json taints = node["spec"].value("taints", json::array());
    auto has_taint = [&](const char* key, const char* effect) {
      for (const auto& t : taints) {
        if (t.value("key", "") == key && t.value("effect", "") == effect) {
          return true;
        }
      }
      return false;
    };
    std::string path = "/api/v1/nodes/" + name;
    if (silent && ready_status != "Unknown") {
      json conditions = node["status"].value("conditions", json::array());
      std::string ts = FormatTime(now);
      for (auto& c : conditions) {
        c["status"] = "Unknown";
        c["reason"] = "NodeStatusUnknown";
        c["message"] = "Kubelet stopped posting node status.";
        c["lastTransitionTime"] = ts;
      }
      ctx_.client->Patch(path + "/status", {{"status", {{"conditions", conditions}}}});
      ctx_.events->Event(node, "Normal", "NodeNotReady",
                         "Node " + name + " status is now: NodeNotReady");
      log::Info("node {} stopped renewing its lease; marked NotReady", name);
      ready_status = "Unknown";
    }
    // Taints follow the Ready condition, and the pressure conditions give
    // NoSchedule taints (as TaintNodesByCondition does).
    static const std::pair<const char*, const char*> kPressure[] = {
        {"MemoryPressure", "node.kubernetes.io/memory-pressure"},
        {"DiskPressure", "node.kubernetes.io/disk-pressure"},
        {"PIDPressure", "node.kubernetes.io/pid-pressure"}};
    json want = json::array();
    for (const auto& t : taints) {
      std::string k = t.value("key", "");
      bool pressure = std::any_of(std::begin(kPressure), std::end(kPressure),
                                  [&](const auto& p) { return k == p.second; });
      if (k != kUnreachable && k != kNotReady && !pressure) {
        want.push_back(t);
      }
    }
    for (const auto& [type, taint_key] : kPressure) {
      const json* c = GetCondition(node, type);
      if (c && c->value("status", "") == "True" && ready_status != "Unknown") {
        want.push_back({{"key", taint_key}, {"effect", "NoSchedule"}});
      }
    }
    const char* key = ready_status == "Unknown" ? kUnreachable
                      : ready_status == "False" ? kNotReady
                                                : nullptr;
    if (key) {
      for (const char* effect : {"NoSchedule", "NoExecute"}) {
        if (has_taint(key, effect)) {
          for (const auto& t : taints) {
            if (t.value("key", "") == key && t.value("effect", "") == effect) {
              want.push_back(t);
            }
          }
        } else {
          json t = {{"key", key}, {"effect", effect}};
          if (std::string(effect) == "NoExecute") {
            t["timeAdded"] = FormatTime(now);
          }
          want.push_back(t);
        }
      }
    }
    if (want != taints) {
      ctx_.client->Patch(path, {{"spec", {{"taints", want.empty() ? json() : want}}}});
      taints = want;
    }
    Evict(name, taints, now);
  }

  // Deletes the pods that do not tolerate the node's NoExecute taints (for long enough).
  void Evict(const std::string& node, const json& taints, SystemTime now) {
    std::vector<json> no_execute;
    for (const auto& t : taints) {
      if (t.value("effect", "") == "NoExecute") {
        no_execute.push_back(t);
      }
    }
    if (no_execute.empty()) {
      return;
    }
    std::chrono::seconds next_check{3600};
    for (const auto& p : pods_->List()) {
      if (GetString(*p, "spec.nodeName") != node || IsPodTerminating(*p)) {
        continue;
      }
      bool evict = false;
      for (const auto& taint : no_execute) {
        SystemTime added{};
        ParseTime(taint.value("timeAdded", ""), &added);
        // A copy: the tolerations list below is a temporary.
        std::optional<json> tolerated;
        const json tolerations = (*p)["spec"].value("tolerations", json::array());
        for (const auto& tol : tolerations) {
          std::string effect = tol.value("effect", "");
          std::string k = tol.value("key", "");
          bool key_ok =
              (k.empty() && tol.value("operator", "") == "Exists") ||
              (k == taint.value("key", "") && (tol.value("operator", "Equal") == "Exists" ||
                                               tol.value("value", "") == taint.value("value", "")));
          if (key_ok && (effect.empty() || effect == "NoExecute")) {
            tolerated = tol;
            break;
          }
        }
        if (!tolerated) {
          evict = true;
          break;
        }
        if (tolerated->contains("tolerationSeconds")) {
          auto limit = added + std::chrono::seconds(tolerated->value("tolerationSeconds", 0));
          if (now >= limit) {
            evict = true;
            break;
          }
          next_check =
              std::min(next_check, std::chrono::duration_cast<std::chrono::seconds>(limit - now) +
                                       std::chrono::seconds(1));
        }
      }
      if (evict) {
        try {
          ctx_.client->Delete("/api/v1/namespaces/" + GetString(*p, "metadata.namespace") +
                              "/pods/" + GetString(*p, "metadata.name"));
          ctx_.events->Event(*p, "Normal", "TaintManagerEviction",
                             "Marking for deletion Pod " + GetString(*p, "metadata.namespace") +
                                 "/" + GetString(*p, "metadata.name"));
        } catch (const client::ApiError& e) {
          if (e.code != 404) {
            throw;
          }
        }
      }
    }
    if (next_check < std::chrono::seconds(3600)) {
      EnqueueAfter(node, next_check);
    }
  }

  std::shared_ptr<client::Informer> nodes_, leases_, pods_;
  std::atomic<bool> stop_{false};
  std::thread ticker_;
};

class PodGCController : public QueueController {
 public:
  explicit PodGCController(Context ctx) : QueueController("podgc", ctx) {
    pods_ = ctx_.informers->For(client::resources::kPods);
    nodes_ = ctx_.informers->For(client::resources::kNodes);
    nodes_->AddHandlers({nullptr, nullptr, [this](const client::Object&) { Enqueue("all"); }});
  }
  void Start() override {
    QueueController::Start();
    Enqueue("all");
    ticker_ = std::thread([this] {
      while (!stop_) {
        for (int i = 0; i < 200 && !stop_; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        Enqueue("all");
      }
    });
  }
  void Stop() override {
    stop_ = true;
    if (ticker_.joinable()) {
      ticker_.join();
    }
    QueueController::Stop();
  }

 private:
  static constexpr size_t kTerminatedThreshold = 12500;

  void Sync(const std::string&) override {
    std::vector<json> finished;
    for (const auto& p : pods_->List()) {
      std::string node = GetString(*p, "spec.nodeName");
      // Bound to a node that is gone: nothing will ever finish it.
      if (!node.empty() && !nodes_->Get(node)) {
        Force(*p);
        continue;
      }
      std::string phase = GetString(*p, "status.phase");
      if (phase == "Succeeded" || phase == "Failed") {
        finished.push_back(*p);
      }
    }
    if (finished.size() > kTerminatedThreshold) {
      std::sort(finished.begin(), finished.end(), [](const json& a, const json& b) {
        return GetString(a, "metadata.creationTimestamp") <
               GetString(b, "metadata.creationTimestamp");
      });
      for (size_t i = 0; i < finished.size() - kTerminatedThreshold; ++i) {
        Force(finished[i]);
      }
    }
  }

  void Force(const json& pod) {
    try {
      ctx_.client->Delete("/api/v1/namespaces/" + GetString(pod, "metadata.namespace") + "/pods/" +
                              GetString(pod, "metadata.name"),
                          {{"gracePeriodSeconds", 0}});
    } catch (const client::ApiError& e) {
      if (e.code != 404) {
        throw;
      }
    }
  }

  std::shared_ptr<client::Informer> pods_, nodes_;
  std::atomic<bool> stop_{false};
  std::thread ticker_;
};

}  // namespace

std::unique_ptr<Controller> NewNodeLifecycleController(Context ctx) {
  return std::make_unique<NodeLifecycleController>(std::move(ctx));
}

std::unique_ptr<Controller> NewPodGCController(Context ctx) {
  return std::make_unique<PodGCController>(std::move(ctx));
}

}  // namespace minik::controllers
