// The scheduler's filters and scores: pure functions of a pod and the nodes.

#include <algorithm>
#include <map>
#include <set>

#include "api/quantity.h"
#include "api/selectors.h"
#include "scheduler/scheduler.h"

namespace minik::scheduler {

bool IsActive(const json& pod);

namespace {

const json kNone = json::object();

const json& At(const json& o, const char* path) {
  const json* v = Find(o, path);
  return v ? *v : kNone;
}

const json kEmptyArray = json::array();

// The array at `path`, or an empty one: a reference, never a copy (this runs
// for every pod against every node).
const json& Arr(const json& o, const char* path) {
  const json* v = Find(o, path);
  return v && v->is_array() ? *v : kEmptyArray;
}

bool Tolerates(const json& tolerations, const json& taint) {
  for (const auto& t : tolerations) {
    std::string effect = t.value("effect", "");
    if (!effect.empty() && effect != taint.value("effect", "")) {
      continue;
    }
    std::string op = t.value("operator", "Equal");
    std::string key = t.value("key", "");
    if (key.empty() && op == "Exists") {
      return true;
    }
    if (key != taint.value("key", "")) {
      continue;
    }
    if (op == "Exists" || t.value("value", "") == taint.value("value", "")) {
      return true;
    }
  }
  return false;
}

bool MatchNodeSelectorTerm(const json& term, const json& node) {
  const json& labels = At(node, "metadata.labels");
  for (const auto& e : term.value("matchExpressions", json::array())) {
    std::string key = e.value("key", "");
    std::string op = e.value("operator", "");
    bool has = labels.is_object() && labels.contains(key);
    std::string v = has && labels[key].is_string() ? labels[key].get<std::string>() : "";
    json values = e.value("values", json::array());
    bool in = std::find(values.begin(), values.end(), v) != values.end();
    if (op == "In" && !(has && in))
      return false;
    if (op == "NotIn" && has && in)
      return false;
    if (op == "Exists" && !has)
      return false;
    if (op == "DoesNotExist" && has)
      return false;
    if (op == "Gt" || op == "Lt") {
      if (!has || values.empty())
        return false;
      long a = std::atol(v.c_str()), b = std::atol(values[0].get<std::string>().c_str());
      if ((op == "Gt" && !(a > b)) || (op == "Lt" && !(a < b)))
        return false;
    }
  }
  for (const auto& f : term.value("matchFields", json::array())) {
    if (f.value("key", "") == "metadata.name") {
      json values = f.value("values", json::array());
      bool in =
          std::find(values.begin(), values.end(), GetString(node, "metadata.name")) != values.end();
      std::string op = f.value("operator", "");
      if ((op == "In" && !in) || (op == "NotIn" && in))
        return false;
    }
  }
  return true;
}

bool MatchesNodeSelectorTerms(const json& terms, const json& node) {
  if (!terms.is_array() || terms.empty()) {
    return false;
  }
  for (const auto& t : terms) {
    if (MatchNodeSelectorTerm(t, node)) {
      return true;
    }
  }
  return false;
}

std::string Label(const json& obj, const std::string& key) {
  const json& labels = At(obj, "metadata.labels");
  return labels.is_object() && labels.contains(key) && labels[key].is_string()
             ? labels[key].get<std::string>()
             : "";
}

bool PodMatchesTerm(const json& other, const json& term, const json& pod) {
  // Namespaces: the term's, else the pod's own.
  json namespaces = term.value("namespaces", json::array());
  std::string ons = GetString(other, "metadata.namespace");
  bool ns_ok = namespaces.empty()
                   ? ons == GetString(pod, "metadata.namespace")
                   : std::find(namespaces.begin(), namespaces.end(), ons) != namespaces.end();
  if (term.contains("namespaceSelector") && term["namespaceSelector"].is_object() &&
      term["namespaceSelector"].empty()) {
    ns_ok = true;  // {} selects every namespace
  }
  if (!ns_ok || !IsActive(other)) {
    return false;
  }
  auto sel = api::LabelSelector::FromJson(term.value("labelSelector", json()));
  return sel.Matches(At(other, "metadata.labels"));
}

}  // namespace

void PrepareSpread(const json& pod, std::vector<NodeInfo>& nodes) {
  std::string owner;
  for (const auto& r : Arr(pod, "metadata.ownerReferences")) {
    if (r.value("controller", false)) {
      owner = r.value("uid", "");
    }
  }
  for (auto& n : nodes) {
    auto it = n.owners.find(owner);
    n.same_owner = owner.empty() ? -1 : it == n.owners.end() ? 0 : it->second;
  }
}

void CountPod(NodeInfo& ni, const std::shared_ptr<const json>& pp) {
  const json& p = *pp;
  Requests r = PodRequests(p);
  ni.req_cpu += r.cpu;
  ni.req_mem += r.mem;
  ++ni.pods;
  for (const auto& c : Arr(p, "spec.containers")) {
    for (const auto& port : c.value("ports", json::array())) {
      if (port.value("hostPort", 0)) {
        ni.host_ports.emplace_back(port.value("protocol", "TCP"), port.value("hostPort", 0));
      }
    }
  }
  ni.pod_list.push_back(pp);
  if (!Arr(p, "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution")
           .empty()) {
    ni.anti_affinity.push_back(pp);
  }
  for (const auto& ref : Arr(p, "metadata.ownerReferences")) {
    std::string uid = ref.value("uid", "");
    if (!uid.empty()) {
      ++ni.owners[uid];
    }
  }
}

Requests PodRequests(const json& pod) {
  Requests r;
  for (const auto& c : Arr(pod, "spec.containers")) {
    r.cpu += api::QuantityMilli(At(c, "resources.requests.cpu"));
    r.mem += api::QuantityMilli(At(c, "resources.requests.memory"));
  }
  for (const auto& c : Arr(pod, "spec.initContainers")) {
    r.cpu = std::max(r.cpu, api::QuantityMilli(At(c, "resources.requests.cpu")));
    r.mem = std::max(r.mem, api::QuantityMilli(At(c, "resources.requests.memory")));
  }
  r.cpu += api::QuantityMilli(At(pod, "spec.overhead.cpu"));
  r.mem += api::QuantityMilli(At(pod, "spec.overhead.memory"));
  return r;
}

bool IsActive(const json& pod) {
  std::string phase = GetString(pod, "status.phase");
  return phase != "Succeeded" && phase != "Failed";
}

std::string Filter(const json& pod, const NodeInfo& n, const std::vector<NodeInfo>& all,
                   const std::vector<json>& pvs, const std::vector<json>& pvcs) {
  const json& node = n.node;
  const json& tolerations = Arr(pod, "spec.tolerations");
  // NodeUnschedulable.
  if (At(node, "spec.unschedulable") == true &&
      !Tolerates(tolerations,
                 {{"key", "node.kubernetes.io/unschedulable"}, {"effect", "NoSchedule"}})) {
    return "node(s) were unschedulable";
  }
  // NodeAffinity and nodeSelector.
  const json& sel = At(pod, "spec.nodeSelector");
  if (sel.is_object()) {
    for (auto it = sel.begin(); it != sel.end(); ++it) {
      if (Label(node, it.key()) != (it.value().is_string() ? it.value().get<std::string>() : "") ||
          !At(node, "metadata.labels").contains(it.key())) {
        return "node(s) didn't match Pod's node affinity/selector";
      }
    }
  }
  const json& required = At(pod,
                            "spec.affinity.nodeAffinity."
                            "requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
  if (required.is_array() && !MatchesNodeSelectorTerms(required, node)) {
    return "node(s) didn't match Pod's node affinity/selector";
  }
  // TaintToleration.
  for (const auto& taint : Arr(node, "spec.taints")) {
    std::string effect = taint.value("effect", "");
    if ((effect == "NoSchedule" || effect == "NoExecute") && !Tolerates(tolerations, taint)) {
      return "node(s) had untolerated taint {" + taint.value("key", "") + ": " +
             taint.value("value", "") + "}";
    }
  }
  // NodeResourcesFit.
  Requests req = PodRequests(pod);
  if (n.pods + 1 > n.alloc_pods / 1000) {
    return "Too many pods";
  }
  if (req.cpu > 0 && n.req_cpu + req.cpu > n.alloc_cpu) {
    return "Insufficient cpu";
  }
  if (req.mem > 0 && n.req_mem + req.mem > n.alloc_mem) {
    return "Insufficient memory";
  }
  // NodePorts.
  for (const auto& c : Arr(pod, "spec.containers")) {
    for (const auto& p : c.value("ports", json::array())) {
      int hp = p.value("hostPort", 0);
      if (hp == 0) {
        continue;
      }
      std::string proto = p.value("protocol", "TCP");
      if (std::find(n.host_ports.begin(), n.host_ports.end(), std::make_pair(proto, hp)) !=
          n.host_ports.end()) {
        return "node(s) didn't have free ports for the requested pod ports";
      }
    }
  }
  // Volumes bound to local PVs must be on this node.
  for (const auto& v : Arr(pod, "spec.volumes")) {
    std::string claim = GetString(v, "persistentVolumeClaim.claimName");
    if (claim.empty()) {
      continue;
    }
    for (const auto& pvc : pvcs) {
      if (GetString(pvc, "metadata.name") != claim ||
          GetString(pvc, "metadata.namespace") != GetString(pod, "metadata.namespace")) {
        continue;
      }
      std::string pv_name = GetString(pvc, "spec.volumeName");
      for (const auto& pv : pvs) {
        if (GetString(pv, "metadata.name") != pv_name) {
          continue;
        }
        const json& terms = At(pv, "spec.nodeAffinity.required.nodeSelectorTerms");
        if (terms.is_array() && !MatchesNodeSelectorTerms(terms, node)) {
          return "node(s) had volume node affinity conflict";
        }
      }
    }
  }
  // InterPodAffinity (required terms).
  for (const auto& term :
       Arr(pod, "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution")) {
    std::string key = term.value("topologyKey", "");
    std::string value = Label(node, key);
    bool found = false, any_anywhere = false;
    for (const auto& other : all) {
      for (const auto& pp : other.pod_list) {
        const json& p = *pp;
        if (PodMatchesTerm(p, term, pod)) {
          any_anywhere = true;
          if (!value.empty() && Label(other.node, key) == value) {
            found = true;
          }
        }
      }
    }
    // The first pod of a group may go anywhere its own labels would match.
    bool self_match = PodMatchesTerm(pod, term, pod);
    if (!found && !(any_anywhere == false && self_match)) {
      return "node(s) didn't match pod affinity rules";
    }
  }
  for (const auto& term :
       Arr(pod, "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution")) {
    std::string key = term.value("topologyKey", "");
    std::string value = Label(node, key);
    if (value.empty()) {
      continue;
    }
    for (const auto& other : all) {
      if (Label(other.node, key) != value) {
        continue;
      }
      for (const auto& pp : other.pod_list) {
        const json& p = *pp;
        if (PodMatchesTerm(p, term, pod)) {
          return "node(s) didn't match pod anti-affinity rules";
        }
      }
    }
  }
  // Existing pods' anti-affinity against this pod.
  for (const auto& other : all) {
    for (const auto& pp : other.anti_affinity) {
      const json& p = *pp;
      for (const auto& term :
           Arr(p, "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution")) {
        std::string key = term.value("topologyKey", "");
        if (!Label(node, key).empty() && Label(node, key) == Label(other.node, key) &&
            PodMatchesTerm(pod, term, p)) {
          return "node(s) didn't satisfy existing pods anti-affinity rules";
        }
      }
    }
  }
  // PodTopologySpread (DoNotSchedule).
  for (const auto& c : Arr(pod, "spec.topologySpreadConstraints")) {
    if (c.value("whenUnsatisfiable", "DoNotSchedule") != "DoNotSchedule") {
      continue;
    }
    std::string key = c.value("topologyKey", "");
    if (Label(node, key).empty()) {
      return "node(s) didn't match pod topology spread constraints (missing required label)";
    }
    auto sel2 = api::LabelSelector::FromJson(c.value("labelSelector", json()));
    std::map<std::string, int> counts;
    for (const auto& other : all) {
      std::string v = Label(other.node, key);
      if (v.empty()) {
        continue;
      }
      counts.emplace(v, 0);
      for (const auto& pp : other.pod_list) {
        const json& p = *pp;
        if (GetString(p, "metadata.namespace") == GetString(pod, "metadata.namespace") &&
            IsActive(p) && sel2.Matches(At(p, "metadata.labels"))) {
          ++counts[v];
        }
      }
    }
    int min = INT32_MAX;
    for (auto& [_, cnt] : counts) {
      min = std::min(min, cnt);
    }
    int self = sel2.Matches(At(pod, "metadata.labels")) ? 1 : 0;
    if (counts[Label(node, key)] + self - min > c.value("maxSkew", 1)) {
      return "node(s) didn't match pod topology spread constraints";
    }
  }
  return "";
}

int64_t Score(const json& pod, const NodeInfo& n, const std::vector<NodeInfo>& all) {
  Requests req = PodRequests(pod);
  // Non-zero defaults as Kubernetes uses for scoring pods without requests.
  int64_t cpu = n.req_cpu + (req.cpu ? req.cpu : 100);
  int64_t mem = n.req_mem + (req.mem ? req.mem : 200LL * 1024 * 1024 * 1000);
  double cpu_frac = n.alloc_cpu ? std::min(1.0, double(cpu) / double(n.alloc_cpu)) : 1.0;
  double mem_frac = n.alloc_mem ? std::min(1.0, double(mem) / double(n.alloc_mem)) : 1.0;
  int64_t least = static_cast<int64_t>(((1 - cpu_frac) + (1 - mem_frac)) * 50);
  int64_t balanced = static_cast<int64_t>((1 - std::abs(cpu_frac - mem_frac)) * 100);
  int64_t score = least + balanced;
  // Spreading: fewer pods of the same controller on a node is better.
  if (n.same_owner >= 0) {
    int max_same = 0;
    for (const auto& other : all) {
      max_same = std::max(max_same, other.same_owner);
    }
    score += max_same ? 100 * (max_same - n.same_owner) / max_same : 100;
  }
  // Preferred node affinity.
  for (const auto& p :
       Arr(pod, "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution")) {
    if (MatchNodeSelectorTerm(p.value("preference", json::object()), n.node)) {
      score += p.value("weight", 0);
    }
  }
  // Taints with PreferNoSchedule count against a node.
  for (const auto& t : Arr(n.node, "spec.taints")) {
    if (t.value("effect", "") == "PreferNoSchedule" &&
        !Tolerates(Arr(pod, "spec.tolerations"), t)) {
      score -= 50;
    }
  }
  // Image locality.
  for (const auto& c : Arr(pod, "spec.containers")) {
    for (const auto& img : Arr(n.node, "status.images")) {
      for (const auto& name : img.value("names", json::array())) {
        if (name == c.value("image", "")) {
          score += 10;
        }
      }
    }
  }
  // ScheduleAnyway spread constraints: fewer matching pods in the domain is better.
  for (const auto& c : Arr(pod, "spec.topologySpreadConstraints")) {
    if (c.value("whenUnsatisfiable", "") != "ScheduleAnyway") {
      continue;
    }
    std::string key = c.value("topologyKey", "");
    std::string v = Label(n.node, key);
    auto sel = api::LabelSelector::FromJson(c.value("labelSelector", json()));
    int count = 0;
    for (const auto& other : all) {
      if (Label(other.node, key) != v) {
        continue;
      }
      for (const auto& pp : other.pod_list) {
        const json& p = *pp;
        if (sel.Matches(At(p, "metadata.labels"))) {
          ++count;
        }
      }
    }
    score -= count * 10;
  }
  return score;
}

}  // namespace minik::scheduler
