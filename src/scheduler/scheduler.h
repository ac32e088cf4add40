#pragma once
// `minik scheduler`: picks a node for every pending pod and binds it there.
//
// It keeps its own cache of nodes and of what the pods on each node request
// (cache.h: updated per informer event and as soon as it binds a pod), runs
// the filters
// (resources, nodeSelector and node affinity, taints and tolerations, host
// ports, unschedulable nodes, pod affinity and anti-affinity, topology spread,
// local volumes) and the scores (least allocated, balanced allocation,
// topology spread, preferred affinities, image locality), and binds through
// `pods/binding`. A pod that fits nowhere gets `PodScheduled=False` with the
// reasons per filter and a FailedScheduling event, and is tried again when the
// cluster changes.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/json.h"
#include "scheduler/cache.h"

namespace minik::scheduler {

// What the filters and scores look up in the pod being scheduled: found once
// per scheduling cycle rather than once per node. Refers into `pod`.
struct PodQuery {
  explicit PodQuery(const json& pod);
  const json& pod;
  std::string ns;
  Requests req;
  HostPorts host_ports;
  const json& tolerations;           // array
  const json& node_selector;         // object, or null
  const json& required_node_terms;   // nodeSelectorTerms, or null
  const json& preferred_node_terms;  // array
  const json& pod_affinity;          // required terms (array)
  const json& pod_anti_affinity;     // required terms (array)
  const json& spread;                // topologySpreadConstraints (array)
  std::string owner;                 // the controller's uid
  // The PersistentVolumes its claims are bound to (for their node affinity).
  std::vector<std::shared_ptr<const json>> volumes;
};

// Sets every node's same_owner and the view's max_same_owner for the pod's
// controller, once per cycle, so that scoring does not count per node.
void PrepareSpread(const PodQuery& q, ClusterView& all);

// Returns "" when the pod fits the node, else the reason (as Kubernetes words
// it, e.g. "Insufficient cpu", "node(s) didn't match Pod's node
// affinity/selector"). `all` is every node, for topology constraints.
std::string Filter(const PodQuery& q, const NodeInfo& node, const ClusterView& all);
// Higher is better.
int64_t Score(const PodQuery& q, const NodeInfo& node, const ClusterView& all);

struct SchedulerOptions {
  std::string server;
  std::string cert_dir;  // ca.crt, scheduler.crt, scheduler.key
};

int RunScheduler(const SchedulerOptions& opts);

}  // namespace minik::scheduler
