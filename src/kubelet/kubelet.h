#pragma once
// `minik kubelet`: runs the pods bound to its node as real containers. It
// registers the Node (capacity and allocatable from the machine) and renews
// its Lease; for every pod it makes a sandbox (a network namespace wired by
// the CNI plugins), prepares volumes, runs init containers in order and then
// the app containers, each on an overlayfs rootfs from its image, under the
// OCI runtime and a `minik shim`; it restarts containers as the pod's
// restartPolicy says (with CrashLoopBackOff), runs probes, writes the pod's
// status back, and serves logs, exec, attach and port-forward on its HTTPS
// API for the API server to proxy.

#include <chrono>
#include <cstdint>
#include <string>

namespace minik::kubelet {

struct KubeletOptions {
  std::string server;    // API server URL
  std::string cert_dir;  // ca.crt, kubelet.crt, kubelet.key
  std::string node_name;
  std::string node_ip = "127.0.0.1";
  std::string root;  // the node's directory: kubelet/, images/, log/, run/, cni/
  std::string pod_cidr = "10.244.0.0/24";
  std::string runtime;  // runc, crun, or "" for the first installed
  std::string minik_binary;
  uint16_t port = 10250;  // the kubelet's HTTPS API
  std::string bind_address = "127.0.0.1";
  // Node-pressure eviction (see eviction.h), with the kubelet's flags and defaults.
  std::string eviction_hard;  // "" for eviction::kDefaultHard
  std::chrono::milliseconds housekeeping_interval{10000};
  std::chrono::milliseconds eviction_pressure_transition_period{300000};
};

int RunKubelet(const KubeletOptions& opts);

}  // namespace minik::kubelet

namespace minik::kubelet {

// Removes everything a kubelet made on the node, whether or not it still runs:
// every container of its runtime root, each pod's network (CNI DEL from the
// cached results, so iptables rules go too), the network namespaces, every
// mount under the node's directory, and the bridge. For `minik stop` and
// `minik delete`; safe to repeat.
void CleanupNode(const std::string& root, const std::string& node);

// The bridge interface of a node: `mk-` and the node's name (15 characters at most).
std::string BridgeName(const std::string& node_name);

}  // namespace minik::kubelet
