#include "scheduler/cache.h"

#include <algorithm>

#include "api/quantity.h"

namespace minik::scheduler {
namespace {

const json kEmptyObject = json::object();
const json kEmptyArray = json::array();
const std::string kEmptyString;

}  // namespace

const json& ArrayAt(const json& o, const char* path) {
  const json* v = Find(o, path);
  return v && v->is_array() ? *v : kEmptyArray;
}

const json& ValueAt(const json& o, const char* path) {
  static const json none;
  const json* v = Find(o, path);
  return v ? *v : none;
}

bool IsActive(const json& pod) {
  std::string phase = GetString(pod, "status.phase");
  return phase != "Succeeded" && phase != "Failed";
}

Requests PodRequests(const json& pod) {
  Requests r;
  for (const auto& c : ArrayAt(pod, "spec.containers")) {
    r.cpu += api::QuantityMilli(ValueAt(c, "resources.requests.cpu"));
    r.mem += api::QuantityMilli(ValueAt(c, "resources.requests.memory"));
  }
  for (const auto& c : ArrayAt(pod, "spec.initContainers")) {
    r.cpu = std::max(r.cpu, api::QuantityMilli(ValueAt(c, "resources.requests.cpu")));
    r.mem = std::max(r.mem, api::QuantityMilli(ValueAt(c, "resources.requests.memory")));
  }
  r.cpu += api::QuantityMilli(ValueAt(pod, "spec.overhead.cpu"));
  r.mem += api::QuantityMilli(ValueAt(pod, "spec.overhead.memory"));
  return r;
}

HostPorts PodHostPorts(const json& pod) {
  HostPorts out;
  for (const auto& c : ArrayAt(pod, "spec.containers")) {
    for (const auto& port : ArrayAt(c, "ports")) {
      const json& hp = ValueAt(port, "hostPort");
      if (hp.is_number_integer() && hp.get<int>() != 0) {
        out.emplace_back(port.value("protocol", "TCP"), hp.get<int>());
      }
    }
  }
  return out;
}

PodInfo::PodInfo(std::shared_ptr<const json> p) : pod(std::move(p)) {
  req = PodRequests(*pod);
  host_ports = PodHostPorts(*pod);
  for (const auto& ref : ArrayAt(*pod, "metadata.ownerReferences")) {
    std::string uid = ref.value("uid", "");
    if (!uid.empty()) {
      owners.push_back(std::move(uid));
    }
  }
  anti_affinity =
      !ArrayAt(*pod, "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution")
           .empty();
}

void NodeInfo::SetNode(std::shared_ptr<const json> n) {
  node = std::move(n);
  alloc_cpu = alloc_mem = alloc_pods = 0;
  labels = &kEmptyObject;
  taints = images = &kEmptyArray;
  unschedulable = false;
  if (!node) {
    return;
  }
  name = GetString(*node, "metadata.name");
  if (const json* l = Find(*node, "metadata.labels"); l && l->is_object()) {
    labels = l;
  }
  taints = &ArrayAt(*node, "spec.taints");
  images = &ArrayAt(*node, "status.images");
  const json* u = Find(*node, "spec.unschedulable");
  unschedulable = u && *u == true;
  if (const json* alloc = Find(*node, "status.allocatable"); alloc && alloc->is_object()) {
    alloc_cpu = api::QuantityMilli(alloc->value("cpu", json()));
    alloc_mem = api::QuantityMilli(alloc->value("memory", json()));
    alloc_pods = api::QuantityMilli(alloc->value("pods", json(110)));
  }
}

void NodeInfo::AddPod(PodInfo p) {
  req_cpu += p.req.cpu;
  req_mem += p.req.mem;
  ++pods;
  host_ports.insert(host_ports.end(), p.host_ports.begin(), p.host_ports.end());
  for (const auto& o : p.owners) {
    ++owners[o];
  }
  anti_affinity += p.anti_affinity;
  std::string uid = GetString(*p.pod, "metadata.uid");
  pod_map.insert_or_assign(std::move(uid), std::move(p));
}

void NodeInfo::RemovePod(const std::string& uid) {
  auto it = pod_map.find(uid);
  if (it == pod_map.end()) {
    return;
  }
  const PodInfo& p = it->second;
  req_cpu -= p.req.cpu;
  req_mem -= p.req.mem;
  --pods;
  for (const auto& hp : p.host_ports) {
    if (auto h = std::find(host_ports.begin(), host_ports.end(), hp); h != host_ports.end()) {
      host_ports.erase(h);
    }
  }
  for (const auto& o : p.owners) {
    if (auto c = owners.find(o); c != owners.end() && --c->second <= 0) {
      owners.erase(c);
    }
  }
  anti_affinity -= p.anti_affinity;
  pod_map.erase(it);
}

const json& NodeInfo::Labels() const {
  return labels ? *labels : kEmptyObject;
}

const std::string& NodeInfo::Label(const std::string& key) const {
  const json& labels = Labels();
  auto it = labels.find(key);
  return it != labels.end() && it->is_string() ? it->get_ref<const std::string&>() : kEmptyString;
}

void Cache::SetNode(std::shared_ptr<const json> node) {
  std::lock_guard lock(mu_);
  std::string name = GetString(*node, "metadata.name");
  NodeInfo& ni = nodes_[name];
  if (!ni.node) {
    view_dirty_ = true;
  }
  ni.name = name;
  ni.SetNode(std::move(node));
}

void Cache::RemoveNode(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(name);
  if (it == nodes_.end()) {
    return;
  }
  view_dirty_ = true;
  if (it->second.pod_map.empty()) {
    nodes_.erase(it);
  } else {
    it->second.SetNode(nullptr);  // its pods are still counted until they go
  }
}

void Cache::Place(std::shared_ptr<const json> pod, const std::string& node, bool assumed) {
  std::string uid = GetString(*pod, "metadata.uid");
  NodeInfo& ni = nodes_[node];
  if (ni.name.empty()) {
    ni.name = node;
  }
  PodInfo info(std::move(pod));
  anti_affinity_pods_ += info.anti_affinity;
  ni.AddPod(std::move(info));
  pods_[uid] = Placed{node, assumed};
}

void Cache::Unplace(const std::string& uid) {
  auto it = pods_.find(uid);
  if (it == pods_.end()) {
    return;
  }
  auto n = nodes_.find(it->second.node);
  if (n != nodes_.end()) {
    auto p = n->second.pod_map.find(uid);
    if (p != n->second.pod_map.end()) {
      anti_affinity_pods_ -= p->second.anti_affinity;
    }
    n->second.RemovePod(uid);
    if (!n->second.node && n->second.pod_map.empty()) {
      nodes_.erase(n);
    }
  }
  pods_.erase(it);
}

void Cache::SetPod(std::shared_ptr<const json> pod) {
  std::lock_guard lock(mu_);
  std::string uid = GetString(*pod, "metadata.uid");
  std::string node = GetString(*pod, "spec.nodeName");
  auto it = pods_.find(uid);
  if (it != pods_.end() && it->second.assumed && node.empty() && IsActive(*pod)) {
    return;  // bound by us; the informer has not caught up
  }
  Unplace(uid);
  // A terminating pod still holds its resources until it is gone; a
  // finished one does not.
  if (!node.empty() && IsActive(*pod)) {
    Place(std::move(pod), node, false);
  }
}

void Cache::RemovePod(const json& pod) {
  std::lock_guard lock(mu_);
  Unplace(GetString(pod, "metadata.uid"));
}

void Cache::Assume(std::shared_ptr<const json> pod) {
  std::string uid = GetString(*pod, "metadata.uid");
  std::string node = GetString(*pod, "spec.nodeName");
  Unplace(uid);
  Place(std::move(pod), node, true);
}

void Cache::Forget(const std::string& uid) {
  std::lock_guard lock(mu_);
  auto it = pods_.find(uid);
  if (it != pods_.end() && it->second.assumed) {
    Unplace(uid);
  }
}

bool Cache::IsAssumed(const std::string& uid) const {
  auto it = pods_.find(uid);
  return it != pods_.end() && it->second.assumed;
}

ClusterView& Cache::View() {
  if (view_dirty_) {
    view_.nodes.clear();
    for (auto& [_, ni] : nodes_) {
      if (ni.node) {
        view_.nodes.push_back(&ni);
      }
    }
    view_dirty_ = false;
  }
  view_.anti_affinity_pods = anti_affinity_pods_;
  return view_;
}

}  // namespace minik::scheduler
