#pragma once
// The scheduler's cache: every node with what the pods bound to it request,
// kept up to date one event at a time (as kube-scheduler's cache is), so that a
// scheduling cycle never walks every pod of the cluster. Pods the scheduler
// has bound but the informer has not yet shown bound are "assumed" and
// counted all the same.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/json.h"

namespace minik::scheduler {

// Lookups every scheduling cycle makes: references into the object, never
// copies. The array at a dotted path, or an empty one; the value, or null.
const json& ArrayAt(const json& o, const char* path);
const json& ValueAt(const json& o, const char* path);
// Not Succeeded or Failed.
bool IsActive(const json& pod);

// The requests of a pod as the scheduler counts them: the sum over app
// containers or the largest init container, whichever is larger, plus overhead.
struct Requests {
  int64_t cpu = 0, mem = 0;  // milli-units
};
Requests PodRequests(const json& pod);

// The host ports a pod asks for: (protocol, port).
using HostPorts = std::vector<std::pair<std::string, int>>;
HostPorts PodHostPorts(const json& pod);

// A pod as counted on its node.
struct PodInfo {
  explicit PodInfo(std::shared_ptr<const json> p);
  std::shared_ptr<const json> pod;  // shared with the informer cache
  Requests req;
  HostPorts host_ports;
  std::vector<std::string> owners;  // uids of its ownerReferences
  bool anti_affinity = false;       // has required pod anti-affinity terms
};

// What the filters and scores see of one node.
struct NodeInfo {
  // Null while pods name a node the cache has not seen (yet, or any more).
  std::shared_ptr<const json> node;
  std::string name;
  // Looked up once per node change, not once per pod: into *node.
  const json* labels = nullptr;  // object
  const json* taints = nullptr;  // array
  const json* images = nullptr;  // array
  bool unschedulable = false;
  int64_t alloc_cpu = 0, alloc_mem = 0, alloc_pods = 0;  // milli-units
  int64_t req_cpu = 0, req_mem = 0, pods = 0;
  std::map<std::string, PodInfo> pod_map;  // uid -> pod
  HostPorts host_ports;
  std::map<std::string, int> owners;  // controller uid -> pods of it here
  int anti_affinity = 0;              // pods here with required anti-affinity terms
  // Pods of the scheduled pod's controller on this node (set per scheduling
  // cycle by PrepareSpread; -1 when the pod has no controller).
  int same_owner = -1;

  void SetNode(std::shared_ptr<const json> n);
  void AddPod(PodInfo p);
  void RemovePod(const std::string& uid);
  // The node's label `key`, "" when it has none.
  const std::string& Label(const std::string& key) const;
  const json& Labels() const;
};

// What a scheduling cycle sees of the whole cluster.
struct ClusterView {
  std::vector<NodeInfo*> nodes;  // the known nodes, in a stable order
  int anti_affinity_pods = 0;    // pods anywhere with required anti-affinity terms
  int max_same_owner = 0;        // set by PrepareSpread
};

// Informer and binder threads call the methods that lock; the scheduling
// thread holds mu() for a whole cycle and calls those marked "mu() held".
class Cache {
 public:
  // Informer events.
  void SetNode(std::shared_ptr<const json> node);
  void RemoveNode(const std::string& name);
  void SetPod(std::shared_ptr<const json> pod);
  void RemovePod(const json& pod);
  // A binding that failed.
  void Forget(const std::string& uid);

  std::mutex& mu() { return mu_; }
  // mu() held: a pod the scheduler bound to spec.nodeName, before the
  // informer shows it bound.
  void Assume(std::shared_ptr<const json> pod);
  // mu() held.
  bool IsAssumed(const std::string& uid) const;
  // mu() held: counted on a node, assumed or seen bound.
  bool Has(const std::string& uid) const { return pods_.count(uid) > 0; }
  // mu() held: the nodes, valid while it is.
  ClusterView& View();

 private:
  void Place(std::shared_ptr<const json> pod, const std::string& node, bool assumed);
  void Unplace(const std::string& uid);

  std::mutex mu_;
  std::map<std::string, NodeInfo> nodes_;
  struct Placed {
    std::string node;
    bool assumed = false;
  };
  std::unordered_map<std::string, Placed> pods_;  // uid -> where it is counted
  ClusterView view_;
  bool view_dirty_ = true;
  int anti_affinity_pods_ = 0;
};

}  // namespace minik::scheduler
