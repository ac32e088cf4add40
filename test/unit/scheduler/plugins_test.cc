// The scheduler's filters and scores on hand-made nodes and pods.

#include <catch2/catch.hpp>

#include <functional>

#include "api/quantity.h"
#include "scheduler/scheduler.h"

using namespace minik;
using namespace minik::scheduler;

namespace {

NodeInfo MakeNode(const std::string& name, json labels = json::object(),
                  json taints = json::array(), const std::string& cpu = "4",
                  const std::string& mem = "8Gi") {
  NodeInfo n;
  labels["kubernetes.io/hostname"] = name;
  n.SetNode(std::make_shared<const json>(
      json{{"metadata", {{"name", name}, {"labels", labels}}},
           {"spec", {{"taints", taints}}},
           {"status", {{"allocatable", {{"cpu", cpu}, {"memory", mem}, {"pods", "110"}}}}}}));
  return n;
}

json MakePod(json spec = json::object(), json labels = {{"app", "web"}}) {
  if (!spec.contains("containers")) {
    spec["containers"] = json::array({{{"name", "c"}, {"image", "nginx"}}});
  }
  return {{"metadata", {{"name", "p"}, {"namespace", "default"}, {"labels", labels}}},
          {"spec", spec},
          {"status", {{"phase", "Pending"}}}};
}

int next_uid = 0;

void Place(NodeInfo& n, json pod) {
  pod["metadata"]["uid"] = "uid-" + std::to_string(++next_uid);
  pod["spec"]["nodeName"] = n.name;
  pod["status"]["phase"] = "Running";
  n.AddPod(PodInfo(std::make_shared<const json>(pod)));
}

ClusterView ViewOf(std::vector<NodeInfo>& nodes) {
  ClusterView v;
  for (auto& n : nodes) {
    v.nodes.push_back(&n);
    v.anti_affinity_pods += n.anti_affinity;
  }
  return v;
}

// Why `pod` does not fit `n` among `all` ("" when it fits).
std::string Why(const json& pod, const NodeInfo& n, std::vector<NodeInfo> all) {
  ClusterView v = ViewOf(all);
  return Filter(PodQuery(pod), n, v);
}

NodeInfo WithNode(const NodeInfo& n, const std::function<void(json&)>& edit) {
  json node = *n.node;
  edit(node);
  NodeInfo out = n;
  out.SetNode(std::make_shared<const json>(node));
  return out;
}

}  // namespace

TEST_CASE("scheduler: requests sum containers and take the largest init container", "[scheduler]") {
  json pod = MakePod(
      {{"containers",
        {{{"name", "a"}, {"resources", {{"requests", {{"cpu", "250m"}, {"memory", "64Mi"}}}}}},
         {{"name", "b"}, {"resources", {{"requests", {{"cpu", "1"}}}}}}}},
       {"initContainers",
        {{{"name", "i"}, {"resources", {{"requests", {{"cpu", "2"}, {"memory", "1Mi"}}}}}}}}});
  Requests r = PodRequests(pod);
  CHECK(r.cpu == 2000);
  CHECK(r.mem == 64LL * 1024 * 1024 * 1000);
}

TEST_CASE("scheduler: resource fit", "[scheduler]") {
  NodeInfo n = MakeNode("n1", {}, json::array(), "2");
  std::vector<NodeInfo> all{n};
  json big =
      MakePod({{"containers", {{{"name", "c"}, {"resources", {{"requests", {{"cpu", "3"}}}}}}}}});
  CHECK(Why(big, n, all) == "Insufficient cpu");
  json ok = MakePod(
      {{"containers", {{{"name", "c"}, {"resources", {{"requests", {{"cpu", "1500m"}}}}}}}}});
  CHECK(Why(ok, n, all) == "");
  Place(n, ok);
  CHECK(Why(ok, n, {n}) == "Insufficient cpu");
  json mem = MakePod(
      {{"containers", {{{"name", "c"}, {"resources", {{"requests", {{"memory", "9Gi"}}}}}}}}});
  CHECK(Why(mem, n, {n}) == "Insufficient memory");
}

TEST_CASE("scheduler: node selector, affinity, taints, unschedulable, host ports", "[scheduler]") {
  NodeInfo ssd = MakeNode("ssd", {{"disk", "ssd"}, {"zone", "a"}});
  NodeInfo hdd = MakeNode("hdd", {{"disk", "hdd"}, {"zone", "b"}});
  std::vector<NodeInfo> all{ssd, hdd};
  json sel = MakePod({{"nodeSelector", {{"disk", "ssd"}}}});
  CHECK(Why(sel, ssd, all) == "");
  CHECK(Why(sel, hdd, all) == "node(s) didn't match Pod's node affinity/selector");
  json aff =
      MakePod({{"affinity",
                {{"nodeAffinity",
                  {{"requiredDuringSchedulingIgnoredDuringExecution",
                    {{"nodeSelectorTerms",
                      {{{"matchExpressions",
                         {{{"key", "zone"}, {"operator", "In"}, {"values", {"b"}}}}}}}}}}}}}}});
  CHECK(Why(aff, ssd, all) != "");
  CHECK(Why(aff, hdd, all) == "");

  NodeInfo tainted =
      MakeNode("t", {}, {{{"key", "gpu"}, {"value", "yes"}, {"effect", "NoSchedule"}}});
  CHECK(Why(MakePod(), tainted, {tainted}) == "node(s) had untolerated taint {gpu: yes}");
  json tolerates = MakePod(
      {{"tolerations",
        {{{"key", "gpu"}, {"operator", "Equal"}, {"value", "yes"}, {"effect", "NoSchedule"}}}}});
  CHECK(Why(tolerates, tainted, {tainted}) == "");
  json exists = MakePod({{"tolerations", {{{"operator", "Exists"}}}}});
  CHECK(Why(exists, tainted, {tainted}) == "");

  NodeInfo cordoned = WithNode(MakeNode("c"), [](json& n) { n["spec"]["unschedulable"] = true; });
  CHECK(Why(MakePod(), cordoned, {cordoned}) == "node(s) were unschedulable");

  json hp =
      MakePod({{"containers",
                {{{"name", "c"}, {"ports", {{{"containerPort", 80}, {"hostPort", 8080}}}}}}}});
  NodeInfo busy = MakeNode("b");
  busy.host_ports.emplace_back("TCP", 8080);
  CHECK(Why(hp, busy, {busy}) == "node(s) didn't have free ports for the requested pod ports");
  CHECK(Why(hp, ssd, all) == "");
}

TEST_CASE("scheduler: pod anti-affinity and topology spread", "[scheduler]") {
  NodeInfo a = MakeNode("a", {{"zone", "z1"}});
  NodeInfo b = MakeNode("b", {{"zone", "z2"}});
  Place(a, MakePod({}, {{"app", "db"}}));
  std::vector<NodeInfo> all{a, b};
  json anti = MakePod({{"affinity",
                        {{"podAntiAffinity",
                          {{"requiredDuringSchedulingIgnoredDuringExecution",
                            {{{"labelSelector", {{"matchLabels", {{"app", "db"}}}}},
                              {"topologyKey", "kubernetes.io/hostname"}}}}}}}}},
                      {{"app", "db"}});
  CHECK(Why(anti, all[0], all) == "node(s) didn't match pod anti-affinity rules");
  CHECK(Why(anti, all[1], all) == "");
  json with = MakePod({{"affinity",
                        {{"podAffinity",
                          {{"requiredDuringSchedulingIgnoredDuringExecution",
                            {{{"labelSelector", {{"matchLabels", {{"app", "db"}}}}},
                              {"topologyKey", "zone"}}}}}}}}},
                      {{"app", "cache"}});
  CHECK(Why(with, all[0], all) == "");
  CHECK(Why(with, all[1], all) == "node(s) didn't match pod affinity rules");

  json spread = MakePod({{"topologySpreadConstraints",
                          {{{"maxSkew", 1},
                            {"topologyKey", "zone"},
                            {"whenUnsatisfiable", "DoNotSchedule"},
                            {"labelSelector", {{"matchLabels", {{"app", "db"}}}}}}}}},
                        {{"app", "db"}});
  CHECK(Why(spread, all[0], all) == "node(s) didn't match pod topology spread constraints");
  CHECK(Why(spread, all[1], all) == "");
}

TEST_CASE("scheduler: scores prefer emptier nodes and spread a controller's pods", "[scheduler]") {
  NodeInfo a = MakeNode("a");
  NodeInfo b = MakeNode("b");
  json owned = MakePod();
  owned["metadata"]["ownerReferences"] = {{{"uid", "rs-1"}, {"controller", true}}};
  Place(a, owned);
  std::vector<NodeInfo> all{a, b};
  ClusterView view = ViewOf(all);
  PodQuery q(owned);
  PrepareSpread(q, view);
  CHECK(view.max_same_owner == 1);
  CHECK(Score(q, all[1], view) > Score(q, all[0], view));
  json heavy =
      MakePod({{"containers", {{{"name", "c"}, {"resources", {{"requests", {{"cpu", "2"}}}}}}}}});
  NodeInfo c = MakeNode("c");
  NodeInfo d = MakeNode("d");
  Place(c, heavy);
  std::vector<NodeInfo> two{c, d};
  ClusterView v2 = ViewOf(two);
  json plain = MakePod();
  PodQuery pq(plain);
  PrepareSpread(pq, v2);
  CHECK(Score(pq, two[1], v2) > Score(pq, two[0], v2));
}

TEST_CASE("scheduler: existing pods' anti-affinity keeps matching pods away", "[scheduler]") {
  NodeInfo a = MakeNode("a");
  NodeInfo b = MakeNode("b");
  Place(a, MakePod({{"affinity",
                     {{"podAntiAffinity",
                       {{"requiredDuringSchedulingIgnoredDuringExecution",
                         {{{"labelSelector", {{"matchLabels", {{"app", "web"}}}}},
                           {"topologyKey", "kubernetes.io/hostname"}}}}}}}}},
                   {{"app", "lonely"}}));
  CHECK(a.anti_affinity == 1);
  json web = MakePod();  // labelled app=web
  CHECK(Why(web, a, {a, b}) == "node(s) didn't satisfy existing pods anti-affinity rules");
  CHECK(Why(web, b, {a, b}) == "");
  CHECK(Why(MakePod({}, {{"app", "other"}}), a, {a, b}) == "");
}
