#pragma once
// Shared parts of minik's benchmarks: a closed-loop load generator with N
// clients, and a real etcd (Debian's etcd-server) started on loopback as the
// peer measured in the same run.

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "cli/profile.h"
#include "common/base64.h"
#include "common/exec.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/json.h"
#include "testing.h"

namespace minik::bench {

struct Result {
  double ops_per_sec = 0;
  double p50_ms = 0, p99_ms = 0;
  long errors = 0;
};

// Runs `op(client_index, iteration)` from `clients` threads for `seconds`.
// `op` returns false on error.
inline Result Load(int clients, double seconds, const std::function<bool(int, long)>& op) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> lat(static_cast<size_t>(clients));
  std::atomic<long> errors{0};
  std::vector<std::thread> ts;
  auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < clients; ++c) {
    ts.emplace_back([&, c] {
      for (long i = 0; !stop; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        if (!op(c, i)) {
          ++errors;
        }
        lat[static_cast<size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : ts) {
    t.join();
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> all;
  for (auto& l : lat) {
    all.insert(all.end(), l.begin(), l.end());
  }
  std::sort(all.begin(), all.end());
  Result r;
  r.ops_per_sec = static_cast<double>(all.size()) / elapsed;
  if (!all.empty()) {
    r.p50_ms = all[all.size() / 2];
    r.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  r.errors = errors;
  return r;
}

// A real etcd on loopback, in a temp dir; stopped and removed at scope exit.
class Etcd {
 public:
  Etcd() {
    client_port_ = cli::FreePort();
    uint16_t peer = cli::FreePort();
    std::string c = "http://127.0.0.1:" + std::to_string(client_port_);
    std::string p = "http://127.0.0.1:" + std::to_string(peer);
    exec::Spawn s;
    s.argv = {"etcd",
              "--name",
              "bench",
              "--data-dir",
              dir_.path() + "/etcd",
              "--listen-client-urls",
              c,
              "--advertise-client-urls",
              c,
              "--listen-peer-urls",
              p,
              "--initial-advertise-peer-urls",
              p,
              "--initial-cluster",
              "bench=" + p,
              "--log-level",
              "error"};
    s.log_file = dir_.path() + "/etcd.log";
    s.die_with_parent = true;
    pid_ = exec::StartProcess(s);
    http::Client h(c, {});
    for (int i = 0; i < 200; ++i) {
      if (h.Do("GET", "/health").status == 200) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("etcd did not start: " + fs::ReadFile(s.log_file));
  }
  ~Etcd() {
    kill(pid_, SIGTERM);
    int status;
    waitpid(pid_, &status, 0);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(client_port_); }
  std::string version() const {
    exec::Command c;
    c.argv = {"etcd", "--version"};
    std::string out = exec::Run(c).out;
    return out.substr(0, out.find('\n'));
  }

 private:
  testing::TempDir dir_;
  uint16_t client_port_;
  int pid_ = 0;
};

inline void PrintRow(const std::string& what, int clients, const Result& mine, const Result& peer) {
  std::printf("%-28s %7d %12.0f %9.2f %9.2f %12.0f %9.2f %9.2f %7.2fx\n", what.c_str(), clients,
              mine.ops_per_sec, mine.p50_ms, mine.p99_ms, peer.ops_per_sec, peer.p50_ms,
              peer.p99_ms, peer.ops_per_sec > 0 ? mine.ops_per_sec / peer.ops_per_sec : 0.0);
  if (mine.errors || peer.errors) {
    std::printf("  (errors: minik %ld, etcd %ld)\n", mine.errors, peer.errors);
  }
  std::fflush(stdout);
}

inline void PrintHeader(const std::string& title) {
  std::printf("\n%s\n%-28s %7s %12s %9s %9s %12s %9s %9s %8s\n", title.c_str(), "operation",
              "clients", "minik op/s", "p50 ms", "p99 ms", "etcd op/s", "p50 ms", "p99 ms",
              "ratio");
}

}  // namespace minik::bench
