#include "proxy/rules.h"

#include <arpa/inet.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

namespace minik::proxy {

namespace {

constexpr const char* kServices = "MINIK-SERVICES";
constexpr const char* kNodePorts = "MINIK-NODEPORTS";
constexpr const char* kPostrouting = "MINIK-POSTROUTING";
constexpr const char* kMarkMasq = "MINIK-MARK-MASQ";
constexpr const char* kExternalServices = "MINIK-EXTERNAL-SERVICES";
constexpr const char* kForward = "MINIK-FORWARD";
constexpr const char* kFirewall = "MINIK-FIREWALL";
// The mark of packets to masquerade (kube-proxy's bit, 0x4000).
constexpr const char* kMasqMark = "0x4000/0x4000";

// "PREFIX" + the first 16 base32 characters of SHA-256(`what`): stable names
// within iptables' 28-character limit.
std::string ChainName(const std::string& prefix, const std::string& what) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // fetched once
  EVP_Digest(what.data(), what.size(), md, &n, kSha256, nullptr);
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out = prefix;
  uint64_t bits = 0;
  int have = 0;
  for (unsigned int i = 0; i < n && out.size() < prefix.size() + 16; ++i) {
    bits = (bits << 8) | md[i];
    have += 8;
    while (have >= 5 && out.size() < prefix.size() + 16) {
      out += kAlphabet[(bits >> (have - 5)) & 31];
      have -= 5;
    }
  }
  return out;
}

// The chain holding the service rules of addresses in `ip`'s /20: the
// MINIK-SERVICES chain only jumps to these by destination, so a change to one
// Service rewrites a handful of rules instead of one per Service, and a packet
// is matched against a few rules instead of all.
constexpr int kBucketBits = 20;
std::string Bucket(const std::string& ip) {
  in_addr a{};
  inet_pton(AF_INET, ip.c_str(), &a);
  uint32_t net = ntohl(a.s_addr) & (~uint32_t(0) << (32 - kBucketBits));
  char name[32];
  std::snprintf(name, sizeof(name), "MINIK-SVCS-%08X", net);
  return name;
}

std::string Comment(const std::string& text) {
  return "-m comment --comment \"" + text + "\"";
}

// The endpoints traffic may go to: ready ones, or when there are none, the
// serving ones that are terminating (so a rolling update does not drop
// connections while the last old pod drains), as kube-proxy does.
std::vector<Endpoint> Usable(const std::vector<Endpoint>& eps, const std::string& only_node) {
  std::vector<Endpoint> ready, draining;
  for (const auto& e : eps) {
    if (!only_node.empty() && e.node != only_node) {
      continue;
    }
    if (e.ready) {
      ready.push_back(e);
    } else if (e.serving && e.terminating) {
      draining.push_back(e);
    }
  }
  return ready.empty() ? draining : ready;
}

std::string Probability(size_t remaining) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.10f", 1.0 / static_cast<double>(remaining));
  return buf;
}

}  // namespace

std::vector<std::vector<std::string>> StaleUdpFlows(
    const std::vector<ServicePort>& ports, std::map<std::string, std::vector<std::string>>* known) {
  std::vector<std::vector<std::string>> out;
  std::map<std::string, std::vector<std::string>> now;
  for (const auto& sp : ports) {
    if (sp.protocol != "udp") {
      continue;
    }
    std::string key = sp.cluster_ip + ":" + std::to_string(sp.port);
    std::vector<std::string>& ips = now[key];
    for (const auto& e : sp.endpoints) {
      if (e.ready) {
        ips.push_back(e.ip);
      }
    }
    auto it = known->find(key);
    if (it == known->end()) {
      continue;  // new: no flows yet
    }
    if (it->second.empty() && !ips.empty()) {
      out.push_back({"-D", "-p", "udp", "--orig-dst", sp.cluster_ip});
    }
    for (const auto& gone : it->second) {
      if (std::find(ips.begin(), ips.end(), gone) != ips.end()) {
        continue;
      }
      out.push_back({"-D", "-p", "udp", "--orig-dst", sp.cluster_ip, "--dst-nat", gone});
      if (sp.node_port > 0) {
        out.push_back({"-D", "-p", "udp", "--orig-port-dst", std::to_string(sp.node_port),
                       "--dst-nat", gone});
      }
    }
  }
  *known = std::move(now);
  return out;
}

std::string ServicePort::Key() const {
  return ns + "/" + name + (port_name.empty() ? "" : ":" + port_name);
}

std::vector<ServicePort> ServicePorts(const std::vector<json>& services,
                                      const std::vector<json>& slices) {
  std::vector<const json*> a, b;
  for (const auto& s : services) {
    a.push_back(&s);
  }
  for (const auto& s : slices) {
    b.push_back(&s);
  }
  return ServicePortsOf(a, b);
}

std::vector<ServicePort> ServicePortsOf(const std::vector<const json*>& services,
                                        const std::vector<const json*>& slices) {
  // Slices by service: namespace/name -> slices.
  std::map<std::string, std::vector<const json*>> by_service;
  for (const json* sp : slices) {
    const json& s = *sp;
    const json* labels = Find(s, "metadata.labels");
    std::string svc = labels ? labels->value("kubernetes.io/service-name", "") : "";
    if (!svc.empty() && s.value("addressType", "IPv4") == "IPv4") {
      by_service[GetString(s, "metadata.namespace") + "/" + svc].push_back(sp);
    }
  }
  std::vector<ServicePort> out;
  for (const json* svc_ptr : services) {
    const json& svc = *svc_ptr;
    const json& spec = svc.contains("spec") ? svc["spec"] : json::object();
    std::string type = spec.value("type", "ClusterIP");
    std::string cluster_ip = spec.value("clusterIP", "");
    if (type == "ExternalName" || cluster_ip.empty() || cluster_ip == "None") {
      continue;
    }
    std::string ns = GetString(svc, "metadata.namespace"), name = GetString(svc, "metadata.name");
    std::vector<std::string> external;
    for (const auto& ip : spec.value("externalIPs", json::array())) {
      external.push_back(ip.get<std::string>());
    }
    for (const auto& ing : svc.value("status", json::object())
                               .value("loadBalancer", json::object())
                               .value("ingress", json::array())) {
      if (ing.contains("ip")) {
        external.push_back(ing["ip"].get<std::string>());
      }
    }
    for (const auto& p : spec.value("ports", json::array())) {
      ServicePort sp;
      sp.ns = ns;
      sp.name = name;
      sp.port_name = p.value("name", "");
      sp.protocol = p.value("protocol", std::string("TCP"));
      std::transform(sp.protocol.begin(), sp.protocol.end(), sp.protocol.begin(), ::tolower);
      sp.cluster_ip = cluster_ip;
      sp.port = p.value("port", 0);
      if (type == "NodePort" || type == "LoadBalancer") {
        sp.node_port = p.value("nodePort", 0);
      }
      sp.external_ips = external;
      sp.affinity = spec.value("sessionAffinity", "None") == "ClientIP";
      if (const json* t = Find(spec, "sessionAffinityConfig.clientIP.timeoutSeconds")) {
        sp.affinity_seconds = t->get<int>();
      }
      sp.external_local = spec.value("externalTrafficPolicy", "Cluster") == "Local" &&
                          (sp.node_port > 0 || !external.empty());
      sp.internal_local = spec.value("internalTrafficPolicy", "Cluster") == "Local";
      for (const json* s : by_service[ns + "/" + name]) {
        int port = -1;
        for (const auto& sp_port : s->value("ports", json::array())) {
          if (sp_port.value("name", "") == sp.port_name &&
              sp_port.value("protocol", std::string("TCP")) == p.value("protocol", "TCP")) {
            port = sp_port.value("port", 0);
          }
        }
        if (port <= 0) {
          continue;
        }
        for (const auto& e : s->value("endpoints", json::array())) {
          const json& c = e.contains("conditions") ? e["conditions"] : json::object();
          for (const auto& addr : e.value("addresses", json::array())) {
            Endpoint ep;
            ep.ip = addr.get<std::string>();
            ep.port = port;
            // An unset condition means ready, as the API documents.
            ep.ready = !c.contains("ready") || c["ready"].is_null() || c["ready"].get<bool>();
            ep.serving = !c.contains("serving") || c["serving"].is_null()
                             ? ep.ready
                             : c["serving"].get<bool>();
            ep.terminating = c.value("terminating", false);
            ep.node = e.value("nodeName", "");
            sp.endpoints.push_back(ep);
          }
        }
      }
      std::sort(sp.endpoints.begin(), sp.endpoints.end(), [](const Endpoint& a, const Endpoint& b) {
        return std::tie(a.ip, a.port) < std::tie(b.ip, b.port);
      });
      out.push_back(std::move(sp));
    }
  }
  return out;
}

Tables Render(const std::vector<ServicePort>& ports, const Config& cfg) {
  Tables t;
  Chains& nat = t.nat;
  Chains& filter = t.filter;
  nat[kServices];
  nat[kNodePorts];
  nat[kMarkMasq] = {std::string("-A ") + kMarkMasq + " -j MARK --or-mark 0x4000"};
  nat[kPostrouting] = {
      std::string("-A ") + kPostrouting + " -m mark ! --mark " + kMasqMark + " -j RETURN",
      std::string("-A ") + kPostrouting + " -j MARK --xor-mark 0x4000",
      std::string("-A ") + kPostrouting + " " + Comment("minik service traffic requiring SNAT") +
          " -j MASQUERADE --random-fully"};
  filter[kServices];
  filter[kExternalServices];
  filter[kFirewall] = {std::string("-A ") + kFirewall + " " +
                       Comment("block incoming localnet connections") +
                       " ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate "
                       "RELATED,ESTABLISHED,DNAT -j DROP"};
  filter[kForward] = {
      std::string("-A ") + kForward + " -m conntrack --ctstate INVALID -j DROP",
      std::string("-A ") + kForward + " " + Comment("minik forwarding rules") + " -m mark --mark " +
          kMasqMark + " -j ACCEPT",
      std::string("-A ") + kForward + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"};
  if (!cfg.cluster_cidr.empty()) {
    filter[kForward].push_back(std::string("-A ") + kForward + " -s " + cfg.cluster_cidr +
                               " -j ACCEPT");
    filter[kForward].push_back(std::string("-A ") + kForward + " -d " + cfg.cluster_cidr +
                               " -j ACCEPT");
  }

  for (const auto& sp : ports) {
    std::string key = sp.Key();
    std::string proto = "-p " + sp.protocol;
    std::string id = key + "/" + sp.protocol;
    std::string svc_chain = ChainName("MINIK-SVC-", id);
    std::string local_chain = ChainName("MINIK-SVL-", id);
    std::string ext_chain = ChainName("MINIK-EXT-", id);
    std::vector<Endpoint> all = Usable(sp.endpoints, "");
    std::vector<Endpoint> local = Usable(sp.endpoints, cfg.node_name);
    bool external = sp.node_port > 0 || !sp.external_ips.empty();

    // Endpoint chains, shared by the cluster-wide and the local chain.
    std::map<std::string, std::string> sep;  // ip:port -> chain
    for (const auto& e : all) {
      std::string dest = e.ip + ":" + std::to_string(e.port);
      std::string chain = ChainName("MINIK-SEP-", id + "/" + dest);
      sep[dest] = chain;
      std::vector<std::string>& rules = nat[chain];
      rules.push_back("-A " + chain + " " + Comment(key) + " -s " + e.ip + "/32 -j " + kMarkMasq);
      rules.push_back(
          "-A " + chain + " " + Comment(key) + " " + proto +
          (sp.affinity ? " -m recent --name " + chain + " --mask 255.255.255.255 --rsource --set"
                       : "") +
          " -m " + sp.protocol + " -j DNAT --to-destination " + dest);
    }
    for (const auto& e : local) {
      std::string dest = e.ip + ":" + std::to_string(e.port);
      if (!sep.count(dest)) {  // a draining local endpoint while others are ready
        std::string chain = ChainName("MINIK-SEP-", id + "/" + dest);
        sep[dest] = chain;
        nat[chain] = {"-A " + chain + " " + Comment(key) + " -s " + e.ip + "/32 -j " + kMarkMasq,
                      "-A " + chain + " " + Comment(key) + " " + proto + " -m " + sp.protocol +
                          " -j DNAT --to-destination " + dest};
      }
    }
    // A chain that picks one of `eps`: affinity first, then equal chances.
    auto balance = [&](const std::string& chain, const std::vector<Endpoint>& eps,
                       bool masq_outside) {
      std::vector<std::string>& rules = nat[chain];
      if (masq_outside && !cfg.cluster_cidr.empty()) {
        rules.push_back("-A " + chain + " " + Comment(key + " cluster IP") + " " + proto + " -m " +
                        sp.protocol + " ! -s " + cfg.cluster_cidr + " -d " + sp.cluster_ip +
                        "/32 --dport " + std::to_string(sp.port) + " -j " + kMarkMasq);
      }
      if (sp.affinity) {
        for (const auto& e : eps) {
          std::string s = sep[e.ip + ":" + std::to_string(e.port)];
          rules.push_back("-A " + chain + " " +
                          Comment(key + " -> " + e.ip + ":" + std::to_string(e.port)) +
                          " -m recent --name " + s + " --rcheck --seconds " +
                          std::to_string(sp.affinity_seconds) +
                          " --reap --mask 255.255.255.255 --rsource -j " + s);
        }
      }
      for (size_t i = 0; i < eps.size(); ++i) {
        std::string dest = eps[i].ip + ":" + std::to_string(eps[i].port);
        std::string rule = "-A " + chain + " " + Comment(key + " -> " + dest);
        if (i + 1 < eps.size()) {
          rule += " -m statistic --mode random --probability " + Probability(eps.size() - i);
        }
        rules.push_back(rule + " -j " + sep[dest]);
      }
    };
    const std::vector<Endpoint>& internal_eps = sp.internal_local ? local : all;
    std::string internal_chain = sp.internal_local ? local_chain : svc_chain;
    if (!all.empty()) {
      balance(svc_chain, all, true);
    }
    if (!local.empty() && (sp.internal_local || sp.external_local)) {
      balance(local_chain, local, false);
    }
    std::string match = proto + " -m " + sp.protocol;
    if (!internal_eps.empty()) {
      std::string bucket = Bucket(sp.cluster_ip);
      nat[bucket].push_back("-A " + bucket + " " + Comment(key + " cluster IP") + " " + match +
                            " -d " + sp.cluster_ip + "/32 --dport " + std::to_string(sp.port) +
                            " -j " + internal_chain);
    } else {
      filter[kServices].push_back("-A " + std::string(kServices) + " " +
                                  Comment(key + " has no endpoints") + " " + match + " -d " +
                                  sp.cluster_ip + "/32 --dport " + std::to_string(sp.port) +
                                  " -j REJECT --reject-with icmp-port-unreachable");
    }
    if (!external) {
      continue;
    }
    bool reachable = sp.external_local ? !local.empty() : !all.empty();
    if (!all.empty()) {
      std::vector<std::string>& rules = nat[ext_chain];
      if (sp.external_local) {
        // Pods and the node itself may use any endpoint; from outside, only the
        // node's own, with the client's address kept.
        if (!cfg.cluster_cidr.empty()) {
          rules.push_back("-A " + ext_chain + " " + Comment("pod traffic for " + key) + " -s " +
                          cfg.cluster_cidr + " -j " + svc_chain);
        }
        rules.push_back("-A " + ext_chain + " " + Comment("masquerade LOCAL traffic for " + key) +
                        " -m addrtype --src-type LOCAL -j " + kMarkMasq);
        rules.push_back("-A " + ext_chain + " " + Comment("route LOCAL traffic for " + key) +
                        " -m addrtype --src-type LOCAL -j " + svc_chain);
        if (!local.empty()) {
          rules.push_back("-A " + ext_chain + " -j " + local_chain);
        }
      } else {
        rules.push_back("-A " + ext_chain + " " + Comment("masquerade traffic for " + key) +
                        " -j " + kMarkMasq);
        rules.push_back("-A " + ext_chain + " -j " + svc_chain);
      }
    }
    for (const auto& ip : sp.external_ips) {
      std::string rule = Comment(key + " external IP") + " " + match + " -d " + ip +
                         "/32 --dport " + std::to_string(sp.port);
      if (!all.empty()) {
        std::string bucket = Bucket(ip);
        nat[bucket].push_back("-A " + bucket + " " + rule + " -j " + ext_chain);
      }
      if (!reachable) {
        filter[kExternalServices].push_back("-A " + std::string(kExternalServices) + " " + rule +
                                            " -j REJECT --reject-with icmp-port-unreachable");
      }
    }
    if (sp.node_port > 0) {
      std::string port = std::to_string(sp.node_port);
      if (!all.empty()) {
        nat[kNodePorts].push_back("-A " + std::string(kNodePorts) + " " + Comment(key) + " " +
                                  match + " --dport " + port + " -j " + ext_chain);
      }
      if (!reachable) {
        filter[kExternalServices].push_back(
            "-A " + std::string(kExternalServices) + " " + Comment(key + " has no endpoints") +
            " -m addrtype --dst-type LOCAL " + match + " --dport " + port +
            " -j REJECT --reject-with icmp-port-unreachable");
      }
    }
  }
  if (!cfg.service_cidr.empty()) {
    filter[kServices].push_back(
        "-A " + std::string(kServices) + " " + Comment("no service at this address and port") +
        " -d " + cfg.service_cidr + " -j REJECT --reject-with icmp-port-unreachable");
  }
  // Into the buckets by destination (in address order), then node ports.
  for (const auto& [chain, rules] : nat) {
    if (chain.rfind("MINIK-SVCS-", 0) == 0) {
      uint32_t net = static_cast<uint32_t>(std::stoul(chain.substr(11), nullptr, 16));
      in_addr n{htonl(net)};
      char buf[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &n, buf, sizeof(buf));
      nat[kServices].push_back("-A " + std::string(kServices) + " -d " + buf + "/" +
                               std::to_string(kBucketBits) + " -j " + chain);
    }
  }
  // Node ports last: they match every local address (or those asked for).
  std::string nodeports = "-A " + std::string(kServices) + " " +
                          Comment(
                              "minik service nodeports; NOTE: this must be the last rule in "
                              "this chain") +
                          " -m addrtype --dst-type LOCAL";
  if (cfg.nodeport_cidrs.empty()) {
    nat[kServices].push_back(nodeports + " -j " + kNodePorts);
  }
  for (const auto& cidr : cfg.nodeport_cidrs) {
    nat[kServices].push_back(nodeports + " -d " + cidr + " -j " + kNodePorts);
  }
  return t;
}

namespace {

void TableInput(std::ostringstream& out, const char* table, const Chains& applied,
                const Chains& want) {
  std::vector<std::string> changed, gone;
  for (const auto& [chain, rules] : want) {
    auto it = applied.find(chain);
    if (it == applied.end() || it->second != rules) {
      changed.push_back(chain);
    }
  }
  for (const auto& [chain, rules] : applied) {
    if (!want.count(chain)) {
      gone.push_back(chain);
    }
  }
  if (changed.empty() && gone.empty()) {
    return;
  }
  out << "*" << table << "\n";
  for (const auto& c : changed) {
    out << ":" << c << " - [0:0]\n";
  }
  for (const auto& c : gone) {
    out << ":" << c << " - [0:0]\n";
  }
  for (const auto& c : changed) {
    for (const auto& r : want.at(c)) {
      out << r << "\n";
    }
  }
  for (const auto& c : gone) {
    out << "-X " << c << "\n";
  }
  out << "COMMIT\n";
}

}  // namespace

std::string RestoreInput(const Tables& applied, const Tables& want) {
  std::ostringstream out;
  TableInput(out, "filter", applied.filter, want.filter);
  TableInput(out, "nat", applied.nat, want.nat);
  return out.str();
}

bool IsOwnedChain(const std::string& name) {
  static const std::set<std::string> kFixed = {
      kServices, kNodePorts, kPostrouting, kMarkMasq, kExternalServices, kForward, kFirewall};
  for (const char* prefix :
       {"MINIK-SVC-", "MINIK-SVL-", "MINIK-EXT-", "MINIK-SEP-", "MINIK-SVCS-"}) {
    if (name.rfind(prefix, 0) == 0) {
      return true;
    }
  }
  return kFixed.count(name) > 0;
}

std::vector<std::string> OwnedChains(const std::string& iptables_save) {
  std::vector<std::string> out;
  std::istringstream in(iptables_save);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > 1 && line[0] == ':') {
      std::string name = line.substr(1, line.find(' ') - 1);
      if (IsOwnedChain(name)) {
        out.push_back(name);
      }
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::vector<std::string>>> Jumps() {
  auto jump = [](const char* chain, const char* target, const char* comment,
                 std::vector<std::string> extra = {}) {
    std::vector<std::string> r = {chain, "-m", "comment", "--comment", comment};
    r.insert(r.end(), extra.begin(), extra.end());
    r.push_back("-j");
    r.push_back(target);
    return r;
  };
  return {
      {"nat", jump("PREROUTING", kServices, "minik service portals")},
      {"nat", jump("OUTPUT", kServices, "minik service portals")},
      {"nat", jump("POSTROUTING", kPostrouting, "minik postrouting rules")},
      {"filter", jump("INPUT", kExternalServices, "minik externally-visible service portals",
                      {"-m", "conntrack", "--ctstate", "NEW"})},
      {"filter", jump("INPUT", kFirewall, "minik firewall")},
      {"filter", jump("OUTPUT", kFirewall, "minik firewall")},
      {"filter", jump("FORWARD", kServices, "minik service portals",
                      {"-m", "conntrack", "--ctstate", "NEW"})},
      {"filter", jump("FORWARD", kExternalServices, "minik externally-visible service portals",
                      {"-m", "conntrack", "--ctstate", "NEW"})},
      {"filter", jump("FORWARD", kForward, "minik forwarding rules")},
      {"filter",
       jump("OUTPUT", kServices, "minik service portals", {"-m", "conntrack", "--ctstate", "NEW"})},
  };
}

}  // namespace minik::proxy
