// Field management over the built-in types: the fieldsV1 an update and an
// apply record, shared ownership, conflicts, forcing, pruning what an
// applier stops applying, and the encoding kube-apiserver writes.

#include <catch2/catch.hpp>

#include "api/managed_fields.h"
#include "api/types.h"

using namespace minik;
using namespace minik::api;

namespace {

const TypeTable& Types() {
  return TypeTable::Builtin();
}

json Pod(const std::string& image, const json& labels = {{"name", "test"}}) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", "p"}, {"namespace", "default"}, {"labels", labels}}},
          {"spec", {{"containers", {{{"name", "c"}, {"image", image}}}}}}};
}

FieldManagerRequest Req(const std::string& manager, bool force = false) {
  return {manager, "v1", "", "2026-12-07T10:00:00Z", force};
}

const ManagedFieldsEntry* Entry(const std::vector<ManagedFieldsEntry>& ms, const std::string& m) {
  for (const auto& e : ms) {
    if (e.manager == m) {
      return &e;
    }
  }
  return nullptr;
}

}  // namespace

TEST_CASE("a create records the fields the creator set, with '.' on new nodes", "[fields]") {
  FieldManager fm(Types(), "apps.v1.Deployment", true);
  json d = json::parse(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "uid": "u", "labels": {"app": "web"}},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
      "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
      "template": {"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                 "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}},
    "status": {"replicas": 0}})");
  std::vector<ManagedFieldsEntry> ms;
  REQUIRE(fm.Update(ms, json(), d, {"kubectl-create", "apps/v1", "", "t", false}));
  REQUIRE(ms.size() == 1);
  json f = ms[0].fields.ToJson();
  // Labels are new (a "." of their own); spec, the template and strategy exist
  // in the empty Deployment, so only what is in them is owned.
  CHECK(f["f:metadata"] == json::parse(R"({"f:labels": {"f:app": {}, ".": {}}})"));
  CHECK(!f["f:spec"].contains("."));
  CHECK(f["f:spec"]["f:selector"] == json::object());  // an atomic LabelSelector
  CHECK(f["f:spec"]["f:strategy"].contains("f:type"));
  CHECK(f["f:spec"]["f:strategy"]["f:rollingUpdate"].contains("."));
  const json& c = f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"];
  CHECK(c.contains("."));
  CHECK(c["f:ports"].contains("k:{\"containerPort\":80,\"protocol\":\"TCP\"}"));
  // Status belongs to the status subresource; name and uid to nobody.
  CHECK(!f.contains("f:status"));
  CHECK(!f["f:metadata"].contains("f:name"));
  CHECK(!f["f:metadata"].contains("f:uid"));
  // "." comes last in the encoding, as kube-apiserver writes it.
  std::string text = ms[0].fields.ToJson()["f:metadata"]["f:labels"].dump();
  CHECK(text == R"({".":{},"f:app":{}})");  // (nlohmann sorts; the API encoder does not)
}

TEST_CASE("an update takes only the fields it changed, from whoever had them", "[fields]") {
  FieldManager fm(Types(), "core.v1.Pod", true);
  std::vector<ManagedFieldsEntry> ms;
  json p = Pod("busybox");
  fm.Update(ms, json(), p, Req("kubectl-run"));
  json q = p;
  q["spec"]["containers"][0]["image"] = "busybox:2";
  REQUIRE(fm.Update(ms, p, q, Req("kubectl-set")));
  const auto* set = Entry(ms, "kubectl-set");
  REQUIRE(set);
  CHECK(set->fields.Paths() == std::vector<std::string>{".spec.containers[name=\"c\"].image"});
  const auto* run = Entry(ms, "kubectl-run");
  REQUIRE(run);
  for (const auto& path : run->fields.Paths()) {
    CHECK(path != ".spec.containers[name=\"c\"].image");
  }
  // Writing the same object again changes nothing and records nothing.
  auto before = EncodeManagedFields(ms);
  CHECK_FALSE(fm.Update(ms, q, q, Req("other")));
  CHECK(EncodeManagedFields(ms) == before);
}

TEST_CASE("apply: same values are shared, other values conflict, force takes them", "[fields]") {
  FieldManager fm(Types(), "core.v1.Pod", true);
  std::vector<ManagedFieldsEntry> ms;
  json config = Pod("busybox");
  json live = fm.Apply(fm.Empty(), {}, config, config, Req("kubectl"), &ms);
  REQUIRE(ms.size() == 1);
  CHECK(ms[0].operation == "Apply");

  // A second manager applying the same values shares them.
  std::vector<ManagedFieldsEntry> shared;
  fm.Apply(live, ms, config, live, Req("other"), &shared);
  REQUIRE(Entry(shared, "kubectl"));
  REQUIRE(Entry(shared, "other"));
  CHECK(Entry(shared, "kubectl")->fields.ToJson() == Entry(shared, "other")->fields.ToJson());

  // Another image conflicts with both owners.
  json changed = Pod("busybox:2");
  try {
    fm.Apply(live, shared, changed, changed, Req("third"), &ms);
    FAIL("no conflict");
  } catch (const ApplyConflictError& e) {
    REQUIRE(e.conflicts().size() == 2);
    CHECK(e.conflicts()[0].path == ".spec.containers[name=\"c\"].image");
    CHECK(std::string(e.what()).find(
              "Apply failed with 2 conflicts: conflicts with \"kubectl\":") == 0);
  }
  // Forced, the image moves to the new manager; the labels stay shared.
  std::vector<ManagedFieldsEntry> forced;
  fm.Apply(live, shared, changed, changed, Req("third", true), &forced);
  for (const char* m : {"kubectl", "other"}) {
    REQUIRE(Entry(forced, m));
    for (const auto& p : Entry(forced, m)->fields.Paths()) {
      CHECK(p != ".spec.containers[name=\"c\"].image");
    }
  }
  CHECK(Entry(forced, "third"));
}

TEST_CASE("apply removes what its manager no longer applies, unless others own it", "[fields]") {
  FieldManager fm(Types(), "core.v1.ConfigMap", false);
  json cm = {{"apiVersion", "v1"},
             {"kind", "ConfigMap"},
             {"metadata", {{"name", "c"}}},
             {"data", {{"key", "value"}, {"legacy", "unused"}}}};
  std::vector<ManagedFieldsEntry> ms;
  json live = fm.Apply(fm.Empty(), {}, cm, cm, Req("kubectl"), &ms);
  json smaller = cm;
  smaller["data"].erase("legacy");
  // The merge keeps `legacy` (a merge never deletes); pruning removes it.
  json merged = fm.Apply(live, ms, smaller, live, Req("kubectl"), &ms);
  CHECK(merged["data"] == json{{"key", "value"}});

  // Owned by someone else too, it stays.
  std::vector<ManagedFieldsEntry> two;
  live = fm.Apply(fm.Empty(), {}, cm, cm, Req("kubectl"), &two);
  fm.Apply(live, two, cm, live, Req("other"), &two);
  merged = fm.Apply(live, two, smaller, live, Req("kubectl"), &two);
  CHECK(merged["data"].contains("legacy"));
}

TEST_CASE("a map an applier owned whole and now owns a key of stays", "[fields]") {
  // After kubectl moved client-side apply's fields to server-side apply, its
  // set holds `labels` itself ("."), which the next apply does not: the map
  // must keep the label that apply still sets.
  FieldManager fm(Types(), "core.v1.Pod", true);
  json live = Pod("busybox");
  std::vector<ManagedFieldsEntry> ms;
  fm.Update(ms, json(), live, Req("kubectl-client-side-apply"));
  ms[0].manager = "kubectl";
  ms[0].operation = "Apply";
  json merged = fm.Apply(live, ms, Pod("busybox"), live, Req("kubectl"), &ms);
  CHECK(merged["metadata"]["labels"] == json{{"name", "test"}});
  CHECK(merged["spec"]["containers"][0]["image"] == "busybox");
}

TEST_CASE("an applied port without its defaulted protocol is the stored port", "[fields]") {
  FieldManager fm(Types(), "core.v1.Pod", true);
  json config = Pod("busybox");
  config["spec"]["containers"][0]["ports"] = {{{"containerPort", 80}}, {{"containerPort", 81}}};
  json live = config;
  for (auto& p : live["spec"]["containers"][0]["ports"]) {
    p["protocol"] = "TCP";  // what defaulting stored
  }
  std::vector<ManagedFieldsEntry> ms;
  fm.Apply(fm.Empty(), {}, config, live, Req("kubectl"), &ms);
  json f = ms[0].fields.ToJson();
  const json& c = f["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"];
  CHECK(c["f:ports"].contains("k:{\"containerPort\":80,\"protocol\":\"TCP\"}"));
  // Applying without port 81 removes it; another manager changing port 80's
  // name conflicts with the applier.
  json smaller = config;
  smaller["spec"]["containers"][0]["ports"].erase(1);
  json merged = fm.Apply(live, ms, smaller, live, Req("kubectl"), &ms);
  REQUIRE(merged["spec"]["containers"][0]["ports"].size() == 1);
  CHECK(merged["spec"]["containers"][0]["ports"][0]["containerPort"] == 80);
  json other = smaller;
  other["spec"]["containers"][0]["ports"][0]["hostPort"] = 8080;
  json owned = merged;
  owned["spec"]["containers"][0]["ports"][0]["hostPort"] = 9090;
  std::vector<ManagedFieldsEntry> two = ms;
  fm.Update(two, merged, owned, Req("owner"));
  CHECK_THROWS_AS(fm.Apply(owned, two, other, other, Req("third"), &ms), ApplyConflictError);
}

TEST_CASE("managedFields round-trip, sorted Apply first then by time", "[fields]") {
  json list = json::parse(R"([
    {"manager":"b","operation":"Update","apiVersion":"v1","time":"2026-01-02T00:00:00Z",
     "fieldsType":"FieldsV1","fieldsV1":{"f:data":{"f:x":{}}}},
    {"manager":"a","operation":"Update","apiVersion":"v1","time":"2026-01-01T00:00:00Z",
     "fieldsType":"FieldsV1","fieldsV1":{"f:data":{".":{},"f:y":{}}}},
    {"manager":"kubectl","operation":"Apply","apiVersion":"v1",
     "fieldsType":"FieldsV1","fieldsV1":{"f:data":{"f:z":{}}}}])");
  auto parsed = ParseManagedFields(list);
  REQUIRE(parsed);
  json out = EncodeManagedFields(*parsed);
  REQUIRE(out.size() == 3);
  CHECK(out[0]["manager"] == "kubectl");
  CHECK(out[1]["manager"] == "a");
  CHECK(out[2]["manager"] == "b");
  CHECK(out[1]["fieldsV1"] == list[1]["fieldsV1"]);
  // Invalid entries make the whole list invalid (the stored one is kept).
  CHECK_FALSE(ParseManagedFields(json::parse(R"([{"manager":"x","operation":"Bogus"}])")));
  CHECK_FALSE(ParseManagedFields(json::parse(
      R"([{"manager":"x","operation":"Update","apiVersion":"v1","fieldsType":"FieldsV1",
           "fieldsV1":{"bad":{}}}])")));
}

TEST_CASE("the manager of a request without fieldManager is its product", "[fields]") {
  CHECK(ManagerFromUserAgent("kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9") == "kubectl");
  CHECK(ManagerFromUserAgent("OpenAPI-Generator/22.6.0/python") == "OpenAPI-Generator");
  CHECK(ManagerFromUserAgent("") == "unknown");
  CHECK(ManagerFromUserAgent(std::string(300, 'a')).size() == 128);
  // Never cut inside a character.
  std::string e_acute = "\xc3\xa9";
  std::string m = ManagerFromUserAgent(std::string(127, 'a') + e_acute);
  CHECK(m == std::string(127, 'a'));
}
