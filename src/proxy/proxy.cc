#include "proxy/proxy.h"

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "client/client.h"
#include "common/exec.h"
#include "common/log.h"
#include "proxy/rules.h"

namespace minik::proxy {

namespace {

exec::Result Iptables(const std::string& table, std::vector<std::string> args) {
  exec::Command c;
  c.argv = {"iptables", "-w", "-t", table};
  c.argv.insert(c.argv.end(), args.begin(), args.end());
  return exec::Run(c);
}

std::string Save(const std::string& table) {
  exec::Command c;
  c.argv = {"iptables-save", "-t", table};
  return exec::Run(c).out;
}

// A rule list no generated chain has: marks chains found in the kernel whose
// rules are unknown, so the first sync rewrites or deletes them.
const std::vector<std::string> kUnknown = {"?"};

class Proxier {
 public:
  explicit Proxier(const ProxyOptions& o) : o_(o) {
    client_ = std::make_shared<client::Client>(
        client::Config::FromCertDir(o.server, o.cert_dir, "proxy"));
    cfg_.node_name = o.node_name;
    cfg_.cluster_cidr = o.cluster_cidr;
    cfg_.service_cidr = o.service_cidr;
    cfg_.nodeport_cidrs = o.nodeport_addresses;
  }

  // Wakes the sync loop (a change, or shutting down).
  void Wake() {
    {
      std::lock_guard lock(mu_);
      dirty_ = true;
    }
    cv_.notify_all();
  }

  void Run(const std::atomic<bool>& stop) {
    services_ = std::make_shared<client::Informer>(client_, client::resources::kServices);
    slices_ = std::make_shared<client::Informer>(client_, client::resources::kEndpointSlices);
    for (auto& inf : {services_, slices_}) {
      inf->AddHandlers({[this](const client::Object&) { Wake(); },
                        [this](const client::Object&, const client::Object&) { Wake(); },
                        [this](const client::Object&) { Wake(); }});
      inf->Start();
    }
    while (!stop && !(services_->synced() && slices_->synced())) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    TakeOver();
    auto last = std::chrono::steady_clock::now() - o_.min_sync_period;
    while (!stop) {
      {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, std::chrono::seconds(30), [&] { return dirty_ || stop.load(); });
        dirty_ = false;
      }
      if (stop) {
        break;
      }
      // Batch: changes that arrive within the period go into one sync.
      auto next = last + o_.min_sync_period;
      std::this_thread::sleep_until(next);
      {
        std::lock_guard lock(mu_);
        dirty_ = false;
      }
      last = std::chrono::steady_clock::now();
      if (!Sync()) {
        std::lock_guard lock(mu_);
        dirty_ = true;  // try again after the period
        std::this_thread::sleep_for(std::chrono::seconds(1));
      }
    }
    services_->Stop();
    slices_->Stop();
  }

 private:
  // The jumps from the built-in chains, and whatever chains of ours a
  // previous run left: the first sync rewrites or deletes them.
  void TakeOver() {
    // Inserted at the top in reverse, so they end up in the order Jumps() gives:
    // the rejections of Services without endpoints before MINIK-FORWARD accepts.
    auto jumps = Jumps();
    for (auto j = jumps.rbegin(); j != jumps.rend(); ++j) {
      const auto& [table, rule] = *j;
      std::vector<std::string> check = {"-C"}, insert = {"-I"};
      check.insert(check.end(), rule.begin(), rule.end());
      insert.insert(insert.end(), rule.begin(), rule.end());
      // The jump must exist before the chain does: create the chain first.
      Iptables(table, {"-N", rule.back()});
      if (!Iptables(table, check).ok()) {
        exec::Result r = Iptables(table, insert);
        if (!r.ok()) {
          log::Error("iptables -t {} -I {}: {}", table, rule[0], r.err);
        }
      }
    }
    for (const auto& c : OwnedChains(Save("nat"))) {
      applied_.nat[c] = kUnknown;
    }
    for (const auto& c : OwnedChains(Save("filter"))) {
      applied_.filter[c] = kUnknown;
    }
  }

  bool Sync() {
    auto t0 = std::chrono::steady_clock::now();
    // The informers' objects are immutable and shared: no copies.
    std::vector<client::Object> svc_objs = services_->List(), slice_objs = slices_->List();
    std::vector<const json*> services, slices;
    for (const auto& s : svc_objs) {
      services.push_back(s.get());
    }
    for (const auto& s : slice_objs) {
      slices.push_back(s.get());
    }
    std::vector<ServicePort> ports = ServicePortsOf(services, slices);
    Tables want = Render(ports, cfg_);
    std::string input = RestoreInput(applied_, want);
    auto t_render = std::chrono::steady_clock::now();
    if (!input.empty()) {
      exec::Command c;
      c.argv = {"iptables-restore", "--noflush", "--wait"};
      c.stdin_data = input;
      exec::Result r = exec::Run(c);
      if (!r.ok()) {
        log::Error("iptables-restore failed ({}); all chains are written again next time: {}",
                   r.exit_code, r.err);
        for (auto* chains : {&applied_.nat, &applied_.filter}) {
          for (auto& [_, rules] : *chains) {
            rules = kUnknown;
          }
        }
        return false;
      }
      applied_ = std::move(want);
    }
    for (const auto& args : StaleUdpFlows(ports, &udp_endpoints_)) {
      Conntrack(args);
    }
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    if (!input.empty()) {
      log::Info("synced {} service ports in {} ms ({} bytes of rules; {} ms to compute them)",
                ports.size(), ms, input.size(),
                std::chrono::duration_cast<std::chrono::milliseconds>(t_render - t0).count());
    }
    return true;
  }

  void Conntrack(std::vector<std::string> args) {
    exec::Command c;
    c.argv = {"conntrack"};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    exec::Result r = exec::Run(c);
    // Exit 1 with "0 flow entries have been deleted" is the common case.
    if (r.exit_code < 0 && !warned_conntrack_) {
      warned_conntrack_ = true;
      log::Warn(
          "conntrack is not installed (apt-get install conntrack): stale UDP flows to "
          "removed endpoints are not cleared");
    }
  }

  ProxyOptions o_;
  Config cfg_;
  std::shared_ptr<client::Client> client_;
  std::shared_ptr<client::Informer> services_, slices_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool dirty_ = true;
  Tables applied_;
  std::map<std::string, std::vector<std::string>> udp_endpoints_;
  bool warned_conntrack_ = false;
};

}  // namespace

void Cleanup() {
  for (const auto& [table, rule] : Jumps()) {
    std::vector<std::string> del = {"-D"};
    del.insert(del.end(), rule.begin(), rule.end());
    while (Iptables(table, del).ok()) {
    }
  }
  for (const char* table : {"nat", "filter"}) {
    std::vector<std::string> chains = OwnedChains(Save(table));
    if (chains.empty()) {
      continue;
    }
    std::string input = std::string("*") + table + "\n";
    for (const auto& c : chains) {
      input += ":" + c + " - [0:0]\n";
    }
    for (const auto& c : chains) {
      input += "-X " + c + "\n";
    }
    input += "COMMIT\n";
    exec::Command c;
    c.argv = {"iptables-restore", "--noflush", "--wait"};
    c.stdin_data = input;
    exec::Result r = exec::Run(c);
    if (!r.ok()) {
      log::Warn("proxy clean-up of the {} table: {}", table, r.err);
    }
  }
}

int RunProxy(const ProxyOptions& opts) {
  log::SetComponent("proxy");
  sigset_t set = exec::BlockTerminationSignals();
  std::atomic<bool> stop{false};
  Proxier p(opts);
  std::thread runner([&] { p.Run(stop); });
  exec::WaitForSignal(set);
  log::Info("shutting down");
  stop = true;
  p.Wake();
  runner.join();
  return 0;
}

}  // namespace minik::proxy
