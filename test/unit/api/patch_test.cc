// Strategic merge patch with the merge keys of the built-in types, as
// `kubectl apply`, `kubectl set image` and `kubectl rollout restart` send it.

#include <catch2/catch.hpp>

#include "api/patch.h"
#include "api/types.h"

using namespace minik;
using namespace minik::api;

namespace {

json Deployment() {
  return json::parse(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
    "spec": {
      "replicas": 2,
      "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
      "template": {"spec": {
        "containers": [
          {"name": "web", "image": "nginx:1.27", "env": [{"name": "A", "value": "1"}],
           "ports": [{"containerPort": 80, "protocol": "TCP"}]},
          {"name": "side", "image": "busybox"}],
        "volumes": [{"name": "data", "emptyDir": {}}]}}}})");
}

}  // namespace

TEST_CASE("strategic merge patch merges lists by their merge keys", "[patch]") {
  const auto& t = TypeTable::Builtin();
  json patched = ApplyStrategicMergePatch(t, "apps.v1.Deployment", Deployment(), json::parse(R"({
    "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28",
      "env": [{"name": "B", "value": "2"}]}]}}}})"));
  const json& cs = patched["spec"]["template"]["spec"]["containers"];
  REQUIRE(cs.size() == 2);
  CHECK(cs[0]["image"] == "nginx:1.28");
  CHECK(cs[0]["env"].size() == 2);
  CHECK(cs[0]["ports"][0]["containerPort"] == 80);
  CHECK(cs[1]["name"] == "side");
}

TEST_CASE("strategic merge patch directives", "[patch]") {
  const auto& t = TypeTable::Builtin();
  SECTION("$patch: delete removes an element; null removes a key") {
    json p = ApplyStrategicMergePatch(t, "apps.v1.Deployment", Deployment(), json::parse(R"({
      "metadata": {"labels": {"app": null}},
      "spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}})"));
    CHECK(p["spec"]["template"]["spec"]["containers"].size() == 1);
    CHECK_FALSE(p["metadata"]["labels"].contains("app"));
  }
  SECTION("$setElementOrder orders the merged list") {
    json p = ApplyStrategicMergePatch(t, "apps.v1.Deployment", Deployment(), json::parse(R"({
      "spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
        "containers": [{"name": "side", "image": "busybox:1.36"}]}}}})"));
    const json& cs = p["spec"]["template"]["spec"]["containers"];
    CHECK(cs[0]["name"] == "side");
    CHECK(cs[0]["image"] == "busybox:1.36");
    CHECK(cs[1]["name"] == "web");
  }
  SECTION("$retainKeys drops what the new strategy does not keep") {
    json p = ApplyStrategicMergePatch(t, "apps.v1.Deployment", Deployment(), json::parse(R"({
      "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}})"));
    CHECK(p["spec"]["strategy"] == json{{"type", "Recreate"}});
  }
  SECTION("finalizers merge as a set; $deleteFromPrimitiveList removes") {
    json p = ApplyStrategicMergePatch(t, "apps.v1.Deployment", Deployment(),
                                      json::parse(R"({"metadata": {"finalizers": ["b", "a"]}})"));
    CHECK(p["metadata"]["finalizers"] == json::array({"a", "b"}));
    json q = ApplyStrategicMergePatch(
        t, "apps.v1.Deployment", p,
        json::parse(R"({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})"));
    CHECK(q["metadata"]["finalizers"] == json::array({"b"}));
  }
  SECTION("a list without a merge strategy is replaced") {
    json p = ApplyStrategicMergePatch(t, "apps.v1.Deployment", Deployment(), json::parse(R"({
      "spec": {"template": {"spec": {"containers": [{"name": "web", "command": ["a", "b"]}]}}}})"));
    json q = ApplyStrategicMergePatch(t, "apps.v1.Deployment", p, json::parse(R"({
      "spec": {"template": {"spec": {"containers": [{"name": "web", "command": ["c"]}]}}}})"));
    CHECK(q["spec"]["template"]["spec"]["containers"][0]["command"] == json::array({"c"}));
  }
  SECTION("an element without its merge key is an error") {
    CHECK_THROWS_AS(ApplyStrategicMergePatch(t, "apps.v1.Deployment", Deployment(), json::parse(R"({
      "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})")),
                    PatchError);
  }
}

TEST_CASE("JSON merge patch and JSON patch", "[patch]") {
  json o = {{"a", 1}, {"b", {{"c", 2}}}, {"l", {1, 2}}};
  CHECK(ApplyMergePatch(o, json::parse(R"({"b": {"c": null, "d": 3}, "l": [3]})")) ==
        json::parse(R"({"a": 1, "b": {"d": 3}, "l": [3]})"));
  CHECK(ApplyJsonPatch(o, json::parse(R"([{"op": "replace", "path": "/a", "value": 5}])"))["a"] ==
        5);
  CHECK_THROWS_AS(ApplyJsonPatch(o, json::parse(R"([{"op": "test", "path": "/a", "value": 9}])")),
                  PatchError);
}

TEST_CASE("structural check finds unknown and mistyped fields", "[types]") {
  const auto& t = TypeTable::Builtin();
  json d = Deployment();
  d["spec"]["replicass"] = 3;
  d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "x";
  d["spec"]["replicas"] = "two";
  FieldProblems p = CheckFields(t, "apps.v1.Deployment", d);
  CHECK(p.unknown == std::vector<std::string>{"spec.replicass",
                                              "spec.template.spec.containers[0].imagePullPolicyy"});
  REQUIRE(p.errors.size() == 1);
  CHECK(p.errors[0] == "spec.replicas: expected integer, got string");
  CHECK_FALSE(d["spec"].contains("replicass"));
}
