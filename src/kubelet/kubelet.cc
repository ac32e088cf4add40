#include "kubelet/kubelet.h"

#include <signal.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <sys/mount.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "api/quantity.h"
#include "client/client.h"
#include "client/events.h"
#include "common/clock.h"
#include "common/exec.h"
#include "common/fs.h"
#include "common/heap.h"
#include "common/http.h"
#include "common/log.h"
#include "kubelet/eviction.h"
#include "kubelet/pod_worker.h"
#include "kubelet/server.h"

namespace minik::kubelet {
namespace {

std::string OsImage() {
  std::ifstream in("/etc/os-release");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("PRETTY_NAME=", 0) == 0) {
      std::string v = line.substr(12);
      if (v.size() >= 2 && v.front() == '"') {
        v = v.substr(1, v.size() - 2);
      }
      return v;
    }
  }
  return "Linux";
}

int64_t MemTotalBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemTotal:") {
      return kb * 1024;
    }
  }
  return 0;
}

class Kubelet {
 public:
  explicit Kubelet(const KubeletOptions& o) : o_(o) {
    ctx_.client = std::make_shared<client::Client>(
        client::Config::FromCertDir(o.server, o.cert_dir, "kubelet"));
    ctx_.events = std::make_shared<client::EventRecorder>(ctx_.client, "kubelet", o.node_name);
    ctx_.paths.root = o.root;
    ctx_.paths.node = o.node_name;
    fs::MakeDirs(ctx_.paths.RuntimeRoot(), 0700);
    fs::MakeDirs(o.root + "/kubelet/pods", 0750);
    fs::MakeDirs(o.root + "/log/pods", 0755);
    ctx_.runtime = NewOciRuntime(o.runtime, ctx_.paths.RuntimeRoot());
    CniConfig cni;
    cni.bridge = BridgeName(o.node_name);
    cni.subnet = o.pod_cidr;
    cni.state_dir = ctx_.paths.CniDir();
    ctx_.network = std::make_unique<PodNetwork>(cni);
    ctx_.network->EnsureMasquerade();
    ctx_.images = std::make_unique<images::ImageStore>(ctx_.paths.ImagesDir());
    ctx_.node_name = o.node_name;
    ctx_.node_ip = o.node_ip;
    ctx_.minik_binary = o.minik_binary;
    thresholds_ = eviction::ParseThresholds(o.eviction_hard.empty() ? eviction::kDefaultHard
                                                                    : o.eviction_hard);
  }

  void Run(const std::atomic<bool>& stop) {
    images::EnsureBuiltinImages(*ctx_.images, o_.minik_binary,
                                [](const std::string& s) { log::Info("images: {}", s); });
    RegisterNode();
    server_ = StartServer(ctx_, o_, [this](const std::string& ns, const std::string& name) {
      return Worker(ns, name);
    });
    pods_ = std::make_shared<client::Informer>(ctx_.client, client::resources::kPods, "",
                                               "spec.nodeName=" + o_.node_name);
    pods_->AddHandlers({[this](const client::Object& p) { Changed(p); },
                        [this](const client::Object&, const client::Object& p) { Changed(p); },
                        [this](const client::Object& p) { Gone(p); }});
    // Services first: containers get their variables from the start.
    ctx_.services = std::make_shared<client::Informer>(ctx_.client, client::resources::kServices);
    ctx_.services->Start();
    ctx_.services->WaitForSync(std::chrono::seconds(30));
    pods_->Start();
    auto next_lease = std::chrono::steady_clock::now();
    auto next_status = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    auto next_housekeeping = std::chrono::steady_clock::now();
    while (!stop) {
      auto now = std::chrono::steady_clock::now();
      if (now >= next_lease) {
        try {
          RenewLease();
        } catch (const std::exception& e) {
          log::Warn("lease: {}", e.what());
        }
        next_lease = now + std::chrono::seconds(10);
      }
      if (now >= next_status) {
        try {
          UpdateNodeStatus();
        } catch (const std::exception& e) {
          log::Warn("node status: {}", e.what());
        }
        next_status = now + std::chrono::seconds(60);
      }
      if (now >= next_housekeeping) {
        try {
          Housekeeping();
        } catch (const std::exception& e) {
          log::Warn("eviction: {}", e.what());
        }
        next_housekeeping = now + o_.housekeeping_interval;
      }
      Reap();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    pods_->Stop();
    ctx_.services->Stop();
    server_.reset();
  }

  // Stops every pod's containers (node shutdown, `minik stop`).
  void StopAll() {
    std::map<std::string, std::unique_ptr<PodWorker>> all;
    {
      std::lock_guard lock(mu_);
      all.swap(workers_);
    }
    std::vector<std::thread> ts;
    for (auto& [_, w] : all) {
      ts.emplace_back([&w] { w->Shutdown(); });
    }
    for (auto& t : ts) {
      t.join();
    }
  }

  void DetachAll() {
    std::lock_guard lock(mu_);
    for (auto& [_, w] : workers_) {
      w->Detach();
    }
  }

 private:
  PodWorker* Worker(const std::string& ns, const std::string& name) {
    std::lock_guard lock(mu_);
    for (auto& [_, w] : workers_) {
      client::Object p = pods_->Get(ns + "/" + name);
      if (p && GetString(*p, "metadata.uid") == w->uid()) {
        return w.get();
      }
    }
    return nullptr;
  }

  void Changed(const client::Object& p) {
    std::string uid = GetString(*p, "metadata.uid");
    std::lock_guard lock(mu_);
    auto it = workers_.find(uid);
    if (it == workers_.end()) {
      workers_[uid] = std::make_unique<PodWorker>(ctx_, p, Admit(*p));
    } else {
      it->second->Update(p);
    }
  }

  void Gone(const client::Object& p) {
    std::lock_guard lock(mu_);
    auto it = workers_.find(GetString(*p, "metadata.uid"));
    if (it != workers_.end()) {
      it->second->Deleted();
    }
  }

  void Reap() {
    std::vector<std::unique_ptr<PodWorker>> done;
    {
      std::lock_guard lock(mu_);
      for (auto it = workers_.begin(); it != workers_.end();) {
        if (it->second->finished()) {
          done.push_back(std::move(it->second));
          it = workers_.erase(it);
        } else {
          ++it;
        }
      }
    }
    // Workers join their threads outside the lock.
  }

  // Why a new pod may not start on this node under pressure ("" when it may),
  // as the kubelet's eviction admission says it: under memory pressure only
  // BestEffort pods are refused, under disk pressure every pod.
  std::string Admit(const json& pod) const {
    std::string phase = GetString(pod, "status.phase");
    if ((phase != "Pending" && !phase.empty()) || ::minik::Find(pod, "status.containerStatuses")) {
      return "";  // started before (a kubelet restart adopts it)
    }
    if (disk_pressure_) {
      return "The node had condition: [DiskPressure]. ";
    }
    if (memory_pressure_ && GetString(pod, "status.qosClass", "BestEffort") == "BestEffort") {
      return "The node had condition: [MemoryPressure]. ";
    }
    return "";
  }

  // Node-pressure eviction: observes the signals, keeps the pressure
  // conditions, and while a hard threshold is crossed evicts one pod per round,
  // the first in Kubernetes' ranking for the starved resource.
  void Housekeeping() {
    using Clock = std::chrono::steady_clock;
    auto observed = eviction::ObserveNode(o_.root, ctx_.paths.ImagesDir());
    auto crossed = eviction::Crossed(thresholds_, observed);
    Clock::time_point now = Clock::now();
    for (const auto& t : crossed) {
      (eviction::IsMemory(t.signal) ? last_memory_pressure_ : last_disk_pressure_) = now;
    }
    auto within = [&](Clock::time_point last) {
      return last != Clock::time_point{} && now - last < o_.eviction_pressure_transition_period;
    };
    bool memory = within(last_memory_pressure_), disk = within(last_disk_pressure_);
    if (memory != memory_pressure_ || disk != disk_pressure_) {
      // Node events name the node by its name, as the kubelet's do.
      json node = {{"kind", "Node"}, {"metadata", {{"name", o_.node_name}, {"uid", o_.node_name}}}};
      if (memory != memory_pressure_) {
        log::Info("node {}: memory pressure {}", o_.node_name, memory ? "begins" : "ends");
        ctx_.events->Event(node, "Normal",
                           memory ? "NodeHasInsufficientMemory" : "NodeHasSufficientMemory",
                           "Node " + o_.node_name + " status is now: " +
                               (memory ? "NodeHasInsufficientMemory" : "NodeHasSufficientMemory"));
      }
      if (disk != disk_pressure_) {
        log::Info("node {}: disk pressure {}", o_.node_name, disk ? "begins" : "ends");
        ctx_.events->Event(node, "Normal", disk ? "NodeHasDiskPressure" : "NodeHasNoDiskPressure",
                           "Node " + o_.node_name + " status is now: " +
                               (disk ? "NodeHasDiskPressure" : "NodeHasNoDiskPressure"));
      }
      memory_pressure_ = memory;
      disk_pressure_ = disk;
      UpdateNodeStatus();
    }
    if (crossed.empty()) {
      return;
    }
    // Memory first, as the kubelet orders its signals.
    std::stable_sort(crossed.begin(), crossed.end(), [](const auto& a, const auto& b) {
      return eviction::IsMemory(a.signal) && !eviction::IsMemory(b.signal);
    });
    const eviction::Threshold& t = crossed.front();
    std::string resource = eviction::SignalResource(t.signal);
    // Workers are only removed by Reap(), on this thread: the pointers stay valid.
    std::map<std::string, PodWorker*> workers;
    {
      std::lock_guard lock(mu_);
      for (auto& [uid, w] : workers_) {
        if (w->evicted() && !w->eviction_done()) {
          return;  // the last eviction is still releasing what the pod held
        }
        workers[uid] = w.get();
      }
    }
    std::vector<eviction::Candidate> candidates;
    for (const auto& [uid, w] : workers) {
      json pod = w->CurrentPod();
      std::string phase = GetString(pod, "status.phase");
      if (w->evicted() || phase == "Succeeded" || phase == "Failed" ||
          ::minik::Find(pod, "metadata.deletionTimestamp") ||
          pod["spec"].value("priority", 0) >= kSystemCriticalPriority) {
        continue;
      }
      eviction::Candidate c;
      c.uid = uid;
      c.priority = pod["spec"].value("priority", 0);
      for (const auto& ctr : pod["spec"].value("containers", json::array())) {
        const json* r = ::minik::Find(ctr, "resources.requests");
        if (r && r->contains(resource)) {
          c.request += api::QuantityMilli((*r)[resource]) / 1000;
        }
      }
      if (eviction::IsMemory(t.signal)) {
        c.usage = std::max<int64_t>(0, MemoryWorkingSet(ctx_.paths.PodCgroup(uid)));
      } else {
        eviction::DiskUse a = eviction::DiskUsage(ctx_.paths.PodDir(uid)),
                          b = eviction::DiskUsage(
                              ctx_.paths.PodLogDir(GetString(pod, "metadata.namespace"),
                                                   GetString(pod, "metadata.name"), uid));
        c.usage = resource == "inodes" ? a.inodes + b.inodes : a.bytes + b.bytes;
      }
      candidates.push_back(c);
    }
    if (candidates.empty()) {
      log::Warn("node {}: {} crossed, and no pod can be evicted", o_.node_name, t.text);
      return;
    }
    eviction::Rank(&candidates);
    const eviction::Candidate& victim = candidates.front();
    const eviction::Observation& obs = observed[t.signal];
    auto amount = [&](int64_t v) {
      return resource == "inodes" ? std::to_string(v) : std::to_string(v / 1024) + "Ki";
    };
    std::string message = "The node was low on resource: " + resource +
                          ". Threshold quantity: " + t.text.substr(t.text.find('<') + 1) +
                          ", available: " + amount(obs.available) + ". Pod was using " +
                          amount(victim.usage) + ", request is " + amount(victim.request) +
                          ", has larger consumption of " + resource + ". ";
    PodWorker* w = workers[victim.uid];
    log::Info("node {}: {} crossed; evicting pod {}: {}", o_.node_name, t.text,
              GetString(w->CurrentPod(), "metadata.name"), message);
    w->Evict(message);
  }

  json NodeStatus() {
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
    if (memory_pressure_) {
      add("MemoryPressure", "True", "KubeletHasInsufficientMemory",
          "kubelet has insufficient memory available");
    } else {
      add("MemoryPressure", "False", "KubeletHasSufficientMemory",
          "kubelet has sufficient memory available");
    }
    if (disk_pressure_) {
      add("DiskPressure", "True", "KubeletHasDiskPressure", "kubelet has disk pressure");
    } else {
      add("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure");
    }
    add("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available");
    add("Ready", "True", "KubeletReady", "kubelet is posting ready status");
    struct statvfs vfs;
    int64_t disk =
        statvfs(o_.root.c_str(), &vfs) == 0 ? int64_t(vfs.f_blocks) * int64_t(vfs.f_frsize) : 0;
    int64_t mem = MemTotalBytes();
    json capacity = {{"cpu", std::to_string(sysconf(_SC_NPROCESSORS_ONLN))},
                     {"memory", std::to_string(mem / 1024) + "Ki"},
                     {"pods", "110"},
                     {"ephemeral-storage", std::to_string(disk / 1024) + "Ki"},
                     {"hugepages-2Mi", "0"}};
    // Allocatable keeps 100Mi of memory back for the system, as kubelet's eviction threshold does.
    json allocatable = capacity;
    allocatable["memory"] =
        std::to_string(std::max<int64_t>(0, mem - 100 * 1024 * 1024) / 1024) + "Ki";
    utsname u;
    uname(&u);
    json images_list = json::array();
    {
      for (const auto& img : ctx_.images->List()) {
        json names = json::array();
        for (const auto& d : img.digests) {
          names.push_back(d);
        }
        for (const auto& r : img.refs) {
          names.push_back(r);
        }
        images_list.push_back({{"names", names}, {"sizeBytes", img.size}});
      }
    }
    return {{"capacity", capacity},
            {"allocatable", allocatable},
            {"conditions", cond},
            {"addresses",
             {{{"type", "InternalIP"}, {"address", o_.node_ip}},
              {{"type", "Hostname"}, {"address", o_.node_name}}}},
            {"daemonEndpoints", {{"kubeletEndpoint", {{"Port", o_.port}}}}},
            {"nodeInfo",
             {{"machineID", o_.node_name},
              {"systemUUID", o_.node_name},
              {"bootID", boot_id_},
              {"kernelVersion", u.release},
              {"osImage", OsImage()},
              {"containerRuntimeVersion", ctx_.runtime->Version()},
              {"kubeletVersion", "v1.32.0"},
              {"kubeProxyVersion", "v1.32.0"},
              {"operatingSystem", "linux"},
              {"architecture", "amd64"}}},
            {"images", images_list}};
  }

  void RegisterNode() {
    boot_id_ = NewUid();
    json node = {{"apiVersion", "v1"},
                 {"kind", "Node"},
                 {"metadata",
                  {{"name", o_.node_name},
                   {"labels",
                    {{"kubernetes.io/hostname", o_.node_name},
                     {"kubernetes.io/os", "linux"},
                     {"kubernetes.io/arch", "amd64"},
                     {"beta.kubernetes.io/os", "linux"},
                     {"beta.kubernetes.io/arch", "amd64"},
                     {"node-role.kubernetes.io/control-plane", ""},
                     {"node.kubernetes.io/exclude-from-external-load-balancers", ""}}},
                   {"annotations",
                    {{"node.alpha.kubernetes.io/ttl", "0"},
                     {"volumes.kubernetes.io/controller-managed-attach-detach", "true"}}}}},
                 {"spec", {{"podCIDR", o_.pod_cidr}, {"podCIDRs", {o_.pod_cidr}}}},
                 {"status", NodeStatus()}};
    for (int attempt = 0;; ++attempt) {
      try {
        ctx_.client->Post("/api/v1/nodes", node);
        log::Info("registered node {}", o_.node_name);
        ctx_.events->Event(node, "Normal", "RegisteredNode",
                           "Node " + o_.node_name + " registered");
        break;
      } catch (const client::ApiError& e) {
        if (e.code == 409) {
          UpdateNodeStatus();
          break;
        }
        if (attempt > 100) {
          throw;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
    RenewLease();
  }

  void UpdateNodeStatus() {
    json cur = ctx_.client->Get("/api/v1/nodes/" + o_.node_name);
    json next = cur;
    next["status"] = NodeStatus();
    // Conditions keep their transition times when they did not change.
    for (auto& c : next["status"]["conditions"]) {
      for (const auto& o : cur["status"].value("conditions", json::array())) {
        if (o.value("type", "") == c.value("type", "") &&
            o.value("status", "") == c.value("status", "")) {
          c["lastTransitionTime"] =
              o.value("lastTransitionTime", c.value("lastTransitionTime", ""));
        }
      }
    }
    ctx_.client->Put("/api/v1/nodes/" + o_.node_name + "/status", next);
  }

  void RenewLease() {
    std::string path =
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + o_.node_name;
    std::string now = FormatMicroTime(Now());
    try {
      ctx_.client->Patch(
          path,
          {{"spec",
            {{"holderIdentity", o_.node_name}, {"renewTime", now}, {"leaseDurationSeconds", 40}}}});
    } catch (const client::ApiError& e) {
      if (e.code != 404) {
        throw;
      }
      json node = ctx_.client->Get("/api/v1/nodes/" + o_.node_name);
      ctx_.client->Post(
          "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
          {{"apiVersion", "coordination.k8s.io/v1"},
           {"kind", "Lease"},
           {"metadata",
            {{"name", o_.node_name},
             {"namespace", "kube-node-lease"},
             {"ownerReferences",
              {{{"apiVersion", "v1"},
                {"kind", "Node"},
                {"name", o_.node_name},
                {"uid", GetString(node, "metadata.uid")}}}}}},
           {"spec",
            {{"holderIdentity", o_.node_name}, {"leaseDurationSeconds", 40}, {"renewTime", now}}}});
    }
    // A node marked NotReady while the kubelet was away reports Ready again.
    json node = ctx_.client->Get("/api/v1/nodes/" + o_.node_name);
    for (const auto& c : node["status"].value("conditions", json::array())) {
      if (c.value("type", "") == "Ready" && c.value("status", "") != "True") {
        UpdateNodeStatus();
      }
    }
  }

  // Pods at or above this priority (system-node-critical, system-cluster-critical)
  // are never evicted.
  static constexpr int kSystemCriticalPriority = 2000000000;

  KubeletOptions o_;
  KubeletContext ctx_;
  std::vector<eviction::Threshold> thresholds_;
  std::chrono::steady_clock::time_point last_memory_pressure_{}, last_disk_pressure_{};
  std::atomic<bool> memory_pressure_{false}, disk_pressure_{false};
  std::string boot_id_;
  std::shared_ptr<client::Informer> pods_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<PodWorker>> workers_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace

std::string BridgeName(const std::string& node_name) {
  std::string b = "mk-" + node_name;
  return b.substr(0, 15);
}

void CleanupNode(const std::string& root, const std::string& node) {
  Paths paths{root, node};
  std::string bridge = BridgeName(node);
  // Containers first: nothing may keep mounts or namespaces busy.
  try {
    auto rt = NewOciRuntime("", paths.RuntimeRoot());
    for (const auto& c : rt->List()) {
      try {
        rt->Kill(c.id, SIGKILL, true);
      } catch (const std::exception&) {
      }
    }
    for (int i = 0; i < 50; ++i) {
      bool running = false;
      for (const auto& c : rt->List()) {
        running = running || c.status == "running";
      }
      if (!running) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    for (const auto& c : rt->List()) {
      try {
        rt->Delete(c.id, true);
      } catch (const std::exception& e) {
        log::Warn("cleanup: {}", e.what());
      }
    }
  } catch (const std::exception& e) {
    log::Warn("cleanup: {}", e.what());
  }
  // Pod networks, from what CNI ADD returned.
  CniConfig cni;
  cni.bridge = bridge;
  cni.subnet = "0.0.0.0/0";
  cni.state_dir = paths.CniDir();
  PodNetwork net(cni);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(paths.CniDir() + "/results", ec)) {
    std::string uid = e.path().stem().string();
    try {
      net.Del(uid, paths.Netns(uid), "", "");
    } catch (const std::exception& ex) {
      log::Warn("cleanup: {}", ex.what());
    }
  }
  // Every mount under the node's directory, deepest first.
  std::vector<std::string> mounts;
  std::ifstream in("/proc/self/mounts");
  std::string dev, target, rest;
  while (in >> dev >> target && std::getline(in, rest)) {
    if (target == root || target.rfind(root + "/", 0) == 0) {
      mounts.push_back(target);
    }
  }
  std::sort(mounts.begin(), mounts.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& m : mounts) {
    if (umount2(m.c_str(), MNT_DETACH) != 0) {
      log::Warn("cleanup: unmount {}: {}", m, std::strerror(errno));
    }
  }
  for (const auto& e : std::filesystem::directory_iterator(root + "/run/netns", ec)) {
    unlink(e.path().c_str());
  }
  PodNetwork::RemoveMasquerade(bridge);
  exec::Command del;
  del.argv = {"ip", "link", "del", bridge};
  exec::Run(del);  // absent is fine
  RemoveCgroupTree(paths.CgroupParent());
  RemoveCgroupTree("/minik", false);  // goes only when no other node has cgroups here
}

int RunKubelet(const KubeletOptions& opts) {
  log::SetComponent("kubelet");
  sigset_t set = exec::BlockTerminationSignals({SIGUSR1});
  // After the signals are blocked: its thread must not take SIGTERM.
  HeapTrimmer trimmer;  // thousands of objects come and go
  std::atomic<bool> stop{false};
  Kubelet k(opts);
  std::thread runner([&] {
    try {
      k.Run(stop);
    } catch (const std::exception& e) {
      log::Error("{}", e.what());
      kill(getpid(), SIGUSR1);
    }
  });
  int sig = exec::WaitForSignal(set);
  stop = true;
  runner.join();
  if (sig == SIGTERM) {
    // The node is going down: containers stop with it.
    log::Info("stopping every pod's containers");
    k.StopAll();
  } else {
    k.DetachAll();
  }
  return sig == SIGUSR1 ? 1 : 0;
}

}  // namespace minik::kubelet
