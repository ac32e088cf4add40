// Decoding of untrusted JSON and YAML: limits on nesting and alias expansion,
// duplicate keys reported, errors that say where.

#include <catch2/catch.hpp>
#include <chrono>

#include "common/clock.h"
#include "common/json.h"

using namespace minik;

TEST_CASE("JSON: duplicate keys are reported with their path", "[json]") {
  Decoded d = ParseJson(R"({"spec":{"replicas":1,"replicas":2},"a":[{"b":1,"b":2}]})");
  CHECK(d.value["spec"]["replicas"] == 2);
  REQUIRE(d.duplicate_keys.size() == 2);
  CHECK(d.duplicate_keys[0] == ".spec.replicas");
  CHECK(d.duplicate_keys[1] == ".a[0].b");
}

TEST_CASE("JSON: deep nesting and malformed input are errors", "[json]") {
  std::string deep(100000, '[');
  CHECK_THROWS_WITH(ParseJson(deep), Catch::Contains("nesting is deeper"));
  CHECK_THROWS_AS(ParseJson("{\"a\":"), ParseError);
  CHECK_THROWS_AS(ParseJson("{} trailing"), ParseError);
  CHECK_THROWS_WITH(ParseJson("{\"a\": tru}"), Catch::Contains("line 1"));
}

TEST_CASE("YAML: core schema scalars and several documents", "[yaml]") {
  auto docs = ParseYamlDocuments(
      "a: 1\nb: true\nc: ~\nd: '1'\ne: 1.5\nf: 0x1f\ng: hello\nh: \"true\"\n---\n---\n- x\n");
  REQUIRE(docs.size() == 2);
  json& a = docs[0].value;
  CHECK(a["a"] == 1);
  CHECK(a["b"] == true);
  CHECK(a["c"].is_null());
  CHECK(a["d"] == "1");
  CHECK(a["e"] == 1.5);
  CHECK(a["f"] == 31);
  CHECK(a["g"] == "hello");
  CHECK(a["h"] == "true");
  CHECK(docs[1].value == json::array({"x"}));
}

TEST_CASE("YAML: anchors and aliases work, alias bombs stop early", "[yaml]") {
  Decoded d = ParseYaml("base: &b {x: 1}\nuse: *b\n");
  CHECK(d.value["use"]["x"] == 1);
  // The "billion laughs": each level doubles ten times.
  std::string bomb =
      "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
  std::string prev = "a";
  for (char c = 'b'; c <= 'i'; ++c) {
    std::string name(1, c);
    bomb += name + ": &" + name + " [";
    for (int i = 0; i < 9; ++i) {
      bomb += (i ? ",*" : "*") + prev;
    }
    bomb += "]\n";
    prev = name;
  }
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(ParseYaml(bomb), Catch::Contains("expand"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
}

TEST_CASE("YAML: deep nesting, duplicate keys and syntax errors", "[yaml]") {
  std::string flow(50000, '[');
  CHECK_THROWS_WITH(ParseYaml(flow), Catch::Contains("nesting is deeper"));
  std::string block;
  for (int i = 0; i < 5000; ++i) {
    block += std::string(static_cast<size_t>(i), ' ') + "k:\n";
  }
  CHECK_THROWS_AS(ParseYaml(block), ParseError);
  Decoded d = ParseYaml("a: 1\na: 2\n");
  CHECK(d.duplicate_keys == std::vector<std::string>{".a"});
  CHECK_THROWS_WITH(ParseYaml("a: [1, 2\n"), Catch::Contains("line"));
}

TEST_CASE("YAML: emitting and reading back a kubeconfig-like document", "[yaml]") {
  json c = {
      {"apiVersion", "v1"},
      {"clusters", {{{"name", "minik"}, {"cluster", {{"server", "https://127.0.0.1:1234"}}}}}},
      {"current-context", "minik"},
      {"empty", json::object()},
      {"list", json::array()},
      {"quoted", "true"},
      {"colon", "a: b"},
      {"num", "0123"}};
  CHECK(ParseYaml(ToYaml(c)).value == c);
}

TEST_CASE("Go durations parse as kubelet flags take them") {
  using std::chrono::milliseconds;
  CHECK(minik::ParseDuration("10s") == milliseconds(10000));
  CHECK(minik::ParseDuration("5m0s") == milliseconds(300000));
  CHECK(minik::ParseDuration("1h30m") == milliseconds(5400000));
  CHECK(minik::ParseDuration("500ms") == milliseconds(500));
  CHECK(minik::ParseDuration("1.5s") == milliseconds(1500));
  CHECK(minik::ParseDuration("0") == milliseconds(0));
  CHECK_FALSE(minik::ParseDuration(""));
  CHECK_FALSE(minik::ParseDuration("10"));
  CHECK_FALSE(minik::ParseDuration("-1s"));
  CHECK_FALSE(minik::ParseDuration("1x"));
  CHECK_FALSE(minik::ParseDuration("s"));
}
