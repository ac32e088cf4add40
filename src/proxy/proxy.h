#pragma once
// `minik proxy`: the node's kube-proxy in iptables mode. It watches Services
// and EndpointSlices and keeps the rules of rules.h in the kernel: changes are
// batched (at most one sync per --min-sync-period) and applied with one
// iptables-restore of the chains that changed. UDP conntrack entries that
// point at a removed endpoint are deleted, so clients move to a live one.

#include <chrono>
#include <string>
#include <vector>

namespace minik::proxy {

struct ProxyOptions {
  std::string server;    // API server URL
  std::string cert_dir;  // ca.crt, proxy.crt, proxy.key
  std::string node_name;
  std::string cluster_cidr = "10.244.0.0/16";
  std::string service_cidr = "10.96.0.0/12";
  std::vector<std::string> nodeport_addresses;  // CIDRs; empty: every local address
  std::chrono::milliseconds min_sync_period{100};
};

// Runs until SIGTERM or SIGINT; the rules stay (a restarted proxy takes them
// over, and connections keep flowing meanwhile). Returns the exit code.
int RunProxy(const ProxyOptions& opts);

// Removes every rule and chain the proxy made (`minik proxy --cleanup`,
// node clean-up). Safe to repeat.
void Cleanup();

}  // namespace minik::proxy
