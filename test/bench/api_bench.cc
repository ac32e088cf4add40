// test/bench/api: writes/s and reads/s through minik's HTTPS API (create and
// get of ConfigMaps, as kubectl and controllers do them) with N concurrent
// clients, against the same workload on a real etcd on loopback in the same
// run. Both acknowledge a write only once it is on disk.

#include <cstdlib>

#include "../integration/apiserver_process.h"
#include "bench.h"

using namespace minik;

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  std::string value(512, 'v');
  bench::Etcd etcd;
  testing::ApiServerProcess api("sqlite");
  api.Start();
  std::printf(
      "API benchmark: minik apiserver (HTTPS, sqlite store) vs %s (loopback HTTP JSON gateway), "
      "%gs per row\n",
      etcd.version().c_str(), seconds);
  bench::PrintHeader("writes: create a ConfigMap (512-byte value)");
  for (int clients : {1, 8, 64}) {
    std::vector<http::Client> mc, ec;
    for (int c = 0; c < clients; ++c) {
      mc.push_back(api.Client());
      ec.emplace_back(etcd.url(), http::ClientOptions{});
    }
    auto mine = bench::Load(clients, seconds, [&](int c, long i) {
      json cm = {{"apiVersion", "v1"},
                 {"kind", "ConfigMap"},
                 {"metadata",
                  {{"name", "w" + std::to_string(clients) + "-" + std::to_string(c) + "-" +
                                std::to_string(i)}}},
                 {"data", {{"v", value}}}};
      return mc[static_cast<size_t>(c)]
                 .Do("POST", "/api/v1/namespaces/default/configmaps", cm.dump())
                 .status == 201;
    });
    auto peer = bench::Load(clients, seconds, [&](int c, long i) {
      json cm = {{"apiVersion", "v1"},
                 {"kind", "ConfigMap"},
                 {"metadata",
                  {{"name", "w" + std::to_string(clients) + "-" + std::to_string(c) + "-" +
                                std::to_string(i)}}},
                 {"data", {{"v", value}}}};
      json body = {
          {"key", base64::Encode("/registry/configmaps/default/w" + std::to_string(clients) + "-" +
                                 std::to_string(c) + "-" + std::to_string(i))},
          {"value", base64::Encode(cm.dump())}};
      return ec[static_cast<size_t>(c)].Do("POST", "/v3/kv/put", body.dump()).status == 200;
    });
    bench::PrintRow("create configmap", clients, mine, peer);
  }
  bench::PrintHeader("reads: get a ConfigMap");
  for (int clients : {1, 8, 64}) {
    std::vector<http::Client> mc, ec;
    for (int c = 0; c < clients; ++c) {
      mc.push_back(api.Client());
      ec.emplace_back(etcd.url(), http::ClientOptions{});
    }
    auto mine = bench::Load(clients, seconds, [&](int c, long i) {
      return mc[static_cast<size_t>(c)]
                 .Do("GET", "/api/v1/namespaces/default/configmaps/w1-0-" + std::to_string(i % 100))
                 .status == 200;
    });
    auto peer = bench::Load(clients, seconds, [&](int c, long i) {
      json body = {
          {"key", base64::Encode("/registry/configmaps/default/w1-0-" + std::to_string(i % 100))}};
      return ec[static_cast<size_t>(c)].Do("POST", "/v3/kv/range", body.dump()).status == 200;
    });
    bench::PrintRow("get configmap", clients, mine, peer);
  }
  std::printf("\nminik apiserver resident memory after the run: %ld MiB\n", api.RssKiB() / 1024);
  return 0;
}
