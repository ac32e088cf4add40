#include "node/hollow_nodes.h"

#include <arpa/inet.h>
#include <signal.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "client/client.h"
#include "client/events.h"
#include "client/workqueue.h"
#include "common/clock.h"
#include "common/exec.h"
#include "common/heap.h"
#include "common/log.h"

namespace minik::node {
namespace {

class HollowNodes {
 public:
  HollowNodes(const HollowOptions& o, std::shared_ptr<client::Client> c)
      : o_(o), client_(c), events_(std::make_shared<client::EventRecorder>(c, "kubelet")) {
    if (o.first_index < 0 ||
        static_cast<uint64_t>(o.first_index + o.count) * block_ > kPodRangeSize) {
      throw std::runtime_error("--count " + std::to_string(o.count) + " nodes from index " +
                               std::to_string(o.first_index) + " with --pods " + o_.pods +
                               " do not fit the hollow nodes' pod range 10.64.0.0/11 (" +
                               std::to_string(kPodRangeSize / block_) +
                               " nodes of this size): ask for fewer");
    }
    for (int i = 0; i < o.count; ++i) {
      int index = o.first_index + i;
      names_[o.name_prefix + std::to_string(index)] = index;
    }
    pods_ = std::make_shared<client::Informer>(client_, client::resources::kPods);
    pods_->AddHandlers({[this](const client::Object& p) { Changed(*p); },
                        [this](const client::Object& old, const client::Object& p) {
                          // A pod made again under its name (seen after a relist).
                          if (GetString(*old, "metadata.uid") != GetString(*p, "metadata.uid")) {
                            Forget(*old);
                          }
                          Changed(*p);
                        },
                        [this](const client::Object& p) { Forget(*p); }});
  }

  void Run(const std::atomic<bool>& stop) {
    for (const auto& [name, index] : names_) {
      Register(name, index);
    }
    pods_->Start();
    // Every address already given is known before any is handed out.
    pods_->WaitForSync();
    std::vector<std::thread> workers;
    for (int i = 0; i < 4; ++i) {
      workers.emplace_back([this] { Work(); });
    }
    auto next_lease = std::chrono::steady_clock::now();
    while (!stop) {
      if (std::chrono::steady_clock::now() >= next_lease) {
        for (const auto& [name, index] : names_) {
          try {
            RenewLease(name);
            // A node marked NotReady while it was silent reports Ready again.
            json node = client_->Get("/api/v1/nodes/" + name);
            bool ready = false;
            for (const auto& c : node["status"].value("conditions", json::array())) {
              ready = ready || (c.value("type", "") == "Ready" && c.value("status", "") == "True");
            }
            if (!ready) {
              Register(name, index);
            }
          } catch (const std::exception& e) {
            log::Warn("lease {}: {}", name, e.what());
          }
        }
        next_lease = std::chrono::steady_clock::now() + std::chrono::seconds(o_.lease_seconds);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    queue_.ShutDown();
    for (auto& w : workers) {
      w.join();
    }
    pods_->Stop();
  }

 private:
  // Pod CIDRs: node i gets the i-th block of 10.64.0.0/11 (below the
  // service CIDR 10.96.0.0/12), a /24 or larger when its pod capacity needs.
  static constexpr uint32_t kPodRange = (10u << 24) | (64u << 16), kPodRangeSize = 1u << 21;
  uint32_t BlockSize() const {
    uint32_t size = 256;
    while (size < static_cast<uint32_t>(std::max(0, std::atoi(o_.pods.c_str()))) + 2) {
      size *= 2;
    }
    return size;
  }
  static std::string Dotted(uint32_t a) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
           std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
  }
  uint32_t PodBlock(int index) const { return kPodRange + static_cast<uint32_t>(index) * block_; }
  std::string PodCidr(int index) const {
    int prefix = 32;
    for (uint32_t s = block_; s > 1; s /= 2) {
      --prefix;
    }
    return Dotted(PodBlock(index)) + "/" + std::to_string(prefix);
  }

  void Register(const std::string& name, int index) {
    std::string now = FormatTime(Now());
    json cond = json::array();
    auto add = [&](const char* type, const char* status, const char* reason, const char* msg) {
      cond.push_back({{"type", type},
                      {"status", status},
                      {"reason", reason},
                      {"message", msg},
                      {"lastHeartbeatTime", now},
                      {"lastTransitionTime", now}});
    };
    add("MemoryPressure", "False", "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available");
    add("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure");
    add("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available");
    add("Ready", "True", "KubeletReady", "kubelet is posting ready status");
    json resources = {
        {"cpu", o_.cpu}, {"memory", o_.memory}, {"pods", o_.pods}, {"ephemeral-storage", "100Gi"}};
    json node = {{"apiVersion", "v1"},
                 {"kind", "Node"},
                 {"metadata",
                  {{"name", name},
                   {"labels",
                    {{"kubernetes.io/hostname", name},
                     {"kubernetes.io/os", "linux"},
                     {"kubernetes.io/arch", "amd64"},
                     {"beta.kubernetes.io/os", "linux"},
                     {"beta.kubernetes.io/arch", "amd64"},
                     {"type", "hollow"}}},
                   {"annotations", {{"node.alpha.kubernetes.io/ttl", "0"}}}}},
                 {"spec", {{"podCIDR", PodCidr(index)}, {"podCIDRs", {PodCidr(index)}}}},
                 {"status",
                  {{"capacity", resources},
                   {"allocatable", resources},
                   {"conditions", cond},
                   {"addresses",
                    {{{"type", "InternalIP"},
                      {"address", "10.240." + std::to_string(index / 250) + "." +
                                      std::to_string(index % 250 + 2)}},
                     {{"type", "Hostname"}, {"address", name}}}},
                   {"daemonEndpoints", {{"kubeletEndpoint", {{"Port", 10250}}}}},
                   {"nodeInfo",
                    {{"machineID", name},
                     {"systemUUID", name},
                     {"bootID", NewUid()},
                     {"kernelVersion", "hollow"},
                     {"osImage", "minik hollow node"},
                     {"containerRuntimeVersion", "hollow://0.1.0"},
                     {"kubeletVersion", "v1.32.0"},
                     {"kubeProxyVersion", "v1.32.0"},
                     {"operatingSystem", "linux"},
                     {"architecture", "amd64"}}}}}};
    try {
      client_->Post("/api/v1/nodes", node);
      log::Info("registered node {}", name);
      events_->Event(node, "Normal", "RegisteredNode",
                     "Node " + name + " event: Registered Node " + name + " in Controller");
    } catch (const client::ApiError& e) {
      if (e.code != 409) {
        throw;
      }
      // Registered before: refresh its status (Ready again after a restart).
      json cur = client_->Get("/api/v1/nodes/" + name);
      cur["status"] = node["status"];
      client_->Put("/api/v1/nodes/" + name + "/status", cur);
    }
    RenewLease(name);
  }

  void RenewLease(const std::string& name) {
    std::string path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + name;
    std::string now = FormatMicroTime(Now());
    try {
      client_->Patch(
          path,
          {{"spec", {{"holderIdentity", name}, {"renewTime", now}, {"leaseDurationSeconds", 40}}}});
    } catch (const client::ApiError& e) {
      if (e.code != 404) {
        throw;
      }
      json node = client_->Get("/api/v1/nodes/" + name);
      client_->Post(
          "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
          {{"apiVersion", "coordination.k8s.io/v1"},
           {"kind", "Lease"},
           {"metadata",
            {{"name", name},
             {"namespace", "kube-node-lease"},
             {"ownerReferences",
              {{{"apiVersion", "v1"},
                {"kind", "Node"},
                {"name", name},
                {"uid", GetString(node, "metadata.uid")}}}}}},
           {"spec", {{"holderIdentity", name}, {"leaseDurationSeconds", 40}, {"renewTime", now}}}});
    }
  }

  bool Ours(const json& pod) const { return names_.count(GetString(pod, "spec.nodeName")) > 0; }

  void Changed(const json& pod) {
    if (!Ours(pod)) {
      return;
    }
    // Addresses given before a restart stay taken.
    std::string node = GetString(pod, "spec.nodeName");
    in_addr ip{};
    if (inet_pton(AF_INET, GetString(pod, "status.podIP").c_str(), &ip) == 1) {
      uint32_t block = PodBlock(names_.at(node)), a = ntohl(ip.s_addr);
      if (a > block && a < block + block_) {
        std::lock_guard lock(mu_);
        std::string uid = GetString(pod, "metadata.uid");
        if (!ips_.count(uid)) {
          ips_[uid] = {node, a - block};
          used_[node].insert(a - block);
        }
      }
    }
    queue_.Add(client::KeyOf(pod));
  }

  void Forget(const json& pod) {
    std::lock_guard lock(mu_);
    auto it = ips_.find(GetString(pod, "metadata.uid"));
    if (it != ips_.end()) {
      used_[it->second.node].erase(it->second.host);
      ips_.erase(it);
    }
  }

  void Work() {
    while (auto key = queue_.Get()) {
      try {
        Sync(*key);
      } catch (const std::exception& e) {
        log::Warn("pod {}: {}", *key, e.what());
        queue_.AddAfter(*key, std::chrono::seconds(1));
      }
      queue_.Done(*key);
    }
  }

  // The pod's address in its node's pod CIDR: the lowest one free there
  // (the first is the node's own, the last the broadcast address).
  std::string AllocateIp(const json& pod) {
    std::lock_guard lock(mu_);
    std::string uid = GetString(pod, "metadata.uid");
    std::string node = GetString(pod, "spec.nodeName");
    uint32_t block = PodBlock(names_.at(node));
    if (auto it = ips_.find(uid); it != ips_.end()) {
      return Dotted(block + it->second.host);
    }
    std::set<uint32_t>& used = used_[node];
    for (uint32_t host = 2; host + 1 < block_; ++host) {
      if (!used.count(host)) {
        used.insert(host);
        ips_[uid] = {node, host};
        return Dotted(block + host);
      }
    }
    throw std::runtime_error("no pod IP left on node " + node);
  }

  void Sync(const std::string& key) {
    client::Object obj = pods_->Get(key);
    if (!obj || !Ours(*obj)) {
      return;
    }
    const json& pod = *obj;
    std::string ns = GetString(pod, "metadata.namespace");
    std::string name = GetString(pod, "metadata.name");
    std::string path = "/api/v1/namespaces/" + ns + "/pods/" + name;
    if (Find(pod, "metadata.deletionTimestamp")) {
      // Containers stop at once; then the pod object goes.
      try {
        client_->Delete(path, {{"gracePeriodSeconds", 0},
                               {"preconditions", {{"uid", GetString(pod, "metadata.uid")}}}});
      } catch (const client::ApiError& e) {
        if (e.code != 404 && e.code != 409) {
          throw;
        }
      }
      return;
    }
    std::string phase = GetString(pod, "status.phase");
    if (phase == "Succeeded" || phase == "Failed") {
      return;
    }
    std::string now = FormatTime(Now());
    std::string restart = GetString(pod, "spec.restartPolicy", "Always");
    const json* started = Find(pod, "status.startTime");
    if (phase == "Running" && restart != "Always" && started && started->is_string()) {
      SystemTime t;
      ParseTime(started->get<std::string>(), &t);
      double ran = std::chrono::duration<double>(Now() - t).count();
      if (ran + 0.05 < o_.run_seconds) {
        queue_.AddAfter(
            key, std::chrono::milliseconds(static_cast<long>((o_.run_seconds - ran) * 1000) + 50));
        return;
      }
      int code = 0;
      if (const json* a = Find(pod, "metadata.annotations");
          a && a->contains("hollow.minik.dev/exit-code")) {
        code = std::atoi((*a)["hollow.minik.dev/exit-code"].get<std::string>().c_str());
      }
      Finish(pod, code);
      return;
    }
    if (phase == "Running") {
      return;
    }
    std::string ip = AllocateIp(pod);
    json statuses = json::array();
    for (const auto& c : pod["spec"].value("containers", json::array())) {
      statuses.push_back({{"name", c.value("name", "")},
                          {"image", c.value("image", "")},
                          {"imageID", "hollow://" + c.value("image", "")},
                          {"containerID", "hollow://" + RandomSuffix(12)},
                          {"ready", true},
                          {"started", true},
                          {"restartCount", 0},
                          {"state", {{"running", {{"startedAt", now}}}}}});
    }
    json conditions = json::array();
    for (const char* t :
         {"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"}) {
      conditions.push_back({{"type", t},
                            {"status", "True"},
                            {"lastProbeTime", nullptr},
                            {"lastTransitionTime", now}});
    }
    int index = names_.at(GetString(pod, "spec.nodeName"));
    std::string host_ip =
        "10.240." + std::to_string(index / 250) + "." + std::to_string(index % 250 + 2);
    json status = {{"phase", "Running"},
                   {"conditions", conditions},
                   {"hostIP", host_ip},
                   {"hostIPs", {{{"ip", host_ip}}}},
                   {"podIP", ip},
                   {"podIPs", {{{"ip", ip}}}},
                   {"startTime", now},
                   {"containerStatuses", statuses},
                   {"qosClass", GetString(pod, "status.qosClass", "BestEffort")}};
    client_->Patch(path + "/status", {{"status", status}});
    events_->Event(pod, "Normal", "Started", "Started hollow containers");
    if (restart != "Always") {
      queue_.AddAfter(key,
                      std::chrono::milliseconds(static_cast<long>(o_.run_seconds * 1000) + 50));
    }
  }

  void Finish(const json& pod, int code) {
    std::string now = FormatTime(Now());
    json statuses = json::array();
    for (const auto& c : pod["status"].value("containerStatuses", json::array())) {
      json s = c;
      s["ready"] = false;
      s["started"] = false;
      s["state"] = {{"terminated",
                     {{"exitCode", code},
                      {"reason", code == 0 ? "Completed" : "Error"},
                      {"startedAt", GetString(c, "state.running.startedAt", now)},
                      {"finishedAt", now},
                      {"containerID", c.value("containerID", "")}}}};
      statuses.push_back(s);
    }
    json conditions = pod["status"].value("conditions", json::array());
    for (auto& c : conditions) {
      std::string t = c.value("type", "");
      if (t == "Ready" || t == "ContainersReady") {
        c["status"] = "False";
        c["reason"] = "PodCompleted";
        c["lastTransitionTime"] = now;
      }
    }
    client_->Patch("/api/v1/namespaces/" + GetString(pod, "metadata.namespace") + "/pods/" +
                       GetString(pod, "metadata.name") + "/status",
                   {{"status",
                     {{"phase", code == 0 ? "Succeeded" : "Failed"},
                      {"conditions", conditions},
                      {"containerStatuses", statuses}}}});
  }

  HollowOptions o_;
  std::shared_ptr<client::Client> client_;
  std::shared_ptr<client::EventRecorder> events_;
  std::map<std::string, int> names_;
  std::shared_ptr<client::Informer> pods_;
  client::WorkQueue queue_;
  std::mutex mu_;
  uint32_t block_ = BlockSize();  // addresses per node
  struct Address {
    std::string node;
    uint32_t host = 0;  // offset in the node's block
  };
  std::map<std::string, Address> ips_;              // pod uid -> its address
  std::map<std::string, std::set<uint32_t>> used_;  // node -> offsets taken
};

}  // namespace

int RunHollowNodes(const HollowOptions& opts) {
  log::SetComponent("hollow-nodes");
  sigset_t set = exec::BlockTerminationSignals();
  // After the signals are blocked: its thread must not take SIGTERM.
  HeapTrimmer trimmer;  // thousands of objects come and go
  auto c = std::make_shared<client::Client>(
      client::Config::FromCertDir(opts.server, opts.cert_dir, "hollow-nodes"));
  std::atomic<bool> stop{false};
  std::unique_ptr<HollowNodes> made;
  try {
    made = std::make_unique<HollowNodes>(opts, c);
  } catch (const std::exception& e) {
    log::Error("{}", e.what());
    return 2;
  }
  HollowNodes& h = *made;
  std::thread runner([&] {
    try {
      h.Run(stop);
    } catch (const std::exception& e) {
      log::Error("{}", e.what());
      kill(getpid(), SIGTERM);
    }
  });
  exec::WaitForSignal(set);
  stop = true;
  runner.join();
  return 0;
}

}  // namespace minik::node
