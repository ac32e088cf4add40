// A write the API server acknowledged survives `kill -9` at any moment: clients
// stream writes, the server is killed several times mid-stream, and after each
// restart every acknowledged write is there and revisions never go backwards.

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <random>
#include <set>

#include "apiserver_process.h"
#include "common/json.h"

using namespace minik;

TEST_CASE("acknowledged writes survive kill -9 of the API server", "[durability]") {
  testing::ApiServerProcess server("sqlite");
  server.Start();
  std::mutex mu;
  std::map<std::string, int64_t> acked;  // name -> resourceVersion
  int64_t max_rev_seen = 0;
  std::mt19937 rng(42);
  for (int round = 0; round < 4; ++round) {
    INFO("round " << round);
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int t = 0; t < 6; ++t) {
      writers.emplace_back([&, t] {
        auto client = server.Client();
        for (int i = 0; !stop; ++i) {
          std::string name =
              "r" + std::to_string(round) + "-w" + std::to_string(t) + "-" + std::to_string(i);
          json cm = {{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata", {{"name", name}}},
                     {"data", {{"i", std::to_string(i)}}}};
          auto r = client.Do("POST", "/api/v1/namespaces/default/configmaps", cm.dump());
          if (r.status == 201) {
            int64_t rv =
                std::stoll(json::parse(r.body)["metadata"]["resourceVersion"].get<std::string>());
            std::lock_guard lock(mu);
            acked[name] = rv;
          } else if (r.status == 0) {
            return;  // the server is gone
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 700));
    server.Kill(SIGKILL);
    stop = true;
    for (auto& w : writers) {
      w.join();
    }
    server.Start();
    auto client = server.Client();
    auto r = client.Do("GET", "/api/v1/namespaces/default/configmaps");
    REQUIRE(r.status == 200);
    json list = json::parse(r.body);
    std::set<std::string> present;
    for (const auto& item : list["items"]) {
      present.insert(item["metadata"]["name"].get<std::string>());
    }
    size_t missing = 0;
    int64_t max_acked = 0;
    for (const auto& [name, rv] : acked) {
      if (!present.count(name)) {
        ++missing;
        UNSCOPED_INFO("lost acknowledged write " << name << " at revision " << rv);
      }
      max_acked = std::max(max_acked, rv);
    }
    CHECK(missing == 0);
    CHECK(acked.size() > static_cast<size_t>(round) * 10);
    int64_t list_rev = std::stoll(list["metadata"]["resourceVersion"].get<std::string>());
    CHECK(list_rev >= max_acked);
    CHECK(list_rev >= max_rev_seen);
    max_rev_seen = list_rev;
    // A new write after the restart gets a revision above everything before.
    json cm = {{"metadata", {{"name", "after-" + std::to_string(round)}}}};
    auto w = client.Do("POST", "/api/v1/namespaces/default/configmaps", cm.dump());
    REQUIRE(w.status == 201);
    CHECK(std::stoll(json::parse(w.body)["metadata"]["resourceVersion"].get<std::string>()) >
          list_rev);
  }
}
