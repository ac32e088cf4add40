// The scheduler's cache: what each node has bound to it, kept per event.

#include <catch2/catch.hpp>

#include "scheduler/cache.h"

using namespace minik;
using namespace minik::scheduler;

namespace {

std::shared_ptr<const json> Node(const std::string& name) {
  return std::make_shared<const json>(
      json{{"metadata", {{"name", name}}},
           {"status", {{"allocatable", {{"cpu", "4"}, {"memory", "8Gi"}, {"pods", "110"}}}}}});
}

std::shared_ptr<const json> Pod(const std::string& uid, const std::string& node,
                                const std::string& phase = "Running",
                                const std::string& cpu = "100m") {
  json p = {{"metadata",
             {{"name", uid},
              {"namespace", "default"},
              {"uid", uid},
              {"ownerReferences", {{{"uid", "rs-1"}, {"controller", true}}}}}},
            {"spec",
             {{"containers",
               {{{"name", "c"},
                 {"resources", {{"requests", {{"cpu", cpu}}}}},
                 {"ports", {{{"containerPort", 80}, {"hostPort", 8080}}}}}}}}},
            {"status", {{"phase", phase}}}};
  if (!node.empty()) {
    p["spec"]["nodeName"] = node;
  }
  return std::make_shared<const json>(p);
}

const NodeInfo& Only(Cache& c) {
  std::lock_guard lock(c.mu());
  REQUIRE(c.View().nodes.size() == 1);
  return *c.View().nodes[0];
}

}  // namespace

TEST_CASE("scheduler cache: pods are counted on their node and uncounted as they go",
          "[scheduler]") {
  Cache c;
  c.SetNode(Node("n1"));
  c.SetPod(Pod("a", ""));  // pending: counted nowhere
  CHECK(Only(c).pods == 0);
  c.SetPod(Pod("a", "n1"));
  c.SetPod(Pod("b", "n1", "Running", "250m"));
  const NodeInfo& n = Only(c);
  CHECK(n.pods == 2);
  CHECK(n.req_cpu == 350);
  CHECK(n.host_ports.size() == 2);
  CHECK(n.owners.at("rs-1") == 2);
  c.SetPod(Pod("b", "n1", "Running", "250m"));  // the same pod again counts once
  CHECK(Only(c).pods == 2);
  c.SetPod(Pod("b", "n1", "Succeeded", "250m"));  // finished: frees its room
  CHECK(Only(c).pods == 1);
  CHECK(Only(c).req_cpu == 100);
  c.RemovePod(*Pod("a", "n1"));
  CHECK(Only(c).pods == 0);
  CHECK(Only(c).host_ports.empty());
  CHECK(Only(c).owners.empty());
}

TEST_CASE("scheduler cache: an assumed pod stays counted until the binding is seen or fails",
          "[scheduler]") {
  Cache c;
  c.SetNode(Node("n1"));
  {
    std::lock_guard lock(c.mu());
    c.Assume(Pod("a", "n1"));
    CHECK(c.IsAssumed("a"));
  }
  c.SetPod(Pod("a", "", "Pending"));  // the informer is behind: still counted
  CHECK(Only(c).pods == 1);
  c.SetPod(Pod("a", "n1"));  // seen bound: no longer assumed, counted once
  CHECK(Only(c).pods == 1);
  {
    std::lock_guard lock(c.mu());
    CHECK_FALSE(c.IsAssumed("a"));
    c.Assume(Pod("b", "n1"));
  }
  CHECK(Only(c).pods == 2);
  c.Forget("b");  // the binding failed
  CHECK(Only(c).pods == 1);
  c.Forget("a");  // confirmed pods are not forgotten
  CHECK(Only(c).pods == 1);
}

TEST_CASE("scheduler cache: nodes come and go, their pods wait for them", "[scheduler]") {
  Cache c;
  c.SetPod(Pod("a", "n2"));  // bound to a node not seen yet
  {
    std::lock_guard lock(c.mu());
    CHECK(c.View().nodes.empty());
  }
  c.SetNode(Node("n2"));
  CHECK(Only(c).pods == 1);
  CHECK(Only(c).alloc_cpu == 4000);
  c.SetNode(Node("n3"));
  c.RemoveNode("n2");
  CHECK(Only(c).name == "n3");
  c.RemovePod(*Pod("a", "n2"));
  c.SetNode(Node("n2"));
  {
    std::lock_guard lock(c.mu());
    REQUIRE(c.View().nodes.size() == 2);
    CHECK(c.View().nodes[0]->pods == 0);  // its old pod is gone with it
  }
}

TEST_CASE("scheduler cache: pods with anti-affinity are counted cluster-wide", "[scheduler]") {
  Cache c;
  c.SetNode(Node("n1"));
  json p = *Pod("a", "n1");
  p["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
      json::array({{{"topologyKey", "kubernetes.io/hostname"}}});
  c.SetPod(std::make_shared<const json>(p));
  {
    std::lock_guard lock(c.mu());
    CHECK(c.View().anti_affinity_pods == 1);
  }
  c.RemovePod(p);
  std::lock_guard lock(c.mu());
  CHECK(c.View().anti_affinity_pods == 0);
}
