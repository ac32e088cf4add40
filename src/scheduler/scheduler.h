#pragma once
// `minik scheduler`: picks a node for every pending pod and binds it there.
//
// It keeps its own cache of nodes and of what the pods on each node request
// (filled by informers, updated as soon as it binds a pod), runs the filters
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

namespace minik::scheduler {

// What the filters and scores see of one node.
struct NodeInfo {
  json node;
  int64_t alloc_cpu = 0, alloc_mem = 0, alloc_pods = 0;  // milli-units
  int64_t req_cpu = 0, req_mem = 0, pods = 0;
  // Pods on the node (for affinity and spreading), shared with the informer cache.
  std::vector<std::shared_ptr<const json>> pod_list;
  std::vector<std::pair<std::string, int>> host_ports;  // protocol, port
  // Of pod_list, kept as pods are counted (see CountPod), so that a scheduling
  // cycle does not walk every pod of the cluster once per node: the pods with
  // required anti-affinity terms, and the number of pods per controller uid.
  std::vector<std::shared_ptr<const json>> anti_affinity;
  std::map<std::string, int> owners;
  // Pods of the scheduled pod's controller on this node (set per scheduling
  // cycle by PrepareSpread; -1 when not prepared).
  int same_owner = -1;
};

// Counts, once per pod, the pods of its controller on every node, so that
// scoring does not walk every pod once per node.
void PrepareSpread(const json& pod, std::vector<NodeInfo>& nodes);
// Adds a pod bound to the node to what `ni` counts.
void CountPod(NodeInfo& ni, const std::shared_ptr<const json>& pod);

// The requests of a pod as the scheduler counts them: the sum over app
// containers or the largest init container, whichever is larger, plus overhead.
struct Requests {
  int64_t cpu = 0, mem = 0;
};
Requests PodRequests(const json& pod);

// Returns "" when `pod` fits `node`, else the reason (as Kubernetes words it,
// e.g. "Insufficient cpu", "node(s) didn't match Pod's node affinity/selector").
// `all` is every node, for topology constraints.
std::string Filter(const json& pod, const NodeInfo& node, const std::vector<NodeInfo>& all,
                   const std::vector<json>& pvs, const std::vector<json>& pvcs);
// Higher is better.
int64_t Score(const json& pod, const NodeInfo& node, const std::vector<NodeInfo>& all);

struct SchedulerOptions {
  std::string server;
  std::string cert_dir;  // ca.crt, scheduler.crt, scheduler.key
};

int RunScheduler(const SchedulerOptions& opts);

}  // namespace minik::scheduler
