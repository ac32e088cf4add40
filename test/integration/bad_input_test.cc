// The API server answers bad input with a clear error, never crashes, does not
// grow by more than tens of megabytes, and keeps serving what it had accepted.

#include <catch2/catch.hpp>
#include <chrono>
#include <set>

#include "apiserver_process.h"
#include "common/json.h"

using namespace minik;

namespace {

json Body(const http::ClientResponse& r) {
  try {
    return json::parse(r.body);
  } catch (const std::exception&) {
    return json::object();
  }
}

}  // namespace

TEST_CASE("bad bodies get clear errors and the server survives", "[badinput]") {
  testing::ApiServerProcess server("memory");
  server.Start();
  auto c = server.Client();
  REQUIRE(c.Do("POST", "/api/v1/namespaces/default/configmaps",
               R"({"metadata":{"name":"keep"},"data":{"k":"v"}})")
              .status == 201);
  long rss_before = server.RssKiB();

  SECTION("anonymous requests get 401 except health and version") {
    auto anon = server.Client(false);
    CHECK(anon.Do("GET", "/api/v1/namespaces").status == 401);
    CHECK(Body(anon.Do("GET", "/api/v1/namespaces"))["reason"] == "Unauthorized");
    CHECK(anon.Do("GET", "/healthz").status == 200);
    CHECK(anon.Do("GET", "/readyz").status == 200);
    CHECK(anon.Do("GET", "/livez").status == 200);
    CHECK(Body(anon.Do("GET", "/version/"))["minor"] == "32");
  }

  SECTION("bodies over 3 MiB get 413") {
    std::string big =
        R"({"metadata":{"name":"big"},"data":{"k":")" + std::string(4 << 20, 'x') + "\"}}";
    auto r = c.Do("POST", "/api/v1/namespaces/default/configmaps", big);
    CHECK(r.status == 413);
  }

  SECTION("a YAML alias bomb is rejected within a second") {
    std::string bomb =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx0: &x0 "
        "[lol,lol,lol,lol,lol,lol,lol,lol,lol,lol]\n";
    for (int i = 1; i < 10; ++i) {
      bomb += "x" + std::to_string(i) + ": &x" + std::to_string(i) + " [";
      for (int j = 0; j < 10; ++j) {
        bomb += (j ? ",*x" : "*x") + std::to_string(i - 1);
      }
      bomb += "]\n";
    }
    auto start = std::chrono::steady_clock::now();
    auto r = c.Do("POST", "/api/v1/namespaces/default/configmaps", bomb, "application/yaml");
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
    CHECK(r.status == 400);
    CHECK(Body(r)["message"].get<std::string>().find("expand") != std::string::npos);
  }

  SECTION("documents nested thousands deep are rejected") {
    std::string yaml =
        "metadata: {name: deep}\ndata: " + std::string(5000, '[') + std::string(5000, ']') + "\n";
    auto r = c.Do("POST", "/api/v1/namespaces/default/configmaps", yaml, "application/yaml");
    CHECK(r.status == 400);
    std::string js = R"({"metadata":{"name":"deep"},"x":)" + std::string(100000, '[') +
                     std::string(100000, ']') + "}";
    CHECK(c.Do("POST", "/api/v1/namespaces/default/configmaps", js).status == 400);
  }

  SECTION("YAML with a repeated key is rejected") {
    auto r = c.Do("POST", "/api/v1/namespaces/default/configmaps",
                  "metadata:\n  name: twice\ndata:\n  a: '1'\n  a: '2'\n", "application/yaml");
    CHECK(r.status == 400);
    CHECK(Body(r)["message"].get<std::string>().find("\"data.a\"") != std::string::npos);
  }

  SECTION("a protobuf body of a kind that is not served gets a clear error") {
    // runtime.Unknown{typeMeta{apiVersion: resource.k8s.io/v1beta1, kind: ResourceClaim}, raw: ""}
    std::string tm =
        std::string("\x0a\x17") + "resource.k8s.io/v1beta1" + "\x12\x0d" + "ResourceClaim";
    std::string body = std::string("k8s\0", 4) + "\x0a" + static_cast<char>(tm.size()) + tm +
                       std::string("\x12\x00", 2);
    auto r = c.Do("POST", "/api/v1/namespaces/default/configmaps", body,
                  "application/vnd.kubernetes.protobuf");
    CHECK(r.status == 400);
    INFO(r.body);
    CHECK(Body(r)["message"].get<std::string>().find("ResourceClaim are not served") !=
          std::string::npos);
  }

  SECTION("strict field validation names unknown and duplicate fields") {
    auto r = c.Do("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
                  R"({"metadata":{"name":"dup","name":"dup"},"data":{},"bogus":1})");
    CHECK(r.status == 400);
    std::string msg = Body(r)["message"];
    CHECK(msg.find("unknown field \"bogus\"") != std::string::npos);
    CHECK(msg.find("duplicate field \"metadata.name\"") != std::string::npos);
    // Without Strict the unknown field is dropped.
    r = c.Do("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Ignore",
             R"({"metadata":{"name":"lenient"},"bogus":1})");
    CHECK(r.status == 201);
    CHECK_FALSE(Body(r).contains("bogus"));
  }

  SECTION("invalid objects get 422 naming the field") {
    auto r = c.Do("POST", "/apis/apps/v1/namespaces/default/deployments",
                  R"({"metadata":{"name":"Bad_Name"},"spec":{"selector":{"matchLabels":{"a":"b"}},
                      "template":{"metadata":{"labels":{"a":"c"}},"spec":{"containers":[{"name":"x"}]}}}})");
    CHECK(r.status == 422);
    json b = Body(r);
    CHECK(b["reason"] == "Invalid");
    std::set<std::string> fields;
    for (const auto& cause : b["details"]["causes"]) {
      fields.insert(cause["field"].get<std::string>());
    }
    CHECK(fields.count("metadata.name"));
    CHECK(fields.count("spec.template.metadata.labels"));
    CHECK(fields.count("spec.template.spec.containers[0].image"));
  }

  SECTION("wrong JSON types and garbage get 400") {
    CHECK(c.Do("POST", "/apis/apps/v1/namespaces/default/deployments",
               R"({"metadata":{"name":"t"},"spec":{"replicas":"three"}})")
              .status == 400);
    CHECK(c.Do("POST", "/api/v1/namespaces/default/configmaps", "\x01\x02garbage").status == 400);
    CHECK(c.Do("POST", "/api/v1/namespaces/default/configmaps", "k8s\x00\x0a\xff",
               "application/vnd.kubernetes.protobuf")
              .status == 400);
    CHECK(c.Do("POST", "/api/v1/namespaces/default/configmaps", "{}", "text/csv").status == 415);
    CHECK(c.Do("PATCH", "/api/v1/namespaces/default/configmaps/keep", "[1,2",
               "application/json-patch+json")
              .status == 400);
  }

  SECTION("a stale update gets 409 Conflict") {
    json cm = Body(c.Do("GET", "/api/v1/namespaces/default/configmaps/keep"));
    json stale = cm;
    cm["data"]["k"] = "v2";
    REQUIRE(c.Do("PUT", "/api/v1/namespaces/default/configmaps/keep", cm.dump()).status == 200);
    stale["data"]["k"] = "v3";
    auto r = c.Do("PUT", "/api/v1/namespaces/default/configmaps/keep", stale.dump());
    CHECK(r.status == 409);
    CHECK(Body(r)["reason"] == "Conflict");
  }

  // After all of it: alive, small, and the accepted object is intact.
  CHECK(server.Alive());
  CHECK(server.RssKiB() - rss_before < 64 * 1024);
  json keep = Body(c.Do("GET", "/api/v1/namespaces/default/configmaps/keep"));
  CHECK(keep["data"]["k"].is_string());
}
