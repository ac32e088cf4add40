// The Deployment controller: a Deployment owns ReplicaSets, one per pod
// template (named by the template's hash). A rollout scales the new
// ReplicaSet up and the old ones down within maxSurge / maxUnavailable
// (RollingUpdate) or all at once (Recreate); revisions are kept as annotations
// on the ReplicaSets (what `kubectl rollout history|undo` read), old ones
// beyond revisionHistoryLimit are deleted, and status carries what
// `kubectl rollout status` reads.

#include <algorithm>

#include "api/selectors.h"
#include "client/events.h"
#include "common/log.h"
#include "controllers/controller.h"
#include "controllers/util.h"
#include "controllers/workloads.h"

namespace minik::controllers {
namespace {

constexpr const char* kRevision = "deployment.kubernetes.io/revision";
constexpr const char* kDesiredReplicas = "deployment.kubernetes.io/desired-replicas";
constexpr const char* kMaxReplicas = "deployment.kubernetes.io/max-replicas";
constexpr const char* kHashLabel = "pod-template-hash";

int64_t Revision(const json& rs) {
  const json* a = Find(rs, "metadata.annotations");
  if (!a || !a->contains(kRevision) || !(*a)[kRevision].is_string()) {
    return 0;
  }
  return std::atoll((*a)[kRevision].get<std::string>().c_str());
}

// The template without the hash label, for comparing a ReplicaSet's template
// with the Deployment's.
json TemplateWithoutHash(json t) {
  if (t.contains("metadata") && t["metadata"].contains("labels") &&
      t["metadata"]["labels"].is_object()) {
    t["metadata"]["labels"].erase(kHashLabel);
    if (t["metadata"]["labels"].empty()) {
      t["metadata"].erase("labels");
    }
  }
  return t;
}

int64_t Replicas(const json& rs) {
  return IntAt(rs, "spec.replicas", 0);
}

class DeploymentController : public QueueController {
 public:
  explicit DeploymentController(Context ctx) : QueueController("deployment", ctx, 2) {
    deps_ = ctx_.informers->For(client::resources::kDeployments);
    sets_ = ctx_.informers->For(client::resources::kReplicaSets);
    pods_ = ctx_.informers->For(client::resources::kPods);
    deps_->AddHandlers(
        {[this](const client::Object& o) { EnqueueObject(o); },
         [this](const client::Object&, const client::Object& o) { EnqueueObject(o); }, nullptr});
    auto rs_changed = [this](const client::Object& rs) { ReplicaSetChanged(rs); };
    sets_->AddHandlers({rs_changed,
                        [rs_changed](const client::Object& old, const client::Object& rs) {
                          rs_changed(rs);
                          rs_changed(old);
                        },
                        rs_changed});
    // Recreate waits for the old pods to go.
    pods_->AddHandlers({nullptr, nullptr, [this](const client::Object& p) {
                          const json* ref = ControllerRef(*p);
                          if (!ref || ref->value("kind", "") != "ReplicaSet") {
                            return;
                          }
                          auto rs = sets_->Get(GetString(*p, "metadata.namespace") + "/" +
                                               ref->value("name", ""));
                          if (rs) {
                            ReplicaSetChanged(rs);
                          }
                        }});
  }

 private:
  void ReplicaSetChanged(const client::Object& rs) {
    const json* ref = ControllerRef(*rs);
    std::string ns = GetString(*rs, "metadata.namespace");
    if (ref) {
      if (ref->value("kind", "") == "Deployment") {
        Enqueue(ns + "/" + ref->value("name", ""));
      }
      return;
    }
    const json* labels = Find(*rs, "metadata.labels");
    for (const auto& d : deps_->ListNamespace(ns)) {
      const json* sel = Find(*d, "spec.selector");
      if (api::LabelSelector::FromJson(sel ? *sel : json()).Matches(labels ? *labels : json())) {
        EnqueueObject(d);
      }
    }
  }

  std::string RsPath(const std::string& ns, const std::string& name = "") {
    return "/apis/apps/v1/namespaces/" + ns + "/replicasets" + (name.empty() ? "" : "/" + name);
  }

  // Scales a ReplicaSet (and records the deployment's sizes on it).
  bool Scale(const json& d, json& rs, int64_t replicas, const std::string& why) {
    int64_t max = IntAt(d, "spec.replicas", 1) + MaxSurge(d);
    std::string desired = std::to_string(IntAt(d, "spec.replicas", 1));
    const json* ann = Find(rs, "metadata.annotations");
    bool same_ann = ann && ann->value(kDesiredReplicas, "") == desired &&
                    ann->value(kMaxReplicas, "") == std::to_string(max);
    if (Replicas(rs) == replicas && same_ann) {
      return false;
    }
    int64_t before = Replicas(rs);
    // Only this controller writes a ReplicaSet's size, so no precondition: the
    // ReplicaSet controller's status writes must not make this conflict.
    json patch = {
        {"spec", {{"replicas", replicas}}},
        {"metadata",
         {{"annotations", {{kDesiredReplicas, desired}, {kMaxReplicas, std::to_string(max)}}}}}};
    rs = ctx_.client->Patch(
        RsPath(GetString(rs, "metadata.namespace"), GetString(rs, "metadata.name")), patch);
    if (before != replicas) {
      ctx_.events->Event(d, "Normal", "ScalingReplicaSet",
                         std::string(replicas > before ? "Scaled up" : "Scaled down") +
                             " replica set " + GetString(rs, "metadata.name") + " from " +
                             std::to_string(before) + " to " + std::to_string(replicas) + why);
      return true;
    }
    return false;
  }

  static bool RollingUpdate(const json& d) {
    return GetString(d, "spec.strategy.type", "RollingUpdate") == "RollingUpdate";
  }
  static int64_t MaxSurge(const json& d) {
    if (!RollingUpdate(d)) {
      return 0;
    }
    const json* v = Find(d, "spec.strategy.rollingUpdate.maxSurge");
    return ScaledValue(v ? *v : json("25%"), IntAt(d, "spec.replicas", 1), true);
  }
  static int64_t MaxUnavailable(const json& d) {
    if (!RollingUpdate(d)) {
      return 0;
    }
    const json* v = Find(d, "spec.strategy.rollingUpdate.maxUnavailable");
    int64_t mu = ScaledValue(v ? *v : json("25%"), IntAt(d, "spec.replicas", 1), false);
    if (mu == 0 && MaxSurge(d) == 0) {
      mu = 1;
    }
    return std::min(mu, IntAt(d, "spec.replicas", 1));
  }

  void Sync(const std::string& key) override {
    client::Object obj = deps_->Get(key);
    if (!obj) {
      return;
    }
    json d = *obj;
    if (Find(d, "metadata.deletionTimestamp")) {
      return;
    }
    std::string ns = GetString(d, "metadata.namespace");
    std::string name = GetString(d, "metadata.name");
    const json* sel = Find(d, "spec.selector");
    if (!sel || (sel->value("matchLabels", json::object()).empty() &&
                 sel->value("matchExpressions", json::array()).empty())) {
      ctx_.events->Event(
          d, "Warning", "SelectingAll",
          "This deployment is selecting all pods. A non-empty selector is required.");
      return;
    }
    std::vector<json> sets = ClaimObjects(*ctx_.client, *sets_, d, false);
    json want_template = TemplateWithoutHash(d["spec"]["template"]);
    json* newest = nullptr;
    std::vector<json*> old;
    int64_t max_revision = 0;
    for (auto& rs : sets) {
      max_revision = std::max(max_revision, Revision(rs));
    }
    for (auto& rs : sets) {
      if (!newest && TemplateWithoutHash(rs["spec"]["template"]) == want_template) {
        newest = &rs;
      } else {
        old.push_back(&rs);
      }
    }
    // Oldest first.
    std::sort(old.begin(), old.end(),
              [](const json* a, const json* b) { return Revision(*a) < Revision(*b); });
    bool paused = d["spec"].value("paused", false);
    int64_t replicas = IntAt(d, "spec.replicas", 1);
    bool progressed = false;
    json created;
    if (!newest && !paused) {
      created = CreateReplicaSet(d, max_revision + 1, sets, old);
      sets.push_back(created);
      newest = &sets.back();
      // `old` pointers stay valid: they point into `sets` before the push only if
      // no reallocation happened; rebuild them to be safe.
      old.clear();
      for (auto& rs : sets) {
        if (&rs != newest) {
          old.push_back(&rs);
        }
      }
      std::sort(old.begin(), old.end(),
                [](const json* a, const json* b) { return Revision(*a) < Revision(*b); });
      progressed = true;
    } else if (newest && Revision(*newest) < max_revision && !paused) {
      // A rollback to an older template makes that ReplicaSet the newest revision.
      json patch = {
          {"metadata", {{"annotations", {{kRevision, std::to_string(max_revision + 1)}}}}}};
      *newest = ctx_.client->Patch(RsPath(ns, GetString(*newest, "metadata.name")), patch);
      progressed = true;
    }
    if (paused) {
      // Only scaling happens while paused: the newest ReplicaSet follows spec.replicas.
      bool only_new =
          std::all_of(old.begin(), old.end(), [](const json* r) { return Replicas(*r) == 0; });
      if (newest && only_new) {
        progressed |= Scale(d, *newest, replicas, "");
      }
    } else if (RollingUpdate(d)) {
      progressed |= Rollout(d, *newest, old);
    } else {
      progressed |= Recreate(d, *newest, old);
    }
    if (!paused) {
      CleanupHistory(d, old);
    }
    UpdateStatus(d, newest, sets, progressed, paused);
  }

  json CreateReplicaSet(const json& d, int64_t revision, const std::vector<json>& existing,
                        const std::vector<json*>& old) {
    std::string ns = GetString(d, "metadata.namespace");
    int64_t collisions = IntAt(d, "status.collisionCount");
    json tmpl = TemplateWithoutHash(d["spec"]["template"]);
    std::string hash = TemplateHash(tmpl, collisions);
    tmpl["metadata"]["labels"][kHashLabel] = hash;
    json selector = d["spec"]["selector"];
    selector["matchLabels"][kHashLabel] = hash;
    json annotations = json::object();
    if (const json* da = Find(d, "metadata.annotations"); da && da->is_object()) {
      for (auto it = da->begin(); it != da->end(); ++it) {
        if (it.key() != "kubectl.kubernetes.io/last-applied-configuration" &&
            it.key() != kRevision) {
          annotations[it.key()] = it.value();
        }
      }
    }
    int64_t replicas = IntAt(d, "spec.replicas", 1);
    annotations[kRevision] = std::to_string(revision);
    annotations[kDesiredReplicas] = std::to_string(replicas);
    annotations[kMaxReplicas] = std::to_string(replicas + MaxSurge(d));
    // With nothing running yet, start at full size; otherwise the rollout grows it.
    bool any_old =
        std::any_of(old.begin(), old.end(), [](const json* r) { return Replicas(*r) > 0; });
    int64_t start = any_old ? 0 : (RollingUpdate(d) ? replicas : 0);
    json rs = {{"apiVersion", "apps/v1"},
               {"kind", "ReplicaSet"},
               {"metadata",
                {{"name", GetString(d, "metadata.name") + "-" + hash},
                 {"namespace", ns},
                 {"labels", tmpl["metadata"]["labels"]},
                 {"annotations", annotations},
                 {"ownerReferences", json::array({NewControllerRef(d)})}}},
               {"spec",
                {{"replicas", start},
                 {"minReadySeconds", IntAt(d, "spec.minReadySeconds")},
                 {"selector", selector},
                 {"template", tmpl}}}};
    try {
      json out = ctx_.client->Post(RsPath(ns), rs);
      ctx_.events->Event(d, "Normal", "ScalingReplicaSet",
                         "Scaled up replica set " + GetString(out, "metadata.name") +
                             " from 0 to " + std::to_string(start));
      return out;
    } catch (const client::ApiError& e) {
      if (e.code != 409) {
        throw;
      }
      // A ReplicaSet of that name exists with another template: a hash collision.
      ctx_.client->Patch("/apis/apps/v1/namespaces/" + ns + "/deployments/" +
                             GetString(d, "metadata.name") + "/status",
                         {{"status", {{"collisionCount", collisions + 1}}}});
      throw;
    }
  }

  bool Rollout(const json& d, json& newest, std::vector<json*>& old) {
    int64_t replicas = IntAt(d, "spec.replicas", 1);
    int64_t surge = MaxSurge(d), unavailable = MaxUnavailable(d);
    bool changed = false;
    int64_t old_count = 0;
    for (auto* r : old) {
      old_count += Replicas(*r);
    }
    if (old_count == 0) {
      // Nothing to replace: the new ReplicaSet just follows the deployment's size.
      return Scale(d, newest, replicas, "");
    }
    // Scale up the new ReplicaSet within the surge.
    int64_t total = Replicas(newest) + old_count;
    int64_t max_total = replicas + surge;
    if (total < max_total && Replicas(newest) < replicas) {
      int64_t up = std::min(Replicas(newest) + (max_total - total), replicas);
      changed |= Scale(d, newest, up, "");
      total = Replicas(newest) + old_count;
    } else if (Replicas(newest) > replicas) {
      changed |= Scale(d, newest, replicas, "");
    }
    // Scale down old ReplicaSets while keeping the minimum available.
    int64_t min_available = replicas - unavailable;
    int64_t new_unavailable = Replicas(newest) - IntAt(newest, "status.availableReplicas");
    int64_t max_scale_down = total - min_available - new_unavailable;
    if (max_scale_down <= 0) {
      return changed;
    }
    // First the old pods that are not available anyway.
    for (auto* r : old) {
      if (max_scale_down <= 0) {
        break;
      }
      int64_t unhealthy = Replicas(*r) - IntAt(*r, "status.availableReplicas");
      if (unhealthy <= 0) {
        continue;
      }
      int64_t down = std::min(unhealthy, max_scale_down);
      changed |= Scale(d, *r, Replicas(*r) - down, "");
      max_scale_down -= down;
    }
    int64_t available = IntAt(newest, "status.availableReplicas");
    for (auto* r : old) {
      available += std::min(IntAt(*r, "status.availableReplicas"), Replicas(*r));
    }
    int64_t can_remove = std::min(max_scale_down, available - min_available);
    for (auto* r : old) {
      if (can_remove <= 0) {
        break;
      }
      int64_t down = std::min(Replicas(*r), can_remove);
      if (down > 0) {
        changed |= Scale(d, *r, Replicas(*r) - down, "");
        can_remove -= down;
      }
    }
    return changed;
  }

  bool Recreate(const json& d, json& newest, std::vector<json*>& old) {
    bool changed = false;
    bool old_running = false;
    for (auto* r : old) {
      changed |= Scale(d, *r, 0, "");
      if (IntAt(*r, "status.replicas") > 0) {
        old_running = true;
      }
    }
    // The new pods start only when no old pod is left.
    for (const auto& p : pods_->ListNamespace(GetString(d, "metadata.namespace"))) {
      const json* ref = ControllerRef(*p);
      if (!ref) {
        continue;
      }
      for (auto* r : old) {
        if (ref->value("uid", "") == GetString(*r, "metadata.uid") &&
            GetString(*p, "status.phase") != "Succeeded" &&
            GetString(*p, "status.phase") != "Failed") {
          old_running = true;
        }
      }
    }
    if (!old_running) {
      changed |= Scale(d, newest, IntAt(d, "spec.replicas", 1), "");
    }
    return changed;
  }

  void CleanupHistory(const json& d, std::vector<json*>& old) {
    int64_t limit = IntAt(d, "spec.revisionHistoryLimit", 10);
    std::vector<json*> idle;
    for (auto* r : old) {
      if (Replicas(*r) == 0 && IntAt(*r, "status.replicas") == 0 &&
          !Find(*r, "metadata.deletionTimestamp")) {
        idle.push_back(r);
      }
    }
    int64_t extra = static_cast<int64_t>(idle.size()) - limit;
    for (int64_t i = 0; i < extra; ++i) {
      std::string n = GetString(*idle[static_cast<size_t>(i)], "metadata.name");
      try {
        ctx_.client->Delete(RsPath(GetString(d, "metadata.namespace"), n));
      } catch (const client::ApiError& e) {
        if (e.code != 404) {
          throw;
        }
      }
    }
  }

  void UpdateStatus(const json& d, const json* newest, const std::vector<json>& sets,
                    bool progressed, bool paused) {
    int64_t replicas = IntAt(d, "spec.replicas", 1);
    int64_t total = 0, ready = 0, available = 0, updated = 0;
    for (const auto& rs : sets) {
      total += IntAt(rs, "status.replicas");
      ready += IntAt(rs, "status.readyReplicas");
      available += IntAt(rs, "status.availableReplicas");
    }
    if (newest) {
      updated = IntAt(*newest, "status.replicas");
    }
    json next = d;
    json& st = next["status"];
    if (!st.is_object()) {
      st = json::object();
    }
    st["observedGeneration"] = IntAt(d, "metadata.generation", 1);
    st["replicas"] = total;
    st["updatedReplicas"] = updated;
    st["readyReplicas"] = ready;
    st["availableReplicas"] = available;
    st["unavailableReplicas"] = std::max<int64_t>(0, total - available);
    for (const char* k : {"replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                          "unavailableReplicas"}) {
      if (st[k] == 0) {
        st.erase(k);
      }
    }
    if (available >= replicas - MaxUnavailable(d)) {
      SetCondition(next, "Available", "True", "MinimumReplicasAvailable",
                   "Deployment has minimum availability.", true);
    } else {
      SetCondition(next, "Available", "False", "MinimumReplicasUnavailable",
                   "Deployment does not have minimum availability.", true);
    }
    std::string rs_name = newest ? GetString(*newest, "metadata.name") : "";
    bool complete = newest && updated == replicas && available >= replicas && total == replicas &&
                    IntAt(*newest, "spec.replicas") == replicas;
    int64_t deadline = IntAt(d, "spec.progressDeadlineSeconds", 600);
    SystemTime now = Now();
    const json* prog = GetCondition(d, "Progressing");
    if (paused) {
      SetCondition(next, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused",
                   true);
    } else if (complete) {
      SetCondition(next, "Progressing", "True", "NewReplicaSetAvailable",
                   "ReplicaSet \"" + rs_name + "\" has successfully progressed.", true);
    } else if (progressed || !prog || prog->value("reason", "") == "DeploymentPaused" ||
               prog->value("reason", "") == "NewReplicaSetAvailable") {
      // Progress was made now: the deadline starts over.
      json* c = nullptr;
      SetCondition(next, "Progressing", "True", "ReplicaSetUpdated",
                   "ReplicaSet \"" + rs_name + "\" is progressing.", true);
      for (auto& cond : next["status"]["conditions"]) {
        if (cond["type"] == "Progressing") {
          c = &cond;
        }
      }
      if (c) {
        (*c)["lastUpdateTime"] = FormatTime(now);
      }
      EnqueueAfter(client::KeyOf(d), std::chrono::seconds(deadline + 1));
    } else if (prog && prog->value("reason", "") != "ProgressDeadlineExceeded") {
      SystemTime last;
      if (ParseTime(prog->value("lastUpdateTime", ""), &last) &&
          now > last + std::chrono::seconds(deadline)) {
        SetCondition(next, "Progressing", "False", "ProgressDeadlineExceeded",
                     "ReplicaSet \"" + rs_name + "\" has timed out progressing.", true);
        ctx_.events->Event(
            d, "Warning", "ProgressDeadlineExceeded",
            "Deployment \"" + GetString(d, "metadata.name") + "\" has timed out progressing.");
      } else if (ParseTime(prog->value("lastUpdateTime", ""), &last)) {
        auto left = std::chrono::duration_cast<std::chrono::seconds>(
            last + std::chrono::seconds(deadline) - now);
        EnqueueAfter(client::KeyOf(d), std::chrono::milliseconds(left.count() * 1000 + 1000));
      }
    }
    // Conditions in Kubernetes' order: Available, then Progressing.
    if (next["status"].contains("conditions")) {
      auto& conds = next["status"]["conditions"];
      std::stable_sort(conds.begin(), conds.end(), [](const json& a, const json& b) {
        return (a.value("type", "") == "Available") > (b.value("type", "") == "Available");
      });
    }
    bool annotations_changed = false;
    if (newest) {
      std::string rev = std::to_string(Revision(*newest));
      const json* da = Find(d, "metadata.annotations");
      if (!da || da->value(kRevision, "") != rev) {
        annotations_changed = true;
        ctx_.client->Patch("/apis/apps/v1/namespaces/" + GetString(d, "metadata.namespace") +
                               "/deployments/" + GetString(d, "metadata.name"),
                           {{"metadata", {{"annotations", {{kRevision, rev}}}}}});
      }
    }
    if (next["status"] != d.value("status", json::object())) {
      json body = {{"status", next["status"]}};
      if (!annotations_changed) {
        body["metadata"] = {{"resourceVersion", GetString(d, "metadata.resourceVersion")}};
      }
      try {
        ctx_.client->Patch("/apis/apps/v1/namespaces/" + GetString(d, "metadata.namespace") +
                               "/deployments/" + GetString(d, "metadata.name") + "/status",
                           body);
      } catch (const client::ApiError& e) {
        if (e.code == 409) {
          Enqueue(client::KeyOf(d));
        } else if (e.code != 404) {
          throw;
        }
      }
    }
  }

  std::shared_ptr<client::Informer> deps_, sets_, pods_;
};

}  // namespace

std::unique_ptr<Controller> NewDeploymentController(Context ctx) {
  return std::make_unique<DeploymentController>(std::move(ctx));
}

}  // namespace minik::controllers
