#include "proxy/rules.h"

#include <unistd.h>

#include <catch2/catch.hpp>

#include "common/exec.h"

using namespace minik;
using namespace minik::proxy;

namespace {

json Service(const std::string& name, const std::string& ip, json spec_extra = json::object()) {
  json spec = {{"clusterIP", ip},
               {"ports", {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}}}}};
  spec.update(spec_extra);
  return {{"metadata", {{"namespace", "default"}, {"name", name}}}, {"spec", spec}};
}

json Slice(const std::string& svc, std::vector<std::tuple<std::string, bool, std::string>> eps,
           int port = 8080) {
  json endpoints = json::array();
  for (const auto& [ip, ready, node] : eps) {
    endpoints.push_back(
        {{"addresses", {ip}}, {"conditions", {{"ready", ready}}}, {"nodeName", node}});
  }
  return {{"metadata",
           {{"namespace", "default"},
            {"name", svc + "-abc"},
            {"labels", {{"kubernetes.io/service-name", svc}}}}},
          {"addressType", "IPv4"},
          {"ports", {{{"name", "http"}, {"port", port}, {"protocol", "TCP"}}}},
          {"endpoints", endpoints}};
}

const Config kCfg{"node-a", "10.244.0.0/16", "10.96.0.0/12", {}};

std::string Join(const std::vector<std::string>& rules) {
  std::string out;
  for (const auto& r : rules) {
    out += r + "\n";
  }
  return out;
}

std::string AllRules(const Chains& chains) {
  std::string out;
  for (const auto& [_, rules] : chains) {
    out += Join(rules);
  }
  return out;
}

std::string ChainStarting(const Chains& chains, const std::string& prefix) {
  for (const auto& [name, _] : chains) {
    if (name.rfind(prefix, 0) == 0) {
      return name;
    }
  }
  return "";
}

}  // namespace

TEST_CASE("service ports come from services and their slices") {
  std::vector<json> services = {
      Service("web", "10.96.0.20"),
      Service("headless", "None"),
      {{"metadata", {{"namespace", "default"}, {"name", "ext"}}},
       {"spec", {{"type", "ExternalName"}, {"externalName", "example.com"}}}},
      Service("np", "10.96.0.21",
              {{"type", "NodePort"},
               {"ports", {{{"port", 53}, {"protocol", "UDP"}, {"nodePort", 30053}}}}}),
  };
  json web_slice = Slice("web", {{"10.244.0.5", true, "node-a"}});
  web_slice["endpoints"].push_back({{"addresses", {"10.244.0.6"}}});  // no conditions: ready
  std::vector<json> slices = {web_slice};
  auto ports = ServicePorts(services, slices);
  REQUIRE(ports.size() == 2);
  CHECK(ports[0].Key() == "default/web:http");
  REQUIRE(ports[0].endpoints.size() == 2);
  CHECK(ports[0].endpoints[0].port == 8080);
  CHECK(ports[0].endpoints[1].ready);
  CHECK(ports[1].Key() == "default/np");
  CHECK(ports[1].protocol == "udp");
  CHECK(ports[1].node_port == 30053);
  CHECK(ports[1].endpoints.empty());
}

TEST_CASE("a cluster IP balances over the ready endpoints with equal chances") {
  auto ports = ServicePorts({Service("web", "10.96.0.20")},
                            {Slice("web", {{"10.244.0.5", true, "node-a"},
                                           {"10.244.0.6", true, "node-b"},
                                           {"10.244.0.7", true, "node-a"},
                                           {"10.244.0.8", false, "node-a"}})});
  Tables t = Render(ports, kCfg);
  std::string svc = ChainStarting(t.nat, "MINIK-SVC-");
  REQUIRE(!svc.empty());
  CHECK(svc.size() <= 28);
  // MINIK-SERVICES jumps by destination to the chain of the address's /20.
  CHECK(t.nat.at("MINIK-SERVICES").front() ==
        "-A MINIK-SERVICES -d 10.96.0.0/20 -j MINIK-SVCS-0A600000");
  CHECK_THAT(Join(t.nat.at("MINIK-SVCS-0A600000")),
             Catch::Contains("-d 10.96.0.20/32 --dport 80 -j " + svc));
  // The node-port jump is the last rule.
  CHECK_THAT(t.nat.at("MINIK-SERVICES").back(),
             Catch::Contains("--dst-type LOCAL -j MINIK-NODEPORTS"));
  const auto& rules = t.nat.at(svc);
  REQUIRE(rules.size() == 4);  // masquerade from outside the pod network, then 3 endpoints
  CHECK_THAT(rules[0], Catch::Contains("! -s 10.244.0.0/16 -d 10.96.0.20/32") &&
                           Catch::Contains("-j MINIK-MARK-MASQ"));
  CHECK_THAT(rules[1], Catch::Contains("--probability 0.3333333333"));
  CHECK_THAT(rules[2], Catch::Contains("--probability 0.5000000000"));
  CHECK_THAT(rules[3], !Catch::Contains("--probability"));
  int seps = 0;
  std::string all_nat;
  for (const auto& [name, r] : t.nat) {
    if (name.rfind("MINIK-SEP-", 0) == 0) {
      ++seps;
      CHECK_THAT(Join(r), Catch::Contains("-j MINIK-MARK-MASQ"));  // hairpin
    }
    all_nat += Join(r);
  }
  CHECK(seps == 3);
  CHECK_THAT(all_nat, Catch::Contains("-j DNAT --to-destination 10.244.0.7:8080"));
  CHECK_THAT(all_nat, !Catch::Contains("10.244.0.8"));  // not ready
  // Only the catch-all for the rest of the service range.
  REQUIRE(t.filter.at("MINIK-SERVICES").size() == 1);
  CHECK_THAT(t.filter.at("MINIK-SERVICES")[0], Catch::Contains("-d 10.96.0.0/12 -j REJECT"));
}

TEST_CASE("a service without ready endpoints is rejected, draining ones are used last") {
  Tables none = Render(ServicePorts({Service("web", "10.96.0.20")},
                                    {Slice("web", {{"10.244.0.8", false, "node-a"}})}),
                       kCfg);
  CHECK(ChainStarting(none.nat, "MINIK-SVC-").empty());
  REQUIRE(none.filter.at("MINIK-SERVICES").size() == 2);
  CHECK_THAT(none.filter.at("MINIK-SERVICES")[0],
             Catch::Contains("-d 10.96.0.20/32 --dport 80 -j REJECT"));

  json draining = Slice("web", {{"10.244.0.9", false, "node-a"}});
  draining["endpoints"][0]["conditions"] = {
      {"ready", false}, {"serving", true}, {"terminating", true}};
  Tables d = Render(ServicePorts({Service("web", "10.96.0.20")}, {draining}), kCfg);
  CHECK_FALSE(ChainStarting(d.nat, "MINIK-SVC-").empty());
  CHECK(d.filter.at("MINIK-SERVICES").size() == 1);
}

TEST_CASE("internal traffic policy Local keeps to this node's endpoints") {
  auto svc = Service("web", "10.96.0.20", {{"internalTrafficPolicy", "Local"}});
  Tables t = Render(
      ServicePorts(
          {svc}, {Slice("web", {{"10.244.0.5", true, "node-a"}, {"10.244.1.5", true, "node-b"}})}),
      kCfg);
  std::string svl = ChainStarting(t.nat, "MINIK-SVL-");
  REQUIRE(!svl.empty());
  CHECK_THAT(Join(t.nat.at("MINIK-SVCS-0A600000")), Catch::Contains("-j " + svl));
  CHECK(t.nat.at(svl).size() == 1);
  CHECK_THAT(AllRules(t.nat), Catch::Contains("10.244.0.5"));
  // No local endpoint: rejected, even though another node has one.
  Tables far = Render(ServicePorts({svc}, {Slice("web", {{"10.244.1.5", true, "node-b"}})}), kCfg);
  REQUIRE(far.filter.at("MINIK-SERVICES").size() == 2);
}

TEST_CASE("client IP affinity pins a client to its endpoint") {
  auto svc = Service("web", "10.96.0.20",
                     {{"sessionAffinity", "ClientIP"},
                      {"sessionAffinityConfig", {{"clientIP", {{"timeoutSeconds", 60}}}}}});
  Tables t = Render(
      ServicePorts(
          {svc}, {Slice("web", {{"10.244.0.5", true, "node-a"}, {"10.244.0.6", true, "node-a"}})}),
      kCfg);
  std::string svc_chain = ChainStarting(t.nat, "MINIK-SVC-");
  std::string rules = Join(t.nat.at(svc_chain));
  CHECK_THAT(rules, Catch::Contains("--rcheck --seconds 60 --reap"));
  std::string sep = ChainStarting(t.nat, "MINIK-SEP-");
  CHECK_THAT(Join(t.nat.at(sep)), Catch::Contains("-m recent --name " + sep));
}

TEST_CASE("node ports go through the external chain of their traffic policy") {
  auto np = Service(
      "web", "10.96.0.20",
      {{"type", "NodePort"}, {"ports", {{{"name", "http"}, {"port", 80}, {"nodePort", 30080}}}}});
  auto slices = std::vector<json>{Slice("web", {{"10.244.0.5", true, "node-a"}})};
  Tables t = Render(ServicePorts({np}, slices), kCfg);
  std::string ext = ChainStarting(t.nat, "MINIK-EXT-");
  REQUIRE(!ext.empty());
  CHECK_THAT(Join(t.nat.at("MINIK-NODEPORTS")), Catch::Contains("--dport 30080 -j " + ext));
  CHECK_THAT(t.nat.at(ext)[0], Catch::Contains("-j MINIK-MARK-MASQ"));

  np["spec"]["externalTrafficPolicy"] = "Local";
  Tables local = Render(ServicePorts({np}, slices), kCfg);
  std::string svl = ChainStarting(local.nat, "MINIK-SVL-");
  REQUIRE(!svl.empty());
  CHECK(local.nat.at(ext).back() == "-A " + ext + " -j " + svl);
  // On a node without local endpoints, the node port is refused.
  Config other = kCfg;
  other.node_name = "node-b";
  Tables far = Render(ServicePorts({np}, slices), other);
  CHECK_THAT(Join(far.filter.at("MINIK-EXTERNAL-SERVICES")),
             Catch::Contains("--dport 30080 -j REJECT"));

  Config lo = kCfg;
  lo.nodeport_cidrs = {"127.0.0.0/8"};
  CHECK_THAT(Render(ServicePorts({np}, slices), lo).nat.at("MINIK-SERVICES").back(),
             Catch::Contains("-d 127.0.0.0/8 -j MINIK-NODEPORTS"));
}

TEST_CASE("a change rewrites only the chains it touches") {
  std::vector<json> services = {Service("web", "10.96.0.20"), Service("api", "10.96.0.21")};
  Tables before = Render(ServicePorts(services, {Slice("web", {{"10.244.0.5", true, "a"}}),
                                                 Slice("api", {{"10.244.0.9", true, "a"}})}),
                         kCfg);
  CHECK(RestoreInput(before, before).empty());
  Tables after = Render(ServicePorts(services, {Slice("web", {{"10.244.0.6", true, "a"}}),
                                                Slice("api", {{"10.244.0.9", true, "a"}})}),
                        kCfg);
  std::string input = RestoreInput(before, after);
  CHECK(input.find("*filter") == std::string::npos);
  CHECK_THAT(input, Catch::Contains("*nat") && Catch::Contains("COMMIT"));
  CHECK_THAT(input, Catch::Contains("--to-destination 10.244.0.6:8080"));
  CHECK_THAT(input, Catch::Contains("-X MINIK-SEP-"));  // the old endpoint's chain
  CHECK_THAT(input, !Catch::Contains("10.244.0.9"));    // the other service is left alone
  CHECK_THAT(input, !Catch::Contains(":MINIK-SERVICES"));
  CHECK_THAT(input, !Catch::Contains("10.96.0.21"));  // the other service's bucket rule stays
}

TEST_CASE("owned chains are found in iptables-save output") {
  std::string save =
      "*nat\n:PREROUTING ACCEPT [0:0]\n:MINIK-SERVICES - [0:0]\n:MINIK-SVC-ABC - [0:0]\n"
      ":MINIK-MASQ-mk-x - [0:0]\n:KUBE-SERVICES - [0:0]\nCOMMIT\n";
  auto owned = OwnedChains(save);
  CHECK(owned == std::vector<std::string>{"MINIK-SERVICES", "MINIK-SVC-ABC"});
}

TEST_CASE("the rules are valid for the real iptables-restore") {
  if (geteuid() != 0 || exec::LookPath("iptables-restore").empty()) {
    WARN("not root or no iptables-restore: skipped");
    return;
  }
  auto np = Service("web", "10.96.0.20",
                    {{"type", "NodePort"},
                     {"sessionAffinity", "ClientIP"},
                     {"externalTrafficPolicy", "Local"},
                     {"externalIPs", {"192.0.2.10"}},
                     {"ports", {{{"name", "http"}, {"port", 80}, {"nodePort", 30080}}}}});
  Tables t =
      Render(ServicePorts(
                 {np, Service("empty", "10.96.0.22")},
                 {Slice("web", {{"10.244.0.5", true, "node-a"}, {"10.244.0.6", true, "node-b"}})}),
             kCfg);
  exec::Command c;
  c.argv = {"iptables-restore", "--test", "--noflush"};
  c.stdin_data = RestoreInput(Tables{}, t);
  exec::Result r = exec::Run(c);
  INFO(c.stdin_data);
  INFO(r.err);
  CHECK(r.ok());
}

TEST_CASE("UDP flows to a removed endpoint are forgotten") {
  auto dns = [](std::vector<std::tuple<std::string, bool, std::string>> eps) {
    json svc = Service(
        "dns", "10.96.0.53",
        {{"type", "NodePort"},
         {"ports", {{{"name", "http"}, {"port", 53}, {"protocol", "UDP"}, {"nodePort", 30053}}}}});
    json slice = Slice("dns", eps, 53);
    slice["ports"][0]["protocol"] = "UDP";
    return ServicePorts({svc, Service("web", "10.96.0.20")}, {slice});
  };
  std::map<std::string, std::vector<std::string>> known;
  // First sight of a Service: nothing to forget.
  CHECK(StaleUdpFlows(dns({{"10.244.0.5", true, "a"}, {"10.244.0.6", true, "a"}}), &known).empty());
  auto flows = StaleUdpFlows(dns({{"10.244.0.5", true, "a"}}), &known);
  REQUIRE(flows.size() == 2);
  CHECK(flows[0] == std::vector<std::string>{"-D", "-p", "udp", "--orig-dst", "10.96.0.53",
                                             "--dst-nat", "10.244.0.6"});
  CHECK(flows[1] == std::vector<std::string>{"-D", "-p", "udp", "--orig-port-dst", "30053",
                                             "--dst-nat", "10.244.0.6"});
  // No endpoint left, then one again: flows made meanwhile went nowhere.
  StaleUdpFlows(dns({{"10.244.0.5", false, "a"}}), &known);
  flows = StaleUdpFlows(dns({{"10.244.0.7", true, "a"}}), &known);
  REQUIRE(flows.size() == 1);
  CHECK(flows[0] == std::vector<std::string>{"-D", "-p", "udp", "--orig-dst", "10.96.0.53"});
  CHECK(StaleUdpFlows(dns({{"10.244.0.7", true, "a"}}), &known).empty());
}
