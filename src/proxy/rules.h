#pragma once
// The proxy's rules: Services and EndpointSlices in, iptables chains out, as
// kube-proxy's iptables mode lays them out, under minik's own chain names.
//
//   nat    PREROUTING, OUTPUT -> MINIK-SERVICES: per Service port,
//            ClusterIP (and external / load-balancer IPs) -> MINIK-SVC-<hash>
//            (or MINIK-SVL-<hash>, local endpoints only, for
//            internalTrafficPolicy: Local); node addresses -> MINIK-NODEPORTS
//          MINIK-NODEPORTS: node port -> MINIK-EXT-<hash>
//          MINIK-EXT-<hash>: externalTrafficPolicy (Cluster: masquerade and
//            any endpoint; Local: the node's own endpoints, source kept)
//          MINIK-SVC / SVL-<hash>: ClientIP affinity, then an endpoint chosen
//            with equal probability -> MINIK-SEP-<hash>: DNAT to it
//          POSTROUTING -> MINIK-POSTROUTING: masquerades marked packets
//   filter INPUT, FORWARD, OUTPUT: a Service port without ready endpoints is
//            rejected at once (MINIK-SERVICES, MINIK-EXTERNAL-SERVICES);
//            MINIK-FORWARD accepts the pod network's forwarded traffic;
//            MINIK-FIREWALL drops packets for 127.0.0.0/8 that come from
//            elsewhere (node ports on 127.0.0.1 need route_localnet).
//
// Everything here is pure, so it is tested without touching the kernel.

#include <map>
#include <string>
#include <vector>

#include "common/json.h"

namespace minik::proxy {

struct Endpoint {
  std::string ip;
  int port = 0;
  bool ready = false, serving = false, terminating = false;
  std::string node;
};

// One port of one Service, with the endpoints of that port.
struct ServicePort {
  std::string ns, name, port_name;
  std::string protocol = "tcp";  // tcp, udp or sctp
  std::string cluster_ip;
  int port = 0;
  int node_port = 0;
  std::vector<std::string> external_ips;  // spec.externalIPs and status.loadBalancer
  bool affinity = false;                  // sessionAffinity: ClientIP
  int affinity_seconds = 10800;
  bool external_local = false;  // externalTrafficPolicy: Local
  bool internal_local = false;  // internalTrafficPolicy: Local
  std::vector<Endpoint> endpoints;
  // "ns/name:port" (":port" omitted for an unnamed port), as kube-proxy names it.
  std::string Key() const;
};

// The Service ports to program from the API objects: headless Services and
// ExternalName ones have none; the endpoints come from the Service's slices
// (label kubernetes.io/service-name), matched to a port by name.
std::vector<ServicePort> ServicePorts(const std::vector<json>& services,
                                      const std::vector<json>& slices);
// The same over objects held elsewhere (an informer's cache), without copies.
std::vector<ServicePort> ServicePortsOf(const std::vector<const json*>& services,
                                        const std::vector<const json*>& slices);

struct Config {
  std::string node_name;
  std::string cluster_cidr;  // pod addresses of the cluster: their traffic needs no masquerade
  // Service addresses: what no rule sent to an endpoint is refused, never
  // routed out of the node.
  std::string service_cidr;
  // Where node ports answer: these CIDRs of the node's addresses, or every
  // local address when empty (kube-proxy's --nodeport-addresses).
  std::vector<std::string> nodeport_cidrs;
};

// Chain -> its rules, each rule a line of iptables-restore ("-A CHAIN ...").
using Chains = std::map<std::string, std::vector<std::string>>;
struct Tables {
  Chains nat, filter;
};

Tables Render(const std::vector<ServicePort>& ports, const Config& cfg);

// UDP has no connection to break: a client keeps sending to a removed
// endpoint through its conntrack entry, or into nothing when the entry was
// made while the Service had no endpoint. The entries to delete after a
// change, as `conntrack` argument lists; `known` (cluster IP:port -> ready
// endpoint IPs of UDP ports) is updated to the new state.
std::vector<std::vector<std::string>> StaleUdpFlows(
    const std::vector<ServicePort>& ports, std::map<std::string, std::vector<std::string>>* known);

// iptables-restore --noflush input that turns `applied` into `want`: only
// chains whose rules changed are declared (which flushes them) and written,
// chains no longer wanted are flushed and deleted. Empty when nothing changed.
std::string RestoreInput(const Tables& applied, const Tables& want);

// The chains of a table that the proxy owns (by name), as listed by
// iptables-save: what a first sync or a cleanup must take over or remove.
std::vector<std::string> OwnedChains(const std::string& iptables_save);
bool IsOwnedChain(const std::string& name);

// The jumps from the built-in chains into the proxy's, as iptables arguments
// after -t TABLE -I/-C/-D: {table, {chain, rule...}}.
std::vector<std::pair<std::string, std::vector<std::string>>> Jumps();

}  // namespace minik::proxy
