#pragma once
// `minik hollow-nodes`: simulated nodes, as kwok provides them. Each registers
// a Node with capacity, keeps its Lease fresh, and plays a kubelet for the
// pods bound to it: Pending -> Running with a pod IP from the node's pod CIDR
// and Ready conditions; deleted pods go at once. Pods that are not restarted
// (restartPolicy OnFailure or Never) finish after `run-seconds` with the exit
// code in the annotation `hollow.minik.dev/exit-code` (default 0).

#include <string>

namespace minik::node {

struct HollowOptions {
  std::string server;
  std::string cert_dir;  // ca.crt, hollow-nodes.crt, hollow-nodes.key
  int count = 1;
  std::string name_prefix = "hollow-node-";
  int first_index = 0;  // names and pod CIDRs start here
  std::string cpu = "4";
  std::string memory = "16Gi";
  std::string pods = "110";
  double run_seconds = 1.0;
  int lease_seconds = 10;  // renew interval
};

int RunHollowNodes(const HollowOptions& opts);

}  // namespace minik::node
