// Decodes the protobuf bodies that the real kubectl 1.32 sent for each
// `kubectl create <generator>` (test/fixtures/protobuf, captured by
// test/tools/capture_kubectl_bodies.py) and compares every field with
// kubectl's own JSON rendering of the same object.

#include <catch2/catch.hpp>

#include "api/protobuf.h"
#include "api/resources.h"
#include "api/types.h"
#include "common/fs.h"

using namespace minik;
using namespace minik::api;

namespace {

std::string FixtureDir() {
  const char* src = std::getenv("MINIK_SOURCE_DIR");
  return std::string(src ? src : ".") + "/test/fixtures/protobuf";
}

// kubectl's JSON leaves out what the protobuf carries as explicit zero values
// (and `null` timestamps); compare what either side says has a value.
json Normalize(const json& v) {
  if (v.is_object()) {
    json out = json::object();
    for (auto it = v.begin(); it != v.end(); ++it) {
      json n = Normalize(it.value());
      if (n.is_null() || (n.is_object() && n.empty())) {
        continue;
      }
      out[it.key()] = n;
    }
    return out;
  }
  if (v.is_array()) {
    json out = json::array();
    for (const auto& e : v) {
      out.push_back(Normalize(e));
    }
    return out;
  }
  if (v.is_string() && v.get<std::string>().empty()) {
    return nullptr;
  }
  if (v.is_number_unsigned()) {
    return static_cast<int64_t>(v.get<uint64_t>());
  }
  return v;
}

// Lists the paths where a and b differ, for a readable failure.
void Diff(const json& a, const json& b, const std::string& path, std::vector<std::string>& out) {
  if (a.type() != b.type()) {
    out.push_back(path + ": " + a.dump() + " != " + b.dump());
    return;
  }
  if (a.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (!b.contains(it.key())) {
        out.push_back(path + "." + it.key() + ": only in decoded: " + it.value().dump());
      } else {
        Diff(it.value(), b[it.key()], path + "." + it.key(), out);
      }
    }
    for (auto it = b.begin(); it != b.end(); ++it) {
      if (!a.contains(it.key())) {
        out.push_back(path + "." + it.key() + ": only in kubectl's JSON: " + it.value().dump());
      }
    }
    return;
  }
  if (a.is_array() && a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i) {
      Diff(a[i], b[i], path + "[" + std::to_string(i) + "]", out);
    }
    return;
  }
  if (a != b) {
    out.push_back(path + ": " + a.dump() + " != " + b.dump());
  }
}

}  // namespace

TEST_CASE("protobuf bodies from kubectl create decode to kubectl's JSON", "[protobuf]") {
  json index = ParseJson(fs::ReadFile(FixtureDir() + "/index.json")).value;
  REQUIRE(index.size() >= 20);
  const auto& registry = ResourceRegistry::Builtin();
  const auto& types = TypeTable::Builtin();
  for (auto& [name, meta] : index.items()) {
    INFO("fixture " << name);
    std::string body = fs::ReadFile(FixtureDir() + "/" + name + ".pb");
    json expected = ParseJson(fs::ReadFile(FixtureDir() + "/" + name + ".json")).value;
    ProtobufEnvelope env = DecodeEnvelope(body);
    CHECK(env.api_version == expected["apiVersion"]);
    CHECK(env.kind == expected["kind"]);
    const ResourceInfo* r = registry.FindKind(env.api_version, env.kind);
    REQUIRE(r != nullptr);
    json decoded = DecodeMessage(types, r->type_name, env.raw);
    decoded["apiVersion"] = env.api_version;
    decoded["kind"] = env.kind;
    std::vector<std::string> diffs;
    Diff(Normalize(decoded), Normalize(expected), "", diffs);
    std::string all;
    for (const auto& d : diffs) {
      all += d + "\n";
    }
    INFO(all);
    CHECK(diffs.empty());
  }
}

TEST_CASE("protobuf decoding rejects what it cannot read, saying where", "[protobuf]") {
  const auto& types = TypeTable::Builtin();
  CHECK_THROWS_WITH(DecodeEnvelope("{\"kind\":\"Pod\"}"), Catch::Contains("magic"));
  std::string body = fs::ReadFile(FixtureDir() + "/deployment.pb");
  ProtobufEnvelope env = DecodeEnvelope(body);
  // Truncated anywhere inside the object: an error, never a crash.
  for (size_t cut = 1; cut < env.raw.size(); cut += 7) {
    try {
      DecodeMessage(types, "apps.v1.Deployment", env.raw.substr(0, cut));
    } catch (const ProtobufError&) {
    }
  }
  CHECK_THROWS_AS(DecodeMessage(types, "apps.v1.Deployment", env.raw.substr(0, env.raw.size() - 3)),
                  ProtobufError);
  // Field 99 (wire type 0) is not a field of ObjectMeta.
  std::string unknown = std::string("\x0a\x03\xb8\x06\x01", 5);
  CHECK_THROWS_WITH(DecodeMessage(types, "apps.v1.Deployment", unknown),
                    Catch::Contains("unknown field number 103") || Catch::Contains("ObjectMeta"));
  // A length that runs past the end of the body.
  CHECK_THROWS_WITH(DecodeMessage(types, "apps.v1.Deployment", std::string("\x0a\x7f\x0a", 3)),
                    Catch::Contains("runs past the end"));
}
