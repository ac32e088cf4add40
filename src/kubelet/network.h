#pragma once
// The pod network: a network namespace per pod (a bind-mounted nsfs file),
// set up by the standard CNI plugins (`bridge` with `host-local` IPAM, then
// `portmap` for hostPorts, and `loopback`), called as the CNI spec says:
// the plugin binary with CNI_* environment variables and its configuration
// on stdin. The result of ADD is kept so DEL gets it back.

#include <string>

#include "common/json.h"

namespace minik::kubelet {

// Creates a new network namespace bound at `path`. Throws minik::Error.
void CreateNetns(const std::string& path);
// Unmounts and removes it (nothing happens when it does not exist).
void DeleteNetns(const std::string& path);

struct CniConfig {
  std::string plugin_dir = "/usr/lib/cni";
  std::string bridge = "minik0";
  std::string subnet;     // the node's pod CIDR, e.g. 10.244.0.0/24
  std::string state_dir;  // host-local IPAM data and cached results
};

struct NetworkStatus {
  std::string ip;
  std::string gateway;
};

class PodNetwork {
 public:
  explicit PodNetwork(CniConfig cfg) : cfg_(std::move(cfg)) {}
  // Connects the namespace: eth0 on the bridge with an IP from the pod CIDR,
  // lo up, hostPort mappings (`[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]`).
  NetworkStatus Add(const std::string& pod_uid, const std::string& netns, const std::string& pod_ns,
                    const std::string& pod_name, const json& port_mappings);
  // Disconnects it; safe to repeat, and after the namespace is gone.
  void Del(const std::string& pod_uid, const std::string& netns, const std::string& pod_ns,
           const std::string& pod_name);
  // Masquerades traffic from the pod CIDR that leaves it: one iptables chain
  // for the node (MINIK-MASQ-<bridge>, jumped to from nat POSTROUTING) rather
  // than the bridge plugin's chain per pod, which would serialise every pod
  // start on the iptables lock. Idempotent.
  void EnsureMasquerade();
  // Removes that chain and its jump (node cleanup); safe to repeat.
  static void RemoveMasquerade(const std::string& bridge);

 private:
  json ConfList() const;
  json Invoke(const json& plugin, const std::string& command, const std::string& id,
              const std::string& netns, const std::string& ifname, const std::string& args,
              const json& prev);
  CniConfig cfg_;
};

}  // namespace minik::kubelet
