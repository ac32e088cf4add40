// API semantics over HTTPS against the real binary: paging, selectors,
// watches (ordering, selectors, 410 after compaction), metadata (generateName,
// generation, finalizers), the status and scale subresources, dry runs.

#include <catch2/catch.hpp>
#include <set>

#include "apiserver_process.h"
#include "common/json.h"

using namespace minik;

namespace {

json J(const http::ClientResponse& r) {
  INFO(r.body);
  return json::parse(r.body);
}

json Cm(const std::string& name, const json& labels = json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"labels", labels}}},
          {"data", {{"k", name}}}};
}

// Reads watch events until `n` arrived or the stream ends.
std::vector<json> WatchEvents(http::Client& c, const std::string& path, size_t n) {
  std::vector<json> events;
  std::string buf;
  c.Stream(path, [&](std::string_view d) {
    buf.append(d);
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      events.push_back(json::parse(buf.substr(0, nl)));
      buf.erase(0, nl + 1);
    }
    return events.size() < n;
  });
  return events;
}

}  // namespace

TEST_CASE("paging and selectors", "[api]") {
  testing::ApiServerProcess s("memory");
  s.Start();
  auto c = s.Client();
  for (int i = 0; i < 25; ++i) {
    REQUIRE(c.Do("POST", "/api/v1/namespaces/default/configmaps",
                 Cm("cm-" + std::to_string(100 + i), {{"parity", i % 2 ? "odd" : "even"}}).dump())
                .status == 201);
  }
  std::set<std::string> seen;
  std::string cont;
  int pages = 0;
  do {
    json page = J(c.Do("GET", "/api/v1/namespaces/default/configmaps?limit=10" +
                                  (cont.empty() ? "" : "&continue=" + cont)));
    for (auto& i : page["items"]) {
      seen.insert(i["metadata"]["name"].get<std::string>());
    }
    cont = page["metadata"].value("continue", "");
    if (!cont.empty() && pages == 0) {
      CHECK(page["metadata"]["remainingItemCount"] == 15);
      // Writes after the first page do not show up in later pages.
      REQUIRE(c.Do("POST", "/api/v1/namespaces/default/configmaps", Cm("cm-999").dump()).status ==
              201);
    }
    ++pages;
  } while (!cont.empty());
  CHECK(pages == 3);
  CHECK(seen.size() == 25);
  CHECK_FALSE(seen.count("cm-999"));
  json odd = J(c.Do("GET", "/api/v1/namespaces/default/configmaps?labelSelector=parity%3Dodd"));
  CHECK(odd["items"].size() == 12);
  json in =
      J(c.Do("GET", "/api/v1/configmaps?labelSelector=parity%20in%20(odd,even),parity!%3Deven"));
  CHECK(in["items"].size() == 12);
  json byname =
      J(c.Do("GET", "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dcm-105"));
  REQUIRE(byname["items"].size() == 1);
  CHECK(byname["items"][0]["data"]["k"] == "cm-105");
  CHECK(c.Do("GET", "/api/v1/configmaps?labelSelector=a%20in%20b").status == 400);
  // deletecollection with a selector.
  REQUIRE(
      c.Do("DELETE", "/api/v1/namespaces/default/configmaps?labelSelector=parity%3Deven").status ==
      200);
  CHECK(J(c.Do("GET", "/api/v1/namespaces/default/configmaps"))["items"].size() == 13);
}

TEST_CASE("watches: order, selectors, and 410 after compaction", "[api][watch]") {
  testing::ApiServerProcess s("sqlite", {"--history-seconds", "1"});
  s.Start();
  auto c = s.Client();
  json created =
      J(c.Do("POST", "/api/v1/namespaces/default/configmaps", Cm("a", {{"w", "yes"}}).dump()));
  std::string rv = created["metadata"]["resourceVersion"];
  c.Do("POST", "/api/v1/namespaces/default/configmaps", Cm("b").dump());
  c.Do("PATCH", "/api/v1/namespaces/default/configmaps/a", R"({"metadata":{"labels":{"w":"no"}}})",
       "application/merge-patch+json");
  c.Do("DELETE", "/api/v1/namespaces/default/configmaps/b");
  // From rv: b added, a modified (leaving the selector), b deleted.
  auto w = s.Client();
  auto all =
      WatchEvents(w, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=" + rv, 3);
  REQUIRE(all.size() == 3);
  CHECK(all[0]["type"] == "ADDED");
  CHECK(all[0]["object"]["metadata"]["name"] == "b");
  CHECK(all[1]["type"] == "MODIFIED");
  CHECK(all[2]["type"] == "DELETED");
  CHECK(std::stoll(all[2]["object"]["metadata"]["resourceVersion"].get<std::string>()) >
        std::stoll(all[1]["object"]["metadata"]["resourceVersion"].get<std::string>()));
  auto w2 = s.Client();
  auto sel = WatchEvents(
      w2,
      "/api/v1/namespaces/default/configmaps?watch=true&labelSelector=w%3Dyes&resourceVersion=" +
          rv,
      1);
  REQUIRE(sel.size() == 1);
  CHECK(sel[0]["type"] == "DELETED");  // a stopped matching
  // Without a resourceVersion the current state comes first, then a timeout ends the stream.
  auto w3 = s.Client();
  auto initial =
      WatchEvents(w3, "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1", 100);
  REQUIRE(initial.size() == 1);
  CHECK(initial[0]["type"] == "ADDED");
  CHECK(initial[0]["object"]["metadata"]["name"] == "a");
  // After the history window, the old revision is gone: one ERROR event with 410.
  std::this_thread::sleep_for(std::chrono::milliseconds(3100));
  c.Do("POST", "/api/v1/namespaces/default/configmaps", Cm("c").dump());
  auto w4 = s.Client();
  auto gone =
      WatchEvents(w4, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=" + rv, 5);
  REQUIRE(gone.size() == 1);
  CHECK(gone[0]["type"] == "ERROR");
  CHECK(gone[0]["object"]["code"] == 410);
  CHECK(gone[0]["object"]["reason"] == "Expired");
}

TEST_CASE("metadata semantics and subresources", "[api]") {
  testing::ApiServerProcess s("memory");
  s.Start();
  auto c = s.Client();
  SECTION("generateName, generation and the status subresource") {
    json d = {{"apiVersion", "apps/v1"},
              {"kind", "Deployment"},
              {"metadata", {{"generateName", "web-"}}},
              {"spec",
               {{"selector", {{"matchLabels", {{"a", "b"}}}}},
                {"template",
                 {{"metadata", {{"labels", {{"a", "b"}}}}},
                  {"spec", {{"containers", {{{"name", "c"}, {"image", "x"}}}}}}}}}},
              {"status", {{"replicas", 7}}}};
    json created = J(c.Do("POST", "/apis/apps/v1/namespaces/default/deployments", d.dump()));
    std::string name = created["metadata"]["name"];
    CHECK(name.rfind("web-", 0) == 0);
    CHECK(name.size() == 9);
    CHECK(created["metadata"]["generation"] == 1);
    CHECK_FALSE(created["status"].contains("replicas"));  // status is the subresource's
    std::string base = "/apis/apps/v1/namespaces/default/deployments/" + name;
    json labeled = J(c.Do("PATCH", base, R"({"metadata":{"labels":{"x":"y"}}})",
                          "application/merge-patch+json"));
    CHECK(labeled["metadata"]["generation"] == 1);
    json scaled =
        J(c.Do("PATCH", base, R"({"spec":{"replicas":3}})", "application/merge-patch+json"));
    CHECK(scaled["metadata"]["generation"] == 2);
    json st = J(c.Do("PATCH", base + "/status",
                     R"({"status":{"replicas":3,"observedGeneration":2},"spec":{"replicas":9}})",
                     "application/merge-patch+json"));
    CHECK(st["status"]["replicas"] == 3);
    CHECK(st["spec"]["replicas"] == 3);
    CHECK(st["metadata"]["generation"] == 2);
    json scale = J(c.Do("GET", base + "/scale"));
    CHECK(scale["kind"] == "Scale");
    CHECK(scale["spec"]["replicas"] == 3);
    CHECK(scale["status"]["selector"] == "a=b");
    json put = scale;
    put["spec"]["replicas"] = 5;
    CHECK(J(c.Do("PUT", base + "/scale", put.dump()))["spec"]["replicas"] == 5);
    CHECK(J(c.Do("GET", base))["metadata"]["generation"] == 3);
  }
  SECTION("finalizers hold deletion until they are removed") {
    json cm = Cm("held");
    cm["metadata"]["finalizers"] = {"example.com/hold"};
    REQUIRE(c.Do("POST", "/api/v1/namespaces/default/configmaps", cm.dump()).status == 201);
    auto del = c.Do("DELETE", "/api/v1/namespaces/default/configmaps/held");
    CHECK(del.status == 202);
    json held = J(c.Do("GET", "/api/v1/namespaces/default/configmaps/held"));
    CHECK(held["metadata"]["deletionTimestamp"].is_string());
    REQUIRE(c.Do("PATCH", "/api/v1/namespaces/default/configmaps/held",
                 R"({"metadata":{"finalizers":null}})", "application/merge-patch+json")
                .status == 200);
    CHECK(c.Do("GET", "/api/v1/namespaces/default/configmaps/held").status == 404);
  }
  SECTION("dry runs change nothing") {
    auto r = c.Do("POST", "/api/v1/namespaces/default/configmaps?dryRun=All", Cm("dry").dump());
    CHECK(r.status == 201);
    CHECK(c.Do("GET", "/api/v1/namespaces/default/configmaps/dry").status == 404);
  }
  SECTION("objects need an existing namespace") {
    auto r = c.Do("POST", "/api/v1/namespaces/nowhere/configmaps", Cm("x").dump());
    CHECK(r.status == 404);
    CHECK(J(r)["message"] == "namespaces \"nowhere\" not found");
  }
  SECTION("ClusterIPs and NodePorts are never handed out twice") {
    std::set<std::string> ips;
    std::set<int> ports;
    for (int i = 0; i < 20; ++i) {
      json svc = {{"metadata", {{"name", "s" + std::to_string(i)}}},
                  {"spec", {{"type", "NodePort"}, {"ports", {{{"port", 80}}}}}}};
      json out = J(c.Do("POST", "/api/v1/namespaces/default/services", svc.dump()));
      ips.insert(out["spec"]["clusterIP"].get<std::string>());
      ports.insert(out["spec"]["ports"][0]["nodePort"].get<int>());
    }
    CHECK(ips.size() == 20);
    CHECK(ports.size() == 20);
    json dup = {{"metadata", {{"name", "dup"}}},
                {"spec", {{"clusterIP", *ips.begin()}, {"ports", {{{"port", 80}}}}}}};
    auto r = c.Do("POST", "/api/v1/namespaces/default/services", dup.dump());
    CHECK(r.status == 422);
    CHECK(J(r)["message"].get<std::string>().find("already allocated") != std::string::npos);
  }
}
