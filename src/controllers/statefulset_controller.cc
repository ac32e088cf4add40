// The StatefulSet controller: pods with stable names `<set>-<ordinal>`, stable
// network identity (hostname and subdomain) and stable storage (one
// PersistentVolumeClaim per claim template and ordinal, made before the pod and
// kept when the pod goes), as Kubernetes' StatefulSet controller keeps them.
//
// With `OrderedReady` an ordinal is created only when every lower ordinal is
// Running and Ready (and available for minReadySeconds), and scale down removes
// the highest ordinal first, one at a time; `Parallel` does both at once.
// Templates are recorded as ControllerRevisions (`<set>-<hash>`, the template
// as a strategic merge patch in `data`); pods carry the name of their revision
// in `controller-revision-hash`. RollingUpdate replaces pods from the highest
// ordinal down to `partition`, one at a time; OnDelete waits for the user.
// persistentVolumeClaimRetentionPolicy is honoured through owner references
// on the claims (to the set for whenDeleted, to the pod for whenScaled), which
// the garbage collector acts on.

#include <algorithm>
#include <climits>

#include "api/selectors.h"
#include "client/events.h"
#include "common/log.h"
#include "controllers/controller.h"
#include "controllers/util.h"
#include "controllers/workloads.h"

namespace minik::controllers {
namespace {

constexpr const char* kPodNameLabel = "statefulset.kubernetes.io/pod-name";
constexpr const char* kPodIndexLabel = "apps.kubernetes.io/pod-index";
constexpr const char* kRevisionLabel = "controller-revision-hash";
constexpr const char* kRevisionHashLabel = "controller.kubernetes.io/hash";

json ArrayAt(const json& obj, const char* path) {
  const json* v = Find(obj, path);
  return v && v->is_array() ? *v : json::array();
}

json ObjectAt(const json& obj, const char* path) {
  const json* v = Find(obj, path);
  return v && v->is_object() ? *v : json::object();
}

// The value of a label or annotation (keys have dots, so not a path for GetString).
std::string MapValue(const json& map, const std::string& key) {
  return map.is_object() && map.contains(key) && map[key].is_string() ? map[key].get<std::string>()
                                                                      : "";
}

// The ordinal in a member's name (`web-3` -> 3, parent `web`); -1 when the name
// does not end in `-<digits>` (Kubernetes' `(.*)-([0-9]+)$`).
int64_t OrdinalOf(const std::string& name, std::string* parent = nullptr) {
  size_t dash = name.rfind('-');
  if (dash == std::string::npos || dash + 1 == name.size()) {
    return -1;
  }
  int64_t ord = 0;
  for (size_t i = dash + 1; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') {
      return -1;
    }
    ord = ord * 10 + (name[i] - '0');
    if (ord > INT32_MAX) {
      return -1;
    }
  }
  if (parent) {
    *parent = name.substr(0, dash);
  }
  return ord;
}

int64_t PodOrdinal(const json& pod) {
  return OrdinalOf(GetString(pod, "metadata.name"));
}

bool IsMemberOf(const json& set, const json& pod) {
  std::string parent;
  return OrdinalOf(GetString(pod, "metadata.name"), &parent) >= 0 &&
         parent == GetString(set, "metadata.name");
}

std::string PodRevision(const json& pod) {
  return MapValue(ObjectAt(pod, "metadata.labels"), kRevisionLabel);
}

bool IsCreated(const json& pod) {
  return !GetString(pod, "status.phase").empty();
}
bool IsRunningAndReady(const json& pod) {
  return GetString(pod, "status.phase") == "Running" && IsPodReady(pod);
}
bool IsHealthy(const json& pod) {
  return IsRunningAndReady(pod) && !IsPodTerminating(pod);
}
bool IsRunningAndAvailable(const json& pod, int64_t min_ready) {
  return IsPodAvailable(pod, min_ready, Now());
}
bool IsUnavailable(const json& pod, int64_t min_ready) {
  return !IsHealthy(pod) || !IsRunningAndAvailable(pod, min_ready);
}

int64_t StartOrdinal(const json& set) {
  return IntAt(set, "spec.ordinals.start", 0);
}
int64_t Replicas(const json& set) {
  return IntAt(set, "spec.replicas", 1);
}
bool InOrdinalRange(const json& set, int64_t ord) {
  return ord >= StartOrdinal(set) && ord < StartOrdinal(set) + Replicas(set);
}

std::string PodName(const json& set, int64_t ord) {
  return GetString(set, "metadata.name") + "-" + std::to_string(ord);
}

// The claims a member with this ordinal uses, keyed by claim template name,
// in template order: `<template>-<set>-<ordinal>`, labelled with the set's
// matchLabels over the template's own labels.
std::vector<std::pair<std::string, json>> ClaimsFor(const json& set, int64_t ord) {
  std::vector<std::pair<std::string, json>> out;
  json match_labels = ObjectAt(set, "spec.selector.matchLabels");
  for (const auto& t : ArrayAt(set, "spec.volumeClaimTemplates")) {
    std::string tname = GetString(t, "metadata.name");
    json meta = ObjectAt(t, "metadata");
    for (const char* k : {"uid", "resourceVersion", "creationTimestamp", "generation",
                          "ownerReferences", "managedFields", "deletionTimestamp"}) {
      meta.erase(k);
    }
    meta["name"] = tname + "-" + GetString(set, "metadata.name") + "-" + std::to_string(ord);
    meta["namespace"] = GetString(set, "metadata.namespace");
    json labels = ObjectAt(meta, "labels");
    for (auto it = match_labels.begin(); it != match_labels.end(); ++it) {
      labels[it.key()] = it.value();
    }
    if (!labels.empty()) {
      meta["labels"] = labels;
    }
    json claim = {{"apiVersion", "v1"},
                  {"kind", "PersistentVolumeClaim"},
                  {"metadata", meta},
                  {"spec", ObjectAt(t, "spec")}};
    out.emplace_back(tname, claim);
  }
  return out;
}

// A new member of `set` with ordinal `ord` from pod template `tmpl`.
json NewStatefulSetPod(const json& set, const json& tmpl, int64_t ord) {
  std::string name = PodName(set, ord);
  json pod = PodFromTemplate(tmpl, set, GetString(set, "metadata.name") + "-");
  json& meta = pod["metadata"];
  meta["name"] = name;
  // generateName `<set>-` stays, as Kubernetes leaves it; the explicit name wins.
  if (!meta.contains("labels") || !meta["labels"].is_object()) {
    meta["labels"] = json::object();
  }
  meta["labels"][kPodNameLabel] = name;
  meta["labels"][kPodIndexLabel] = std::to_string(ord);
  json& spec = pod["spec"];
  if (!spec.is_object()) {
    spec = json::object();
  }
  spec["hostname"] = name;
  std::string service = GetString(set, "spec.serviceName");
  if (!service.empty()) {
    spec["subdomain"] = service;
  }
  // The claims' volumes first, then the template's volumes they do not replace.
  auto claims = ClaimsFor(set, ord);
  if (!claims.empty()) {
    json volumes = json::array();
    for (const auto& [tname, claim] : claims) {
      volumes.push_back(
          {{"name", tname},
           {"persistentVolumeClaim", {{"claimName", GetString(claim, "metadata.name")}}}});
    }
    for (const auto& v : ArrayAt(pod, "spec.volumes")) {
      std::string vname = v.value("name", "");
      if (std::none_of(claims.begin(), claims.end(),
                       [&](const auto& c) { return c.first == vname; })) {
        volumes.push_back(v);
      }
    }
    spec["volumes"] = volumes;
  }
  return pod;
}

bool IdentityMatches(const json& set, const json& pod) {
  int64_t ord = PodOrdinal(pod);
  json labels = ObjectAt(pod, "metadata.labels");
  return ord >= 0 && IsMemberOf(set, pod) &&
         GetString(pod, "metadata.namespace") == GetString(set, "metadata.namespace") &&
         MapValue(labels, kPodNameLabel) == GetString(pod, "metadata.name");
}

// What a revision records: the pod template as a strategic merge patch that
// replaces a set's template (what `kubectl rollout undo` applies).
json RevisionData(const json& set) {
  json tmpl = ObjectAt(set, "spec.template");
  tmpl["$patch"] = "replace";
  return {{"spec", {{"template", tmpl}}}};
}

json RevisionTemplate(const json& revision) {
  json tmpl = ObjectAt(revision, "data.spec.template");
  tmpl.erase("$patch");
  return tmpl;
}

int64_t RevisionNumber(const json& r) {
  return r.value("revision", int64_t{0});
}

void SortRevisions(std::vector<json>& revisions) {
  std::stable_sort(revisions.begin(), revisions.end(), [](const json& a, const json& b) {
    if (RevisionNumber(a) != RevisionNumber(b)) {
      return RevisionNumber(a) < RevisionNumber(b);
    }
    std::string ta = GetString(a, "metadata.creationTimestamp");
    std::string tb = GetString(b, "metadata.creationTimestamp");
    if (ta != tb) {
      return ta < tb;
    }
    return GetString(a, "metadata.name") < GetString(b, "metadata.name");
  });
}

// Owner references of claims, compared as Kubernetes' retention policy code does.
std::string GroupOf(const std::string& api_version) {
  size_t slash = api_version.find('/');
  return slash == std::string::npos ? "" : api_version.substr(0, slash);
}

struct OwnerId {
  std::string name, kind, group, uid;
};

OwnerId SetOwner(const json& set) {
  return {GetString(set, "metadata.name"), "StatefulSet", "apps", GetString(set, "metadata.uid")};
}
OwnerId PodOwner(const json& pod) {
  return {GetString(pod, "metadata.name"), "Pod", "", GetString(pod, "metadata.uid")};
}

bool MatchesRef(const json& ref, const OwnerId& o) {
  return ref.value("name", "") == o.name && ref.value("kind", "") == o.kind &&
         GroupOf(ref.value("apiVersion", "")) == o.group;
}

bool HasOwnerRef(const json& claim, const OwnerId& o) {
  for (const auto& r : ArrayAt(claim, "metadata.ownerReferences")) {
    if (r.value("uid", "") == o.uid) {
      return true;
    }
  }
  return false;
}

// A reference to an object of this name and kind but another uid: left by a
// previous incarnation (a pod scaled away, whose claim waits for the collector).
bool HasStaleOwnerRef(const json& claim, const OwnerId& o) {
  for (const auto& r : ArrayAt(claim, "metadata.ownerReferences")) {
    if (MatchesRef(r, o)) {
      return r.value("uid", "") != o.uid;
    }
  }
  return false;
}

bool HasUnexpectedController(const json& claim, const OwnerId& set, const OwnerId& pod) {
  for (const auto& r : ArrayAt(claim, "metadata.ownerReferences")) {
    if (r.value("controller", false) && r.value("uid", "") != set.uid &&
        r.value("uid", "") != pod.uid) {
      return true;
    }
  }
  return false;
}

bool HasNonControllerOwner(const json& claim, const OwnerId& set, const OwnerId& pod) {
  for (const auto& r : ArrayAt(claim, "metadata.ownerReferences")) {
    if ((r.value("uid", "") == set.uid || r.value("uid", "") == pod.uid) &&
        !r.value("controller", false)) {
      return true;
    }
  }
  return false;
}

std::string WhenDeleted(const json& set) {
  return GetString(set, "spec.persistentVolumeClaimRetentionPolicy.whenDeleted", "Retain");
}
std::string WhenScaled(const json& set) {
  return GetString(set, "spec.persistentVolumeClaimRetentionPolicy.whenScaled", "Retain");
}

// Whether the claim's owners are what the retention policy wants: the set when
// whenDeleted=Delete (and the pod is in range), the pod when whenScaled=Delete
// and the pod is scaled away.
bool IsClaimOwnerUpToDate(const json& claim, const json& set, const json& pod) {
  OwnerId s = SetOwner(set), p = PodOwner(pod);
  if (HasStaleOwnerRef(claim, s) || HasStaleOwnerRef(claim, p)) {
    return true;  // managed by a previous incarnation: leave it alone
  }
  if (HasUnexpectedController(claim, s, p)) {
    return !(HasOwnerRef(claim, s) || HasOwnerRef(claim, p));
  }
  if (HasNonControllerOwner(claim, s, p)) {
    return false;
  }
  bool scaled_down = !InOrdinalRange(set, PodOrdinal(pod));
  bool del_deleted = WhenDeleted(set) == "Delete", del_scaled = WhenScaled(set) == "Delete";
  bool want_set = del_deleted && !(del_scaled && scaled_down);
  bool want_pod = del_scaled && scaled_down;
  return HasOwnerRef(claim, s) == want_set && HasOwnerRef(claim, p) == want_pod;
}

json ClaimOwnerRefsFor(const json& claim, const json& set, const json& pod) {
  OwnerId s = SetOwner(set), p = PodOwner(pod);
  bool unexpected = HasUnexpectedController(claim, s, p);
  json refs = json::array();
  for (const auto& r : ArrayAt(claim, "metadata.ownerReferences")) {
    if (!MatchesRef(r, s) && !MatchesRef(r, p)) {
      refs.push_back(r);
    }
  }
  if (unexpected) {
    return refs;
  }
  bool scaled_down = !InOrdinalRange(set, PodOrdinal(pod));
  bool del_deleted = WhenDeleted(set) == "Delete", del_scaled = WhenScaled(set) == "Delete";
  if (del_scaled && scaled_down) {
    refs.push_back(NewControllerRef(pod));
  } else if (del_deleted) {
    refs.push_back(NewControllerRef(set));
  }
  return refs;
}

// What the controller computed for `status`.
struct Status {
  int64_t replicas = 0, ready = 0, available = 0, current = 0, updated = 0;
  std::string current_revision, update_revision;
  int64_t collisions = 0;
  bool computed = false;  // the counts above reflect the pods
};

void CountReplicas(Status& st, const std::vector<json>& pods, int64_t min_ready) {
  for (const auto& pod : pods) {
    if (pod.is_null()) {
      continue;
    }
    if (IsCreated(pod)) {
      ++st.replicas;
    }
    if (IsRunningAndReady(pod)) {
      ++st.ready;
      if (IsRunningAndAvailable(pod, min_ready)) {
        ++st.available;
      }
    }
    if (IsCreated(pod) && !IsPodTerminating(pod)) {
      std::string rev = PodRevision(pod);
      if (rev == st.current_revision) {
        ++st.current;
      }
      if (rev == st.update_revision) {
        ++st.updated;
      }
    }
  }
}

void ComputeStatus(Status& st, int64_t min_ready, const std::vector<json>& replicas,
                   const std::vector<json>& condemned) {
  st.replicas = st.ready = st.available = st.current = st.updated = 0;
  CountReplicas(st, replicas, min_ready);
  CountReplicas(st, condemned, min_ready);
  st.computed = true;
}

class StatefulSetController : public QueueController {
 public:
  explicit StatefulSetController(Context ctx) : QueueController("statefulset", ctx, 2) {
    sets_ = ctx_.informers->For(client::resources::kStatefulSets);
    pods_ = ctx_.informers->For(client::resources::kPods);
    revisions_ = ctx_.informers->For(client::resources::kControllerRevisions);
    claims_ = ctx_.informers->For(client::resources::kPersistentVolumeClaims);
    sets_->AddHandlers(
        {[this](const client::Object& o) { EnqueueObject(o); },
         [this](const client::Object&, const client::Object& o) { EnqueueObject(o); }, nullptr});
    pods_->AddHandlers({[this](const client::Object& p) { PodChanged(p); },
                        [this](const client::Object& old, const client::Object& p) {
                          PodChanged(p);
                          if (OwnerKey(*old) != OwnerKey(*p)) {
                            PodChanged(old);
                          }
                        },
                        [this](const client::Object& p) { PodChanged(p); }});
    // A claim that goes (or changes owners) may be what a set waits for.
    auto claim_changed = [this](const client::Object& c) { ClaimChanged(c); };
    claims_->AddHandlers(
        {claim_changed,
         [claim_changed](const client::Object&, const client::Object& c) { claim_changed(c); },
         claim_changed});
  }

 private:
  static std::string OwnerKey(const json& pod) {
    const json* ref = ControllerRef(pod);
    if (!ref || ref->value("kind", "") != "StatefulSet") {
      return "";
    }
    return GetString(pod, "metadata.namespace") + "/" + ref->value("name", "");
  }

  static bool Selects(const json& set, const json& obj) {
    const json* sel = Find(set, "spec.selector");
    const json* labels = Find(obj, "metadata.labels");
    auto s = api::LabelSelector::FromJson(sel ? *sel : json());
    return !s.empty() && s.Matches(labels ? *labels : json());
  }

  void PodChanged(const client::Object& p) {
    std::string key = OwnerKey(*p);
    if (!key.empty()) {
      Enqueue(key);
      return;
    }
    if (ControllerRef(*p)) {
      return;  // someone else's
    }
    // An orphan: the set it is named after may adopt it.
    for (const auto& set : sets_->ListNamespace(GetString(*p, "metadata.namespace"))) {
      if (IsMemberOf(*set, *p) && Selects(*set, *p)) {
        EnqueueObject(set);
      }
    }
  }

  void ClaimChanged(const client::Object& c) {
    for (const auto& set : sets_->ListNamespace(GetString(*c, "metadata.namespace"))) {
      if (!ArrayAt(*set, "spec.volumeClaimTemplates").empty() && Selects(*set, *c)) {
        EnqueueObject(set);
      }
    }
  }

  static std::string PodPath(const std::string& ns, const std::string& name) {
    return client::resources::kPods.Item(ns, name);
  }

  void Sync(const std::string& key) override {
    client::Object obj = sets_->Get(key);
    if (!obj) {
      return;
    }
    const json& set = *obj;
    if (Find(set, "metadata.deletionTimestamp")) {
      return;  // its pods go with the garbage collector
    }
    const json* sel = Find(set, "spec.selector");
    if (!sel || api::LabelSelector::FromJson(*sel).empty()) {
      ctx_.events->Event(
          set, "Warning", "SelectingAll",
          "This statefulset is selecting all pods. A non-empty selector is required.");
      return;
    }
    std::vector<json> pods = ClaimMembers(set);
    std::vector<json> revisions = ClaimObjects(*ctx_.client, *revisions_, set, false);
    SortRevisions(revisions);
    Status st;
    st.collisions = IntAt(set, "status.collisionCount");
    json update = UpdateRevision(set, revisions, &st.collisions);
    json current = update;
    std::string current_name = GetString(set, "status.currentRevision");
    for (const auto& r : revisions) {
      if (GetString(r, "metadata.name") == current_name) {
        current = r;
        break;
      }
    }
    st.current_revision = GetString(current, "metadata.name");
    st.update_revision = GetString(update, "metadata.name");
    try {
      UpdateStatefulSet(set, current, update, pods, st);
    } catch (const std::exception&) {
      if (st.computed) {
        WriteStatus(set, st);
      }
      throw;
    }
    WriteStatus(set, st);
    TruncateHistory(set, pods, revisions, current, update);
  }

  // The pods of `set`: those it controls that still match its selector and
  // carry its name, after adopting matching orphans and releasing the rest.
  std::vector<json> ClaimMembers(const json& set) {
    std::string ns = GetString(set, "metadata.namespace");
    std::string uid = GetString(set, "metadata.uid");
    std::vector<json> out;
    for (const auto& obj : pods_->ListNamespace(ns)) {
      const json& pod = *obj;
      bool wanted = Selects(set, pod) && IsMemberOf(set, pod);
      const json* ref = ControllerRef(pod);
      std::string path = PodPath(ns, GetString(pod, "metadata.name"));
      if (ref && ref->value("uid", "") == uid) {
        if (wanted) {
          out.push_back(pod);
          continue;
        }
        json refs = json::array();
        for (const auto& r : ArrayAt(pod, "metadata.ownerReferences")) {
          if (r.value("uid", "") != uid) {
            refs.push_back(r);
          }
        }
        try {
          ctx_.client->Patch(path, {{"metadata",
                                     {{"ownerReferences", refs.empty() ? json() : refs},
                                      {"uid", GetString(pod, "metadata.uid")}}}});
        } catch (const client::ApiError& e) {
          log::Debug("release {}: {}", path, e.what());
        }
        continue;
      }
      if (ref || !wanted || IsPodTerminating(pod)) {
        continue;
      }
      json refs = ArrayAt(pod, "metadata.ownerReferences");
      refs.push_back(NewControllerRef(set));
      try {
        out.push_back(ctx_.client->Patch(
            path, {{"metadata",
                    {{"ownerReferences", refs},
                     {"uid", GetString(pod, "metadata.uid")},
                     {"resourceVersion", GetString(pod, "metadata.resourceVersion")}}}}));
      } catch (const client::ApiError& e) {
        log::Debug("adopt {}: {}", path, e.what());
      }
    }
    return out;
  }

  // The revision of the set's current template: the newest revision when it
  // records this template, an older one renumbered as the newest when it does
  // (a rollback), else a new one. Name collisions bump `collisions`.
  json UpdateRevision(const json& set, const std::vector<json>& revisions, int64_t* collisions) {
    json data = RevisionData(set);
    int64_t next = revisions.empty() ? 1 : RevisionNumber(revisions.back()) + 1;
    const json* equal = nullptr;
    for (const auto& r : revisions) {
      if (r.value("data", json()) == data) {
        equal = &r;
      }
    }
    std::string ns = GetString(set, "metadata.namespace");
    if (equal && equal == &revisions.back()) {
      return *equal;
    }
    if (equal) {
      return ctx_.client->Patch(
          client::resources::kControllerRevisions.Item(ns, GetString(*equal, "metadata.name")),
          {{"revision", next}});
    }
    std::string prefix = GetString(set, "metadata.name").substr(0, 223);
    json labels = ObjectAt(set, "spec.template.metadata.labels");
    json annotations = ObjectAt(set, "metadata.annotations");
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::string hash = TemplateHash(data, *collisions);
      labels[kRevisionHashLabel] = hash;
      json meta = {{"name", prefix + "-" + hash},
                   {"namespace", ns},
                   {"labels", labels},
                   {"ownerReferences", json::array({NewControllerRef(set)})}};
      if (!annotations.empty()) {
        meta["annotations"] = annotations;
      }
      json cr = {{"apiVersion", "apps/v1"},
                 {"kind", "ControllerRevision"},
                 {"metadata", meta},
                 {"data", data},
                 {"revision", next}};
      try {
        return ctx_.client->Post(client::resources::kControllerRevisions.Collection(ns), cr);
      } catch (const client::ApiError& e) {
        if (e.code != 409) {
          throw;
        }
      }
      json existing =
          ctx_.client->Get(client::resources::kControllerRevisions.Item(ns, prefix + "-" + hash));
      if (existing.value("data", json()) == data) {
        return existing;
      }
      ++*collisions;
    }
    throw std::runtime_error("no free ControllerRevision name for statefulset " +
                             GetString(set, "metadata.name"));
  }

  // Kubernetes' updateStatefulSet: create, replace and delete members toward
  // `spec.replicas` pods of the right revisions, filling `st`.
  void UpdateStatefulSet(const json& set, const json& current, const json& update,
                         const std::vector<json>& pods, Status& st) {
    json current_tmpl = RevisionTemplate(current), update_tmpl = RevisionTemplate(update);
    int64_t replica_count = std::max<int64_t>(0, Replicas(set));
    int64_t start = StartOrdinal(set);
    int64_t min_ready = IntAt(set, "spec.minReadySeconds");
    std::vector<json> replicas(static_cast<size_t>(replica_count));
    std::vector<json> condemned;
    for (const auto& pod : pods) {
      int64_t ord = PodOrdinal(pod);
      if (InOrdinalRange(set, ord)) {
        replicas[static_cast<size_t>(ord - start)] = pod;
      } else if (ord >= 0) {
        condemned.push_back(pod);
      }
    }
    for (int64_t i = 0; i < replica_count; ++i) {
      if (replicas[static_cast<size_t>(i)].is_null()) {
        replicas[static_cast<size_t>(i)] =
            NewVersionedPod(set, current_tmpl, update_tmpl, st, start + i);
      }
    }
    std::sort(condemned.begin(), condemned.end(),
              [](const json& a, const json& b) { return PodOrdinal(a) > PodOrdinal(b); });
    std::string first_unavailable;
    for (const auto& pod : replicas) {
      if (first_unavailable.empty() && IsUnavailable(pod, min_ready)) {
        first_unavailable = GetString(pod, "metadata.name");
      }
    }
    for (auto it = condemned.rbegin(); it != condemned.rend(); ++it) {
      if (first_unavailable.empty() && IsUnavailable(*it, min_ready)) {
        first_unavailable = GetString(*it, "metadata.name");
      }
    }
    ComputeStatus(st, min_ready, replicas, condemned);
    bool monotonic = GetString(set, "spec.podManagementPolicy", "OrderedReady") != "Parallel";
    // Without bursting, work stops at the first member that is not ready yet;
    // with it (Parallel), every member is worked on.
    auto run_for_all = [&](std::vector<json>& list, auto fn) {
      for (size_t i = 0; i < list.size(); ++i) {
        if (fn(list[i]) && monotonic) {
          return true;
        }
      }
      return false;
    };
    if (run_for_all(replicas, [&](json& pod) { return ProcessReplica(set, monotonic, pod); })) {
      ComputeStatus(st, min_ready, replicas, condemned);
      return;
    }
    // Claims of members about to be scaled away get the owners the retention policy wants.
    for (const auto& pod : condemned) {
      if (!ClaimsMatchRetentionPolicy(set, pod)) {
        UpdateClaimsForRetentionPolicy(set, pod);
      }
    }
    if (run_for_all(condemned, [&](json& pod) {
          return ProcessCondemned(set, pod, first_unavailable, monotonic);
        })) {
      ComputeStatus(st, min_ready, replicas, condemned);
      return;
    }
    ComputeStatus(st, min_ready, replicas, condemned);
    if (GetString(set, "spec.updateStrategy.type", "RollingUpdate") == "OnDelete") {
      return;
    }
    // Rolling update: the highest ordinal not at the update revision goes first,
    // one at a time, each replacement Ready before the next; ordinals below
    // the partition keep theirs.
    int64_t update_min = IntAt(set, "spec.updateStrategy.rollingUpdate.partition", 0);
    for (int64_t target = replica_count - 1; target >= update_min; --target) {
      json& pod = replicas[static_cast<size_t>(target)];
      if (PodRevision(pod) != st.update_revision && !IsPodTerminating(pod)) {
        DeletePod(set, pod);
        --st.current;
        return;
      }
      if (IsUnavailable(pod, min_ready)) {
        return;
      }
    }
  }

  json NewVersionedPod(const json& set, const json& current_tmpl, const json& update_tmpl,
                       const Status& st, int64_t ord) {
    bool rolling = GetString(set, "spec.updateStrategy.type", "RollingUpdate") == "RollingUpdate";
    const json* partition = Find(set, "spec.updateStrategy.rollingUpdate.partition");
    bool use_current;
    if (partition && partition->is_number_integer()) {
      use_current = ord < StartOrdinal(set) + partition->get<int64_t>();
    } else {
      use_current = rolling && ord < StartOrdinal(set) + IntAt(set, "status.currentReplicas");
    }
    json pod = NewStatefulSetPod(set, use_current ? current_tmpl : update_tmpl, ord);
    pod["metadata"]["labels"][kRevisionLabel] =
        use_current ? st.current_revision : st.update_revision;
    return pod;
  }

  // One member in range. Returns true when a monotonic set must wait.
  bool ProcessReplica(const json& set, bool monotonic, json& pod) {
    std::string phase = GetString(pod, "status.phase");
    if (phase == "Failed" || phase == "Succeeded") {
      // Its replacement, with the same name, comes once it is gone.
      if (!IsPodTerminating(pod)) {
        if (phase == "Failed") {
          ctx_.events->Event(set, "Warning", "RecreatingFailedPod",
                             "StatefulSet " + GetString(set, "metadata.namespace") + "/" +
                                 GetString(set, "metadata.name") + " is recreating failed Pod " +
                                 GetString(pod, "metadata.name"));
        }
        DeletePod(set, pod);
      }
      return true;
    }
    if (!IsCreated(pod)) {
      if (PodClaimIsStale(set, pod)) {
        return true;  // the collector removes the old claim first
      }
      if (!CreateStatefulPod(set, pod)) {
        return true;
      }
      return monotonic;
    }
    if (phase == "Pending") {
      CreateClaims(set, pod);
    }
    int64_t min_ready = IntAt(set, "spec.minReadySeconds");
    if (monotonic && (IsPodTerminating(pod) || !IsRunningAndReady(pod) ||
                      !IsRunningAndAvailable(pod, min_ready))) {
      return true;
    }
    // The invariants: identity labels, and the claims' owners.
    if (!IdentityMatches(set, pod)) {
      std::string name = GetString(pod, "metadata.name");
      ctx_.client->Patch(
          PodPath(GetString(pod, "metadata.namespace"), name),
          {{"metadata",
            {{"labels",
              {{kPodNameLabel, name}, {kPodIndexLabel, std::to_string(PodOrdinal(pod))}}}}}});
      ctx_.events->Event(set, "Normal", "SuccessfulUpdate",
                         "update Pod " + name + " in StatefulSet " +
                             GetString(set, "metadata.name") + " successful");
    }
    if (!ClaimsMatchRetentionPolicy(set, pod)) {
      UpdateClaimsForRetentionPolicy(set, pod);
    }
    return false;
  }

  // One member beyond the range. Returns true when it was deleted or, for a
  // monotonic set, when it must wait.
  bool ProcessCondemned(const json& set, const json& pod, const std::string& first_unavailable,
                        bool monotonic) {
    if (IsPodTerminating(pod)) {
      return monotonic;
    }
    bool first = GetString(pod, "metadata.name") == first_unavailable;
    if (monotonic && !first &&
        (!IsRunningAndReady(pod) ||
         !IsRunningAndAvailable(pod, IntAt(set, "spec.minReadySeconds")))) {
      return true;
    }
    DeletePod(set, pod);
    return true;
  }

  // Creates the member's claims, then the member. False when it already exists
  // (a cache that lags): the next event brings it.
  bool CreateStatefulPod(const json& set, const json& pod) {
    std::string ns = GetString(set, "metadata.namespace");
    std::string name = GetString(pod, "metadata.name");
    std::string set_name = GetString(set, "metadata.name");
    try {
      CreateClaims(set, pod);
    } catch (const std::exception& e) {
      ctx_.events->Event(
          set, "Warning", "FailedCreate",
          "create Pod " + name + " in StatefulSet " + set_name + " failed error: " + e.what());
      throw;
    }
    try {
      ctx_.client->Post(client::resources::kPods.Collection(ns), pod);
    } catch (const client::ApiError& e) {
      if (e.code == 409) {
        return false;
      }
      ctx_.events->Event(
          set, "Warning", "FailedCreate",
          "create Pod " + name + " in StatefulSet " + set_name + " failed error: " + e.what());
      throw;
    }
    ctx_.events->Event(set, "Normal", "SuccessfulCreate",
                       "create Pod " + name + " in StatefulSet " + set_name + " successful");
    return true;
  }

  // Creates the claims of a member that do not exist yet, owned as the retention
  // policy wants.
  void CreateClaims(const json& set, const json& pod) {
    std::string ns = GetString(set, "metadata.namespace");
    std::string pod_name = GetString(pod, "metadata.name");
    std::string set_name = GetString(set, "metadata.name");
    std::vector<std::string> errors;
    for (auto& [tname, claim] : ClaimsFor(set, PodOrdinal(pod))) {
      std::string cname = GetString(claim, "metadata.name");
      if (client::Object existing = claims_->Get(ns + "/" + cname)) {
        if (IsPodTerminating(*existing)) {
          errors.push_back("pvc " + cname + " is being deleted");
        }
        continue;
      }
      if (WhenDeleted(set) == "Delete") {
        claim["metadata"]["ownerReferences"] = json::array({NewControllerRef(set)});
      }
      try {
        ctx_.client->Post(client::resources::kPersistentVolumeClaims.Collection(ns), claim);
        ctx_.events->Event(set, "Normal", "SuccessfulCreate",
                           "create Claim " + cname + " Pod " + pod_name + " in StatefulSet " +
                               set_name + " success");
      } catch (const client::ApiError& e) {
        if (e.code == 409) {
          continue;  // made before; the cache has not seen it yet
        }
        ctx_.events->Event(set, "Warning", "FailedCreate",
                           "create Claim " + cname + " for Pod " + pod_name + " in StatefulSet " +
                               set_name + " failed error: " + e.what());
        errors.push_back("failed to create PVC " + cname + ": " + e.what());
      }
    }
    if (!errors.empty()) {
      std::string all;
      for (const auto& e : errors) {
        all += (all.empty() ? "" : "; ") + e;
      }
      throw std::runtime_error(all);
    }
  }

  // With whenScaled=Delete, a claim still owned by an earlier pod of this name
  // must be collected before a new pod may use that name.
  bool PodClaimIsStale(const json& set, const json& pod) {
    if (WhenScaled(set) != "Delete") {
      return false;
    }
    std::string ns = GetString(set, "metadata.namespace");
    for (const auto& [_, claim] : ClaimsFor(set, PodOrdinal(pod))) {
      client::Object existing = claims_->Get(ns + "/" + GetString(claim, "metadata.name"));
      if (existing && HasStaleOwnerRef(*existing, PodOwner(pod))) {
        return true;
      }
    }
    return false;
  }

  bool ClaimsMatchRetentionPolicy(const json& set, const json& pod) {
    std::string ns = GetString(set, "metadata.namespace");
    for (const auto& [_, claim] : ClaimsFor(set, PodOrdinal(pod))) {
      client::Object existing = claims_->Get(ns + "/" + GetString(claim, "metadata.name"));
      if (existing && !IsClaimOwnerUpToDate(*existing, set, pod)) {
        return false;
      }
    }
    return true;
  }

  void UpdateClaimsForRetentionPolicy(const json& set, const json& pod) {
    std::string ns = GetString(set, "metadata.namespace");
    for (const auto& [_, claim] : ClaimsFor(set, PodOrdinal(pod))) {
      std::string cname = GetString(claim, "metadata.name");
      client::Object existing = claims_->Get(ns + "/" + cname);
      if (!existing || IsClaimOwnerUpToDate(*existing, set, pod)) {
        continue;
      }
      json refs = ClaimOwnerRefsFor(*existing, set, pod);
      try {
        ctx_.client->Patch(
            client::resources::kPersistentVolumeClaims.Item(ns, cname),
            {{"metadata",
              {{"ownerReferences", refs.empty() ? json() : refs},
               {"resourceVersion", GetString(*existing, "metadata.resourceVersion")}}}});
      } catch (const client::ApiError& e) {
        if (e.code != 404 && e.code != 409) {
          throw;
        }
        Enqueue(client::KeyOf(set));
      }
    }
  }

  // Deletes a member (this incarnation only: a uid precondition).
  void DeletePod(const json& set, const json& pod) {
    std::string name = GetString(pod, "metadata.name");
    std::string set_name = GetString(set, "metadata.name");
    try {
      ctx_.client->Delete(PodPath(GetString(pod, "metadata.namespace"), name),
                          {{"preconditions", {{"uid", GetString(pod, "metadata.uid")}}}});
      ctx_.events->Event(set, "Normal", "SuccessfulDelete",
                         "delete Pod " + name + " in StatefulSet " + set_name + " successful");
    } catch (const client::ApiError& e) {
      if (e.code == 404 || e.code == 409) {
        return;  // gone already, or replaced
      }
      ctx_.events->Event(
          set, "Warning", "FailedDelete",
          "delete Pod " + name + " in StatefulSet " + set_name + " failed error: " + e.what());
      throw;
    }
  }

  void WriteStatus(const json& set, Status& st) {
    // A finished rolling update makes the update revision current.
    if (GetString(set, "spec.updateStrategy.type", "RollingUpdate") == "RollingUpdate" &&
        st.updated == st.replicas && st.ready == st.replicas) {
      st.current = st.updated;
      st.current_revision = st.update_revision;
    }
    json old = ObjectAt(set, "status");
    json status = old;
    status["observedGeneration"] = IntAt(set, "metadata.generation", 1);
    status["replicas"] = st.replicas;
    status["readyReplicas"] = st.ready;
    status["currentReplicas"] = st.current;
    status["updatedReplicas"] = st.updated;
    status["availableReplicas"] = st.available;
    status["currentRevision"] = st.current_revision;
    status["updateRevision"] = st.update_revision;
    status["collisionCount"] = st.collisions;
    for (const char* k : {"readyReplicas", "currentReplicas", "updatedReplicas"}) {
      if (status[k] == 0) {
        status.erase(k);
      }
    }
    for (const char* k : {"currentRevision", "updateRevision"}) {
      if (status[k] == "") {
        status.erase(k);
      }
    }
    int64_t min_ready = IntAt(set, "spec.minReadySeconds");
    if (min_ready > 0 && st.available != Replicas(set)) {
      EnqueueAfter(client::KeyOf(set), std::chrono::seconds(min_ready));
    }
    if (status == old) {
      return;
    }
    json next = set;
    next["status"] = status;
    try {
      ctx_.client->Put(client::resources::kStatefulSets.Item(GetString(set, "metadata.namespace"),
                                                             GetString(set, "metadata.name")) +
                           "/status",
                       next);
    } catch (const client::ApiError& e) {
      if (e.code != 404 && e.code != 409) {
        throw;
      }
      if (e.code == 409) {
        Enqueue(client::KeyOf(set));
      }
    }
  }

  // Deletes the oldest revisions that no member uses beyond revisionHistoryLimit.
  void TruncateHistory(const json& set, const std::vector<json>& pods,
                       const std::vector<json>& revisions, const json& current,
                       const json& update) {
    std::vector<std::string> live = {GetString(current, "metadata.name"),
                                     GetString(update, "metadata.name")};
    for (const auto& p : pods) {
      live.push_back(PodRevision(p));
    }
    std::vector<const json*> history;
    for (const auto& r : revisions) {
      if (std::find(live.begin(), live.end(), GetString(r, "metadata.name")) == live.end()) {
        history.push_back(&r);
      }
    }
    int64_t extra =
        static_cast<int64_t>(history.size()) - IntAt(set, "spec.revisionHistoryLimit", 10);
    std::string ns = GetString(set, "metadata.namespace");
    for (int64_t i = 0; i < extra; ++i) {
      try {
        ctx_.client->Delete(client::resources::kControllerRevisions.Item(
            ns, GetString(*history[static_cast<size_t>(i)], "metadata.name")));
      } catch (const client::ApiError& e) {
        if (e.code != 404) {
          throw;
        }
      }
    }
  }

  std::shared_ptr<client::Informer> sets_, pods_, revisions_, claims_;
};

}  // namespace

std::unique_ptr<Controller> NewStatefulSetController(Context ctx) {
  return std::make_unique<StatefulSetController>(std::move(ctx));
}

}  // namespace minik::controllers
