#pragma once
// `minik node-agent`: PID 1 of a node. It writes the node's certificates,
// starts the components in dependency order, restarts any that die (with
// backoff), forwards termination to them, and reports their health in
// `<node-dir>/status.json` for `minik status`.

#include <cstdint>
#include <string>
#include <vector>

namespace minik::node {

struct AgentOptions {
  std::string node_dir;  // certs/, data/, logs/, status.json
  uint16_t apiserver_port = 8443;
  std::string bind_address = "127.0.0.1";
  std::string advertise_address = "127.0.0.1";
  std::string store = "sqlite";
  int hollow_nodes = 0;  // simulated nodes to run beside the control plane
  std::string node_name = "minik";
  bool kubelet = true;  // run pods as real containers on this node
  uint16_t kubelet_port = 10250;
  // "COMPONENT.FLAG=VALUE": `--FLAG=VALUE` added to that component's command line.
  std::vector<std::string> extra_config;
};

// Runs until SIGTERM or SIGINT; returns the process exit code.
int RunAgent(const AgentOptions& opts);

// Writes the API server's serving certificate into `cert_dir` (which holds
// ca.crt and ca.key) unless a valid one is there.
void EnsureServingCert(const std::string& cert_dir, const std::string& advertise_address);
// The kubelet's serving certificate (for its HTTPS API) in `cert_dir`.
void EnsureKubeletServingCert(const std::string& cert_dir, const std::string& node_name,
                              const std::string& address);

}  // namespace minik::node
