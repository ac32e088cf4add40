// The DaemonSet controller: one pod per eligible node, as Kubernetes' DaemonSet
// controller keeps them. A node is eligible when it matches the template's
// nodeSelector and required node affinity and its NoSchedule / NoExecute
// taints are tolerated (daemon pods tolerate not-ready, unreachable, the
// pressure conditions and unschedulable, as Kubernetes adds those
// tolerations). Pods are created with a required node affinity on
// `metadata.name` so that the scheduler places each on its node.
//
// Pods on nodes that stop being eligible (or go away) are deleted, failed ones
// are replaced. Templates are recorded as ControllerRevisions
// (`<ds>-<hash>`), pods carry the hash in `controller-revision-hash`, and a
// RollingUpdate replaces old pods within maxUnavailable, or surges new ones
// next to them within maxSurge; OnDelete waits for the user.

#include <algorithm>
#include <map>
#include <set>

#include "api/selectors.h"
#include "client/events.h"
#include "common/log.h"
#include "controllers/controller.h"
#include "controllers/util.h"
#include "controllers/workloads.h"

namespace minik::controllers {
namespace {

constexpr const char* kHashLabel = "controller-revision-hash";
constexpr const char* kTemplateGenerationLabel = "pod-template-generation";
constexpr const char* kTemplateGenerationAnnotation = "deprecated.daemonset.template.generation";

json ArrayAt(const json& obj, const char* path) {
  const json* v = Find(obj, path);
  return v && v->is_array() ? *v : json::array();
}

json ObjectAt(const json& obj, const char* path) {
  const json* v = Find(obj, path);
  return v && v->is_object() ? *v : json::object();
}

std::string Label(const json& obj, const std::string& key) {
  json labels = ObjectAt(obj, "metadata.labels");
  return labels.contains(key) && labels[key].is_string() ? labels[key].get<std::string>() : "";
}

// Kubernetes' Toleration.ToleratesTaint.
bool ToleratesTaint(const json& toleration, const json& taint) {
  std::string effect = toleration.value("effect", "");
  if (!effect.empty() && effect != taint.value("effect", "")) {
    return false;
  }
  std::string key = toleration.value("key", "");
  if (!key.empty() && key != taint.value("key", "")) {
    return false;
  }
  std::string op = toleration.value("operator", "Equal");
  if (op == "Exists") {
    return true;
  }
  return (op == "Equal" || op.empty()) && toleration.value("value", "") == taint.value("value", "");
}

bool Tolerated(const json& tolerations, const json& taint) {
  return std::any_of(tolerations.begin(), tolerations.end(),
                     [&](const json& t) { return ToleratesTaint(t, taint); });
}

bool MatchesRequirement(const json& req, const json& labels) {
  std::string key = req.value("key", "");
  std::string op = req.value("operator", "");
  bool has = labels.contains(key) && labels[key].is_string();
  std::string v = has ? labels[key].get<std::string>() : "";
  json values = req.value("values", json::array());
  bool in = std::find(values.begin(), values.end(), v) != values.end();
  if (op == "In") {
    return has && in;
  }
  if (op == "NotIn") {
    return !(has && in);
  }
  if (op == "Exists") {
    return has;
  }
  if (op == "DoesNotExist") {
    return !has;
  }
  if (op == "Gt" || op == "Lt") {
    if (!has || values.size() != 1 || !values[0].is_string()) {
      return false;
    }
    long long a = std::atoll(v.c_str()), b = std::atoll(values[0].get<std::string>().c_str());
    return op == "Gt" ? a > b : a < b;
  }
  return false;
}

// A node selector term: its expressions (on labels) and fields (only
// `metadata.name`) all match. A term with neither matches nothing.
bool MatchesTerm(const json& term, const json& node) {
  json exprs = term.value("matchExpressions", json::array());
  json fields = term.value("matchFields", json::array());
  if (exprs.empty() && fields.empty()) {
    return false;
  }
  json labels = ObjectAt(node, "metadata.labels");
  for (const auto& e : exprs) {
    if (!MatchesRequirement(e, labels)) {
      return false;
    }
  }
  json node_fields = {{"metadata.name", GetString(node, "metadata.name")}};
  for (const auto& f : fields) {
    if (f.value("key", "") != "metadata.name" || !MatchesRequirement(f, node_fields)) {
      return false;
    }
  }
  return true;
}

// The template's nodeSelector and required node affinity.
bool MatchesNodeAffinity(const json& pod_spec, const json& node) {
  json selector = ObjectAt(pod_spec, "nodeSelector");
  json labels = ObjectAt(node, "metadata.labels");
  for (auto it = selector.begin(); it != selector.end(); ++it) {
    if (!labels.contains(it.key()) || labels[it.key()] != it.value()) {
      return false;
    }
  }
  const json* required =
      Find(pod_spec, "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution");
  if (!required || !required->is_object()) {
    return true;
  }
  json terms = required->value("nodeSelectorTerms", json::array());
  return std::any_of(terms.begin(), terms.end(),
                     [&](const json& t) { return MatchesTerm(t, node); });
}

// Adds `toleration`, replacing one with the same key, operator, value and
// effect (Kubernetes' AddOrUpdateTolerationInPodSpec).
void AddOrUpdateToleration(json& spec, const json& toleration) {
  json out = json::array();
  bool updated = false;
  for (const auto& t : ArrayAt(spec, "tolerations")) {
    if (t.value("key", "") == toleration.value("key", "") &&
        t.value("operator", "") == toleration.value("operator", "") &&
        t.value("value", "") == toleration.value("value", "") &&
        t.value("effect", "") == toleration.value("effect", "")) {
      out.push_back(toleration);
      updated = true;
    } else {
      out.push_back(t);
    }
  }
  if (!updated) {
    out.push_back(toleration);
  }
  spec["tolerations"] = out;
}

// Daemon pods run through node problems: Kubernetes' AddOrUpdateDaemonPodTolerations.
void AddDaemonTolerations(json& spec) {
  auto exists = [](const char* key, const char* effect) {
    return json{{"key", key}, {"operator", "Exists"}, {"effect", effect}};
  };
  AddOrUpdateToleration(spec, exists("node.kubernetes.io/not-ready", "NoExecute"));
  AddOrUpdateToleration(spec, exists("node.kubernetes.io/unreachable", "NoExecute"));
  AddOrUpdateToleration(spec, exists("node.kubernetes.io/disk-pressure", "NoSchedule"));
  AddOrUpdateToleration(spec, exists("node.kubernetes.io/memory-pressure", "NoSchedule"));
  AddOrUpdateToleration(spec, exists("node.kubernetes.io/pid-pressure", "NoSchedule"));
  AddOrUpdateToleration(spec, exists("node.kubernetes.io/unschedulable", "NoSchedule"));
  if (spec.value("hostNetwork", false)) {
    AddOrUpdateToleration(spec, exists("node.kubernetes.io/network-unavailable", "NoSchedule"));
  }
}

// Whether a daemon pod should be created on `node`, and whether one already
// there may stay (it may while the only untolerated taints are NoSchedule).
struct Placement {
  bool should_run = false, should_continue_running = false;
};

Placement NodeShouldRunDaemonPod(const json& ds, const json& node) {
  json spec = ObjectAt(ds, "spec.template.spec");
  std::string node_name = GetString(spec, "nodeName");
  if (!node_name.empty() && node_name != GetString(node, "metadata.name")) {
    return {};
  }
  if (!MatchesNodeAffinity(spec, node)) {
    return {};
  }
  AddDaemonTolerations(spec);
  json tolerations = spec["tolerations"];
  bool fits = true, no_execute_untolerated = false;
  for (const auto& taint : ArrayAt(node, "spec.taints")) {
    std::string effect = taint.value("effect", "");
    if ((effect == "NoSchedule" || effect == "NoExecute") && !Tolerated(tolerations, taint)) {
      fits = false;
      if (effect == "NoExecute") {
        no_execute_untolerated = true;
      }
    }
  }
  if (!fits) {
    return {false, !no_execute_untolerated};
  }
  return {true, true};
}

// The node a daemon pod is for: where it is bound, else the node its
// `metadata.name` affinity names.
std::string TargetNode(const json& pod) {
  std::string n = GetString(pod, "spec.nodeName");
  if (!n.empty()) {
    return n;
  }
  for (const auto& term : ArrayAt(pod,
                                  "spec.affinity.nodeAffinity."
                                  "requiredDuringSchedulingIgnoredDuringExecution."
                                  "nodeSelectorTerms")) {
    for (const auto& f : term.value("matchFields", json::array())) {
      json values = f.value("values", json::array());
      if (f.value("key", "") == "metadata.name" && f.value("operator", "") == "In" &&
          values.size() == 1 && values[0].is_string()) {
        return values[0].get<std::string>();
      }
    }
  }
  return "";
}

// Oldest first; among pods created in the same second, running before pending.
bool OlderFirst(const json& a, const json& b) {
  std::string ta = GetString(a, "metadata.creationTimestamp");
  std::string tb = GetString(b, "metadata.creationTimestamp");
  if (ta != tb) {
    return ta < tb;
  }
  bool ra = GetString(a, "status.phase") == "Running";
  bool rb = GetString(b, "status.phase") == "Running";
  if (ra != rb) {
    return ra;
  }
  return GetString(a, "metadata.name") < GetString(b, "metadata.name");
}

std::string TemplateGeneration(const json& ds) {
  json annotations = ObjectAt(ds, "metadata.annotations");
  return annotations.contains(kTemplateGenerationAnnotation) &&
                 annotations[kTemplateGenerationAnnotation].is_string()
             ? annotations[kTemplateGenerationAnnotation].get<std::string>()
             : "";
}

bool IsPodUpdated(const json& pod, const std::string& hash, const std::string& generation) {
  return Label(pod, kHashLabel) == hash ||
         (!generation.empty() && Label(pod, kTemplateGenerationLabel) == generation);
}

// What a revision records: the pod template as a strategic merge patch that
// replaces a daemon set's template (what `kubectl rollout undo` applies).
json RevisionData(const json& ds) {
  json tmpl = ObjectAt(ds, "spec.template");
  tmpl["$patch"] = "replace";
  return {{"spec", {{"template", tmpl}}}};
}

int64_t RevisionNumber(const json& r) {
  return r.value("revision", int64_t{0});
}

using NodePods = std::map<std::string, std::vector<json>>;

class DaemonSetController : public QueueController {
 public:
  explicit DaemonSetController(Context ctx) : QueueController("daemonset", ctx, 2) {
    sets_ = ctx_.informers->For(client::resources::kDaemonSets);
    pods_ = ctx_.informers->For(client::resources::kPods);
    nodes_ = ctx_.informers->For(client::resources::kNodes);
    revisions_ = ctx_.informers->For(client::resources::kControllerRevisions);
    sets_->AddHandlers(
        {[this](const client::Object& o) { EnqueueObject(o); },
         [this](const client::Object& old, const client::Object& o) {
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
                          // A deletion counts as seen once the pod is terminating.
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
    nodes_->AddHandlers({[this](const client::Object&) { EnqueueAll(); },
                         [this](const client::Object& old, const client::Object& n) {
                           if (NodeChanged(*old, *n)) {
                             EnqueueAll();
                           }
                         },
                         [this](const client::Object&) { EnqueueAll(); }});
  }

 private:
  std::string OwnerKey(const json& pod) const {
    return ResolveControllerRef(pod, "DaemonSet", *sets_);
  }

  // Only what decides where daemon pods run matters, not heartbeats.
  static bool NodeChanged(const json& a, const json& b) {
    return ObjectAt(a, "metadata.labels") != ObjectAt(b, "metadata.labels") ||
           ArrayAt(a, "spec.taints") != ArrayAt(b, "spec.taints") ||
           ObjectAt(a, "spec").value("unschedulable", false) !=
               ObjectAt(b, "spec").value("unschedulable", false);
  }

  void EnqueueAll() {
    for (const auto& ds : sets_->List()) {
      EnqueueObject(ds);
    }
  }

  void PodChanged(const client::Object& p) {
    std::string key = OwnerKey(*p);
    if (!key.empty()) {
      Enqueue(key);
      return;
    }
    if (ControllerRef(*p)) {
      return;
    }
    const json* labels = Find(*p, "metadata.labels");
    for (const auto& ds : sets_->ListNamespace(GetString(*p, "metadata.namespace"))) {
      const json* sel = Find(*ds, "spec.selector");
      auto s = api::LabelSelector::FromJson(sel ? *sel : json());
      if (!s.empty() && s.Matches(labels ? *labels : json())) {
        EnqueueObject(ds);
      }
    }
  }

  std::vector<json> Nodes() {
    std::vector<json> out;
    for (const auto& n : nodes_->List()) {
      out.push_back(*n);
    }
    return out;
  }

  void Sync(const std::string& key) override {
    client::Object obj = sets_->Get(key);
    if (!obj) {
      expectations_.Forget(key);
      return;
    }
    const json& ds = *obj;
    if (Find(ds, "metadata.deletionTimestamp")) {
      return;  // its pods go with the garbage collector
    }
    const json* sel = Find(ds, "spec.selector");
    if (!sel || api::LabelSelector::FromJson(*sel).empty()) {
      ctx_.events->Event(
          ds, "Warning", "SelectingAll",
          "This daemon set is selecting all pods. A non-empty selector is required.");
      return;
    }
    std::vector<json> nodes = Nodes();
    std::vector<json> old;
    json cur = ConstructHistory(ds, &old);
    std::string hash = Label(cur, kHashLabel);
    if (!expectations_.Satisfied(key)) {
      UpdateStatus(ds, nodes, NodeToPods(ds), hash);
      return;
    }
    Manage(ds, nodes, hash);
    if (expectations_.Satisfied(key) &&
        GetString(ds, "spec.updateStrategy.type", "RollingUpdate") == "RollingUpdate") {
      RollingUpdate(ds, nodes, hash);
    }
    CleanupHistory(ds, old);
    UpdateStatus(ds, nodes, NodeToPods(ds), hash);
  }

  // The daemon set's pods by the node they are for (adopting and releasing as
  // ClaimPods does); finished pods already being deleted are left out.
  NodePods NodeToPods(const json& ds) {
    NodePods out;
    for (auto& pp : ClaimPods(*ctx_.client, *pods_, ds, false)) {
      const json& pod = *pp;
      std::string phase = GetString(pod, "status.phase");
      if ((phase == "Succeeded" || phase == "Failed") && IsPodTerminating(pod)) {
        continue;
      }
      out[TargetNode(pod)].push_back(pod);
    }
    return out;
  }

  // The revision of the current template (made if missing), and the others in `old`.
  json ConstructHistory(const json& ds, std::vector<json>* old) {
    std::string ns = GetString(ds, "metadata.namespace");
    json data = RevisionData(ds);
    std::vector<json> current;
    for (auto& r : ClaimObjects(*ctx_.client, *revisions_, ds, false)) {
      if (Label(r, kHashLabel).empty()) {
        // Older revisions without the label get their name as hash.
        r["metadata"]["labels"][kHashLabel] = GetString(r, "metadata.name");
        r = ctx_.client->Put(
            client::resources::kControllerRevisions.Item(ns, GetString(r, "metadata.name")), r);
      }
      if (r.value("data", json()) == data) {
        current.push_back(r);
      } else {
        old->push_back(r);
      }
    }
    int64_t next = 1;
    for (const auto& r : *old) {
      next = std::max(next, RevisionNumber(r) + 1);
    }
    if (current.empty()) {
      return Snapshot(ds, data, next);
    }
    // Duplicates of the current revision: keep the newest.
    std::sort(current.begin(), current.end(),
              [](const json& a, const json& b) { return RevisionNumber(a) > RevisionNumber(b); });
    json cur = current[0];
    for (size_t i = 1; i < current.size(); ++i) {
      DedupRevision(ds, current[i], Label(cur, kHashLabel));
    }
    if (RevisionNumber(cur) < next) {
      cur = ctx_.client->Patch(
          client::resources::kControllerRevisions.Item(ns, GetString(cur, "metadata.name")),
          {{"revision", next}});
    }
    return cur;
  }

  // Relabels the pods of a duplicate revision with the kept hash, then deletes it.
  void DedupRevision(const json& ds, const json& dup, const std::string& keep_hash) {
    std::string ns = GetString(ds, "metadata.namespace");
    std::string dup_hash = Label(dup, kHashLabel);
    for (const auto& pp : ClaimPods(*ctx_.client, *pods_, ds, false)) {
      const json& pod = *pp;
      if (Label(pod, kHashLabel) == dup_hash) {
        ctx_.client->Patch(client::resources::kPods.Item(ns, GetString(pod, "metadata.name")),
                           {{"metadata", {{"labels", {{kHashLabel, keep_hash}}}}}});
      }
    }
    try {
      ctx_.client->Delete(
          client::resources::kControllerRevisions.Item(ns, GetString(dup, "metadata.name")));
    } catch (const client::ApiError& e) {
      if (e.code != 404) {
        throw;
      }
    }
  }

  json Snapshot(const json& ds, const json& data, int64_t revision) {
    std::string ns = GetString(ds, "metadata.namespace");
    int64_t collisions = IntAt(ds, "status.collisionCount");
    std::string hash = TemplateHash(ObjectAt(ds, "spec.template"), collisions);
    std::string name = GetString(ds, "metadata.name") + "-" + hash;
    json labels = ObjectAt(ds, "spec.template.metadata.labels");
    labels[kHashLabel] = hash;
    json meta = {{"name", name},
                 {"namespace", ns},
                 {"labels", labels},
                 {"ownerReferences", json::array({NewControllerRef(ds)})}};
    if (json a = ObjectAt(ds, "metadata.annotations"); !a.empty()) {
      meta["annotations"] = a;
    }
    json cr = {{"apiVersion", "apps/v1"},
               {"kind", "ControllerRevision"},
               {"metadata", meta},
               {"data", data},
               {"revision", revision}};
    try {
      return ctx_.client->Post(client::resources::kControllerRevisions.Collection(ns), cr);
    } catch (const client::ApiError& e) {
      if (e.code != 409) {
        throw;
      }
      json existing = ctx_.client->Get(client::resources::kControllerRevisions.Item(ns, name));
      if (existing.value("data", json()) == data) {
        return existing;
      }
      // Another template has this name: a hash collision. A new count makes a new name.
      std::string path = client::resources::kDaemonSets.Item(ns, GetString(ds, "metadata.name"));
      json cur = ctx_.client->Get(path);
      if (IntAt(cur, "status.collisionCount") == collisions) {
        cur["status"]["collisionCount"] = collisions + 1;
        ctx_.client->Put(path + "/status", cur);
      }
      throw;
    }
  }

  // Kubernetes' manage: which nodes need a pod, which pods must go.
  void Manage(const json& ds, const std::vector<json>& nodes, const std::string& hash) {
    NodePods node_pods = NodeToPods(ds);
    std::vector<std::string> create_on;
    std::vector<json> to_delete;
    // Kubernetes' AllowsSurge: a surge of at least one pod on one node.
    bool surge = MaxSurge(ds, 1) > 0;
    std::set<std::string> known;
    for (const auto& node : nodes) {
      std::string name = GetString(node, "metadata.name");
      known.insert(name);
      Placement pl = NodeShouldRunDaemonPod(ds, node);
      auto it = node_pods.find(name);
      bool exists = it != node_pods.end() && !it->second.empty();
      if (pl.should_run && !exists) {
        create_on.push_back(name);
        continue;
      }
      if (!exists) {
        continue;
      }
      if (!pl.should_continue_running) {
        for (const auto& p : it->second) {
          if (!IsPodTerminating(p)) {
            to_delete.push_back(p);
          }
        }
        continue;
      }
      std::vector<json> running;
      for (const auto& p : it->second) {
        if (IsPodTerminating(p)) {
          continue;
        }
        if (GetString(p, "status.phase") == "Failed") {
          ctx_.events->Event(ds, "Warning", "FailedDaemonPod",
                             "Found failed daemon pod " + GetString(p, "metadata.namespace") + "/" +
                                 GetString(p, "metadata.name") + " on node " + name +
                                 ", will try to kill it");
          to_delete.push_back(p);
          continue;
        }
        running.push_back(p);
      }
      std::sort(running.begin(), running.end(), OlderFirst);
      if (!surge) {
        // One pod per node: the oldest stays.
        for (size_t i = 1; i < running.size(); ++i) {
          to_delete.push_back(running[i]);
        }
        continue;
      }
      // Surging: keep the oldest new and the oldest old pod, and the old one
      // only until the new one is available.
      const json* oldest_new = nullptr;
      const json* oldest_old = nullptr;
      for (const auto& p : running) {
        bool is_new = Label(p, kHashLabel) == hash;
        const json*& slot = is_new ? oldest_new : oldest_old;
        if (!slot) {
          slot = &p;
        } else {
          to_delete.push_back(p);
        }
      }
      if (oldest_new && oldest_old &&
          (!IsPodReady(*oldest_old) ||
           IsPodAvailable(*oldest_new, IntAt(ds, "spec.minReadySeconds"), Now()))) {
        to_delete.push_back(*oldest_old);
      }
    }
    // Pods for nodes that are gone: nothing else would remove them.
    for (const auto& [node, pods] : node_pods) {
      if (known.count(node)) {
        continue;
      }
      for (const auto& p : pods) {
        if (!IsPodTerminating(p) || !GetString(p, "spec.nodeName").empty()) {
          to_delete.push_back(p);
        }
      }
    }
    SyncNodes(ds, to_delete, create_on, hash, known);
  }

  static int64_t MaxSurge(const json& ds, int64_t desired) {
    if (GetString(ds, "spec.updateStrategy.type", "RollingUpdate") != "RollingUpdate") {
      return 0;
    }
    const json* v = Find(ds, "spec.updateStrategy.rollingUpdate.maxSurge");
    return v ? ScaledValue(*v, desired, true) : 0;
  }

  static int64_t MaxUnavailable(const json& ds, int64_t desired) {
    const json* v = Find(ds, "spec.updateStrategy.rollingUpdate.maxUnavailable");
    return v ? ScaledValue(*v, desired, true) : 1;
  }

  // Creates pods on `create_on` and deletes `to_delete`, expecting to see both.
  void SyncNodes(const json& ds, const std::vector<json>& to_delete,
                 const std::vector<std::string>& create_on, const std::string& hash,
                 const std::set<std::string>& known_nodes) {
    std::string key = client::KeyOf(ds);
    std::string ns = GetString(ds, "metadata.namespace");
    int64_t creates = static_cast<int64_t>(create_on.size());
    int64_t deletes = static_cast<int64_t>(to_delete.size());
    if (creates == 0 && deletes == 0) {
      return;
    }
    expectations_.Expect(key, static_cast<int>(creates), static_cast<int>(deletes));
    std::string failure;
    // Slow start: batches of 1, 2, 4, ... that stop at the first failure.
    int64_t created = 0;
    for (int64_t batch = 1; created < creates && failure.empty(); batch *= 2) {
      int64_t end = std::min(creates, created + batch);
      while (created < end) {
        json pod = NewPod(ds, create_on[static_cast<size_t>(created)], hash);
        try {
          json out = ctx_.client->Post(client::resources::kPods.Collection(ns), pod);
          ctx_.events->Event(ds, "Normal", "SuccessfulCreate",
                             "Created pod: " + GetString(out, "metadata.name"));
          ++created;
        } catch (const client::ApiError& e) {
          failure = e.what();
          ctx_.events->Event(ds, "Warning", "FailedCreate", "Error creating: " + failure);
          break;
        }
      }
    }
    // What was not created will not be observed.
    for (int64_t k = created; k < creates; ++k) {
      expectations_.CreationObserved(key);
    }
    for (const auto& p : to_delete) {
      std::string name = GetString(p, "metadata.name");
      json options = {{"preconditions", {{"uid", GetString(p, "metadata.uid")}}}};
      // A pod bound to a node that is gone has no kubelet to finish its termination.
      std::string node = GetString(p, "spec.nodeName");
      if (!node.empty() && !known_nodes.count(node)) {
        options["gracePeriodSeconds"] = 0;
      }
      try {
        ctx_.client->Delete(client::resources::kPods.Item(ns, name), options);
        ctx_.events->Event(ds, "Normal", "SuccessfulDelete", "Deleted pod: " + name);
      } catch (const client::ApiError& e) {
        expectations_.DeletionObserved(key);
        if (e.code != 404 && e.code != 409) {
          ctx_.events->Event(ds, "Warning", "FailedDelete",
                             "Error deleting: " + std::string(e.what()));
          throw;
        }
      }
    }
    if (!failure.empty()) {
      throw std::runtime_error("create daemon pods: " + failure);
    }
  }

  // A daemon pod for `node`: the template with the daemon tolerations, the
  // revision hash label and a required affinity to exactly that node.
  json NewPod(const json& ds, const std::string& node, const std::string& hash) {
    json tmpl = ObjectAt(ds, "spec.template");
    json& spec = tmpl["spec"];
    if (!spec.is_object()) {
      spec = json::object();
    }
    AddDaemonTolerations(spec);
    json& meta = tmpl["metadata"];
    if (!meta.is_object()) {
      meta = json::object();
    }
    if (!meta.contains("labels") || !meta["labels"].is_object()) {
      meta["labels"] = json::object();
    }
    if (std::string gen = TemplateGeneration(ds); !gen.empty()) {
      meta["labels"][kTemplateGenerationLabel] = gen;
    }
    if (!hash.empty()) {
      meta["labels"][kHashLabel] = hash;
    }
    // Kubernetes' ReplaceDaemonSetPodNodeNameNodeAffinity: the required terms
    // become one term on the node's name; preferred terms stay.
    json& affinity = spec["affinity"];
    if (!affinity.is_object()) {
      affinity = json::object();
    }
    json& node_affinity = affinity["nodeAffinity"];
    if (!node_affinity.is_object()) {
      node_affinity = json::object();
    }
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        {"nodeSelectorTerms",
         json::array({{{"matchFields", json::array({{{"key", "metadata.name"},
                                                     {"operator", "In"},
                                                     {"values", json::array({node})}}})}}})}};
    return PodFromTemplate(tmpl, ds, GetString(ds, "metadata.name") + "-");
  }

  // Kubernetes' rollingUpdate: old pods go within maxUnavailable, or new pods
  // surge next to them within maxSurge.
  void RollingUpdate(const json& ds, const std::vector<json>& nodes, const std::string& hash) {
    NodePods node_pods = NodeToPods(ds);
    int64_t desired = 0;
    std::map<std::string, const json*> node_by_name;
    for (const auto& node : nodes) {
      std::string name = GetString(node, "metadata.name");
      node_by_name[name] = &node;
      if (!NodeShouldRunDaemonPod(ds, node).should_run) {
        continue;
      }
      ++desired;
      node_pods.try_emplace(name);
    }
    int64_t max_surge = MaxSurge(ds, desired);
    int64_t max_unavailable = MaxUnavailable(ds, desired);
    if (desired > 0 && max_surge == 0 && max_unavailable == 0) {
      max_unavailable = 1;
    }
    int64_t min_ready = IntAt(ds, "spec.minReadySeconds");
    SystemTime now = Now();
    std::string generation = TemplateGeneration(ds);
    // The node's one new and one old pod; false when there are more (manage cleans up).
    auto find_pods = [&](const std::vector<json>& pods, const json** new_pod,
                         const json** old_pod) {
      *new_pod = *old_pod = nullptr;
      for (const auto& p : pods) {
        if (IsPodTerminating(p)) {
          continue;
        }
        const json*& slot = IsPodUpdated(p, hash, generation) ? *new_pod : *old_pod;
        if (slot) {
          return false;
        }
        slot = &p;
      }
      return true;
    };
    std::vector<json> to_delete;
    std::vector<std::string> create_on;
    if (max_surge == 0) {
      int64_t unavailable = 0;
      std::vector<const json*> replace_now, candidates;
      for (const auto& [name, pods] : node_pods) {
        const json *new_pod, *old_pod;
        if (!find_pods(pods, &new_pod, &old_pod)) {
          ++unavailable;
          continue;
        }
        if ((!old_pod && !new_pod) || (old_pod && new_pod)) {
          ++unavailable;  // manage creates or deletes here
        } else if (new_pod) {
          if (!IsPodAvailable(*new_pod, min_ready, now)) {
            ++unavailable;
          }
        } else if (!IsPodAvailable(*old_pod, min_ready, now)) {
          replace_now.push_back(old_pod);  // not available anyway
        } else if (unavailable < max_unavailable) {
          candidates.push_back(old_pod);
        }
      }
      int64_t remaining = std::max<int64_t>(0, max_unavailable - unavailable);
      remaining = std::min<int64_t>(remaining, static_cast<int64_t>(candidates.size()));
      for (const json* p : replace_now) {
        to_delete.push_back(*p);
      }
      for (int64_t i = 0; i < remaining; ++i) {
        to_delete.push_back(*candidates[static_cast<size_t>(i)]);
      }
    } else {
      // First count the surges already under way, then start new ones.
      int64_t surging = 0;
      std::vector<std::string> ready_candidates;
      for (const auto& [name, pods] : node_pods) {
        const json *new_pod, *old_pod;
        if (!find_pods(pods, &new_pod, &old_pod) || !old_pod) {
          continue;
        }
        if (new_pod) {
          if (!IsPodAvailable(*new_pod, min_ready, now)) {
            ++surging;
          } else {
            to_delete.push_back(*old_pod);
          }
          continue;
        }
        if (!IsPodAvailable(*old_pod, min_ready, now)) {
          auto n = node_by_name.find(name);
          if (n != node_by_name.end() && NodeShouldRunDaemonPod(ds, *n->second).should_run) {
            create_on.push_back(name);
          }
        } else {
          ready_candidates.push_back(name);
        }
      }
      for (const auto& name : ready_candidates) {
        if (surging >= max_surge) {
          break;
        }
        ++surging;
        create_on.push_back(name);
      }
    }
    std::set<std::string> known;
    for (const auto& [name, _] : node_by_name) {
      known.insert(name);
    }
    SyncNodes(ds, to_delete, create_on, hash, known);
  }

  // Deletes the oldest revisions no pod uses beyond revisionHistoryLimit.
  void CleanupHistory(const json& ds, std::vector<json>& old) {
    int64_t to_kill = static_cast<int64_t>(old.size()) - IntAt(ds, "spec.revisionHistoryLimit", 10);
    if (to_kill <= 0) {
      return;
    }
    std::set<std::string> live;
    for (const auto& [_, pods] : NodeToPods(ds)) {
      for (const auto& p : pods) {
        if (std::string h = Label(p, kHashLabel); !h.empty()) {
          live.insert(h);
        }
      }
    }
    std::sort(old.begin(), old.end(),
              [](const json& a, const json& b) { return RevisionNumber(a) < RevisionNumber(b); });
    std::string ns = GetString(ds, "metadata.namespace");
    for (const auto& r : old) {
      if (to_kill <= 0) {
        break;
      }
      if (live.count(Label(r, kHashLabel))) {
        continue;
      }
      try {
        ctx_.client->Delete(
            client::resources::kControllerRevisions.Item(ns, GetString(r, "metadata.name")));
      } catch (const client::ApiError& e) {
        if (e.code != 404) {
          throw;
        }
      }
      --to_kill;
    }
  }

  void UpdateStatus(const json& ds, const std::vector<json>& nodes, const NodePods& node_pods,
                    const std::string& hash) {
    int64_t desired = 0, current = 0, misscheduled = 0, ready = 0, available = 0, updated = 0;
    int64_t min_ready = IntAt(ds, "spec.minReadySeconds");
    SystemTime now = Now();
    std::string generation = TemplateGeneration(ds);
    for (const auto& node : nodes) {
      Placement pl = NodeShouldRunDaemonPod(ds, node);
      auto it = node_pods.find(GetString(node, "metadata.name"));
      bool scheduled = it != node_pods.end() && !it->second.empty();
      if (!pl.should_run) {
        if (scheduled) {
          ++misscheduled;
        }
        continue;
      }
      ++desired;
      if (!scheduled) {
        continue;
      }
      ++current;
      std::vector<json> pods = it->second;
      std::sort(pods.begin(), pods.end(), OlderFirst);
      const json& pod = pods[0];
      if (IsPodReady(pod)) {
        ++ready;
        if (IsPodAvailable(pod, min_ready, now)) {
          ++available;
        }
      }
      if (IsPodUpdated(pod, hash, generation)) {
        ++updated;
      }
    }
    json old = ObjectAt(ds, "status");
    json status = old;
    status["observedGeneration"] = IntAt(ds, "metadata.generation", 1);
    status["desiredNumberScheduled"] = desired;
    status["currentNumberScheduled"] = current;
    status["numberMisscheduled"] = misscheduled;
    status["numberReady"] = ready;
    status["numberAvailable"] = available;
    status["numberUnavailable"] = desired - available;
    status["updatedNumberScheduled"] = updated;
    for (const char* k : {"numberAvailable", "numberUnavailable", "updatedNumberScheduled"}) {
      if (status[k] == 0) {
        status.erase(k);
      }
    }
    if (min_ready > 0 && ready != available) {
      EnqueueAfter(client::KeyOf(ds), std::chrono::seconds(min_ready));
    }
    if (status == old) {
      return;
    }
    json next = ds;
    next["status"] = status;
    try {
      ctx_.client->Put(client::resources::kDaemonSets.Item(GetString(ds, "metadata.namespace"),
                                                           GetString(ds, "metadata.name")) +
                           "/status",
                       next);
    } catch (const client::ApiError& e) {
      if (e.code != 404 && e.code != 409) {
        throw;
      }
      if (e.code == 409) {
        Enqueue(client::KeyOf(ds));
      }
    }
  }

  std::shared_ptr<client::Informer> sets_, pods_, nodes_, revisions_;
  Expectations expectations_;
};

}  // namespace

std::unique_ptr<Controller> NewDaemonSetController(Context ctx) {
  return std::make_unique<DaemonSetController>(std::move(ctx));
}

}  // namespace minik::controllers
