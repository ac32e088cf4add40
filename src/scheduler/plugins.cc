// The scheduler's filters and scores: pure functions of a pod and the nodes.

#include <algorithm>
#include <map>
#include <set>

#include "api/quantity.h"
#include "api/selectors.h"
#include "scheduler/scheduler.h"

namespace minik::scheduler {

namespace {

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
  const json& labels = ValueAt(node, "metadata.labels");
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
  return sel.Matches(ValueAt(other, "metadata.labels"));
}

}  // namespace

PodQuery::PodQuery(const json& p)
    : pod(p),
      ns(GetString(p, "metadata.namespace")),
      req(PodRequests(p)),
      host_ports(PodHostPorts(p)),
      tolerations(ArrayAt(p, "spec.tolerations")),
      node_selector(ValueAt(p, "spec.nodeSelector")),
      required_node_terms(
          ValueAt(p,
                  "spec.affinity.nodeAffinity."
                  "requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms")),
      preferred_node_terms(
          ArrayAt(p, "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution")),
      pod_affinity(
          ArrayAt(p, "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution")),
      pod_anti_affinity(ArrayAt(
          p, "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution")),
      spread(ArrayAt(p, "spec.topologySpreadConstraints")) {
  for (const auto& r : ArrayAt(p, "metadata.ownerReferences")) {
    if (r.value("controller", false)) {
      owner = r.value("uid", "");
    }
  }
}

void PrepareSpread(const PodQuery& q, ClusterView& all) {
  all.max_same_owner = 0;
  for (NodeInfo* n : all.nodes) {
    if (q.owner.empty()) {
      n->same_owner = -1;
      continue;
    }
    auto it = n->owners.find(q.owner);
    n->same_owner = it == n->owners.end() ? 0 : it->second;
    all.max_same_owner = std::max(all.max_same_owner, n->same_owner);
  }
}

std::string Filter(const PodQuery& q, const NodeInfo& n, const ClusterView& all) {
  const json& node = *n.node;
  const json& pod = q.pod;
  // NodeUnschedulable.
  if (n.unschedulable && !Tolerates(q.tolerations, {{"key", "node.kubernetes.io/unschedulable"},
                                                    {"effect", "NoSchedule"}})) {
    return "node(s) were unschedulable";
  }
  // NodeAffinity and nodeSelector.
  if (q.node_selector.is_object()) {
    const json& labels = n.Labels();
    for (auto it = q.node_selector.begin(); it != q.node_selector.end(); ++it) {
      auto l = labels.find(it.key());
      if (l == labels.end() || *l != it.value()) {
        return "node(s) didn't match Pod's node affinity/selector";
      }
    }
  }
  if (q.required_node_terms.is_array() && !MatchesNodeSelectorTerms(q.required_node_terms, node)) {
    return "node(s) didn't match Pod's node affinity/selector";
  }
  // TaintToleration.
  for (const auto& taint : *n.taints) {
    std::string effect = taint.value("effect", "");
    if ((effect == "NoSchedule" || effect == "NoExecute") && !Tolerates(q.tolerations, taint)) {
      return "node(s) had untolerated taint {" + taint.value("key", "") + ": " +
             taint.value("value", "") + "}";
    }
  }
  // NodeResourcesFit.
  if (n.pods + 1 > n.alloc_pods / 1000) {
    return "Too many pods";
  }
  if (q.req.cpu > 0 && n.req_cpu + q.req.cpu > n.alloc_cpu) {
    return "Insufficient cpu";
  }
  if (q.req.mem > 0 && n.req_mem + q.req.mem > n.alloc_mem) {
    return "Insufficient memory";
  }
  // NodePorts.
  for (const auto& hp : q.host_ports) {
    if (std::find(n.host_ports.begin(), n.host_ports.end(), hp) != n.host_ports.end()) {
      return "node(s) didn't have free ports for the requested pod ports";
    }
  }
  // Volumes bound to local PVs must be on this node.
  for (const auto& pv : q.volumes) {
    const json& terms = ValueAt(*pv, "spec.nodeAffinity.required.nodeSelectorTerms");
    if (terms.is_array() && !MatchesNodeSelectorTerms(terms, node)) {
      return "node(s) had volume node affinity conflict";
    }
  }
  // InterPodAffinity (required terms).
  for (const auto& term : q.pod_affinity) {
    std::string key = term.value("topologyKey", "");
    const std::string& value = n.Label(key);
    bool found = false, any_anywhere = false;
    for (const NodeInfo* other : all.nodes) {
      for (const auto& [_, p] : other->pod_map) {
        if (PodMatchesTerm(*p.pod, term, pod)) {
          any_anywhere = true;
          if (!value.empty() && other->Label(key) == value) {
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
  for (const auto& term : q.pod_anti_affinity) {
    std::string key = term.value("topologyKey", "");
    const std::string& value = n.Label(key);
    if (value.empty()) {
      continue;
    }
    for (const NodeInfo* other : all.nodes) {
      if (other->Label(key) != value) {
        continue;
      }
      for (const auto& [_, p] : other->pod_map) {
        if (PodMatchesTerm(*p.pod, term, pod)) {
          return "node(s) didn't match pod anti-affinity rules";
        }
      }
    }
  }
  // Existing pods' anti-affinity against this pod.
  if (all.anti_affinity_pods > 0) {
    for (const NodeInfo* other : all.nodes) {
      if (other->anti_affinity == 0) {
        continue;
      }
      for (const auto& [_, p] : other->pod_map) {
        if (!p.anti_affinity) {
          continue;
        }
        for (const auto& term : ArrayAt(*p.pod,
                                        "spec.affinity.podAntiAffinity."
                                        "requiredDuringSchedulingIgnoredDuringExecution")) {
          std::string key = term.value("topologyKey", "");
          if (!n.Label(key).empty() && n.Label(key) == other->Label(key) &&
              PodMatchesTerm(pod, term, *p.pod)) {
            return "node(s) didn't satisfy existing pods anti-affinity rules";
          }
        }
      }
    }
  }
  // PodTopologySpread (DoNotSchedule).
  for (const auto& c : q.spread) {
    if (c.value("whenUnsatisfiable", "DoNotSchedule") != "DoNotSchedule") {
      continue;
    }
    std::string key = c.value("topologyKey", "");
    if (n.Label(key).empty()) {
      return "node(s) didn't match pod topology spread constraints (missing required label)";
    }
    auto sel = api::LabelSelector::FromJson(c.value("labelSelector", json()));
    std::map<std::string, int> counts;
    for (const NodeInfo* other : all.nodes) {
      const std::string& v = other->Label(key);
      if (v.empty()) {
        continue;
      }
      int& count = counts[v];
      for (const auto& [_, p] : other->pod_map) {
        if (GetString(*p.pod, "metadata.namespace") == q.ns && IsActive(*p.pod) &&
            sel.Matches(ValueAt(*p.pod, "metadata.labels"))) {
          ++count;
        }
      }
    }
    int min = INT32_MAX;
    for (auto& [_, cnt] : counts) {
      min = std::min(min, cnt);
    }
    int self = sel.Matches(ValueAt(pod, "metadata.labels")) ? 1 : 0;
    if (counts[n.Label(key)] + self - min > c.value("maxSkew", 1)) {
      return "node(s) didn't match pod topology spread constraints";
    }
  }
  return "";
}

int64_t Score(const PodQuery& q, const NodeInfo& n, const ClusterView& all) {
  const json& node = *n.node;
  // Non-zero defaults as Kubernetes uses for scoring pods without requests.
  int64_t cpu = n.req_cpu + (q.req.cpu ? q.req.cpu : 100);
  int64_t mem = n.req_mem + (q.req.mem ? q.req.mem : 200LL * 1024 * 1024 * 1000);
  double cpu_frac = n.alloc_cpu ? std::min(1.0, double(cpu) / double(n.alloc_cpu)) : 1.0;
  double mem_frac = n.alloc_mem ? std::min(1.0, double(mem) / double(n.alloc_mem)) : 1.0;
  int64_t least = static_cast<int64_t>(((1 - cpu_frac) + (1 - mem_frac)) * 50);
  int64_t balanced = static_cast<int64_t>((1 - std::abs(cpu_frac - mem_frac)) * 100);
  int64_t score = least + balanced;
  // Spreading: fewer pods of the same controller on a node is better.
  if (n.same_owner >= 0) {
    score +=
        all.max_same_owner ? 100 * (all.max_same_owner - n.same_owner) / all.max_same_owner : 100;
  }
  // Preferred node affinity.
  for (const auto& p : q.preferred_node_terms) {
    if (MatchNodeSelectorTerm(p.value("preference", json::object()), node)) {
      score += p.value("weight", 0);
    }
  }
  // Taints with PreferNoSchedule count against a node.
  for (const auto& t : *n.taints) {
    if (t.value("effect", "") == "PreferNoSchedule" && !Tolerates(q.tolerations, t)) {
      score -= 50;
    }
  }
  // Image locality.
  const json& images = *n.images;
  if (!images.empty()) {
    for (const auto& c : ArrayAt(q.pod, "spec.containers")) {
      for (const auto& img : images) {
        for (const auto& name : img.value("names", json::array())) {
          if (name == c.value("image", "")) {
            score += 10;
          }
        }
      }
    }
  }
  // ScheduleAnyway spread constraints: fewer matching pods in the domain is better.
  for (const auto& c : q.spread) {
    if (c.value("whenUnsatisfiable", "") != "ScheduleAnyway") {
      continue;
    }
    std::string key = c.value("topologyKey", "");
    const std::string& v = n.Label(key);
    auto sel = api::LabelSelector::FromJson(c.value("labelSelector", json()));
    int count = 0;
    for (const NodeInfo* other : all.nodes) {
      if (other->Label(key) != v) {
        continue;
      }
      for (const auto& [_, p] : other->pod_map) {
        if (sel.Matches(ValueAt(*p.pod, "metadata.labels"))) {
          ++count;
        }
      }
    }
    score -= count * 10;
  }
  return score;
}

}  // namespace minik::scheduler
