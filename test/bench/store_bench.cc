// test/bench/store: writes/s and reads/s through minik's sqlite store with N
// concurrent clients, and the same workload against a real etcd on loopback
// (its v3 JSON gateway) in the same run.
//
// The minik store is called in-process; etcd is reached over loopback HTTP,
// as every etcd client must. The API benchmark (api_bench) compares minik
// over HTTPS with the same etcd.

#include <cstdlib>

#include "bench.h"
#include "store/registry.h"

using namespace minik;

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  std::string value(512, 'v');
  bench::Etcd etcd;
  testing::TempDir dir;
  store::RegisterBuiltins();
  store::StoreOptions so;
  so.data_dir = dir.path();
  auto st = store::Create("sqlite", so);
  std::printf(
      "store benchmark: minik sqlite store (in-process) vs %s (loopback HTTP), %gs per row, "
      "512-byte values\n",
      etcd.version().c_str(), seconds);
  bench::PrintHeader("writes: create a new key");
  for (int clients : {1, 8, 64}) {
    auto mine = bench::Load(clients, seconds, [&](int c, long i) {
      st->Create("/registry/configmaps/bench/w" + std::to_string(clients) + "-" +
                     std::to_string(c) + "-" + std::to_string(i),
                 value);
      return true;
    });
    std::vector<http::Client> hs;
    for (int c = 0; c < clients; ++c) {
      hs.emplace_back(etcd.url(), http::ClientOptions{});
    }
    auto peer = bench::Load(clients, seconds, [&](int c, long i) {
      json body = {{"key", base64::Encode("/registry/configmaps/bench/w" + std::to_string(clients) +
                                          "-" + std::to_string(c) + "-" + std::to_string(i))},
                   {"value", base64::Encode(value)}};
      return hs[static_cast<size_t>(c)].Do("POST", "/v3/kv/put", body.dump()).status == 200;
    });
    bench::PrintRow("create", clients, mine, peer);
  }
  bench::PrintHeader("reads: get one key");
  for (int clients : {1, 8, 64}) {
    auto mine = bench::Load(clients, seconds, [&](int c, long i) {
      st->Get("/registry/configmaps/bench/w1-0-" + std::to_string(i % 100));
      return true;
    });
    std::vector<http::Client> hs;
    for (int c = 0; c < clients; ++c) {
      hs.emplace_back(etcd.url(), http::ClientOptions{});
    }
    auto peer = bench::Load(clients, seconds, [&](int c, long i) {
      json body = {
          {"key", base64::Encode("/registry/configmaps/bench/w1-0-" + std::to_string(i % 100))}};
      return hs[static_cast<size_t>(c)].Do("POST", "/v3/kv/range", body.dump()).status == 200;
    });
    bench::PrintRow("get", clients, mine, peer);
  }
  return 0;
}
