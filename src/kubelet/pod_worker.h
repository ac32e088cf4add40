#pragma once
// The worker of one pod: a loop that brings the pod's sandbox, volumes and
// containers to what its spec asks, and writes its status back. One worker
// per pod, each on its own thread, driven by changes of the pod and a tick.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "client/client.h"
#include "client/events.h"
#include "common/clock.h"
#include "kubelet/container.h"
#include "kubelet/images/image_store.h"
#include "kubelet/network.h"
#include "kubelet/runtime/runtime.h"
#include "kubelet/volumes.h"

namespace minik::kubelet {

// What every pod worker shares (safe for concurrent use unless noted).
struct KubeletContext {
  std::shared_ptr<client::Client> client;
  std::shared_ptr<client::EventRecorder> events;
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<PodNetwork> network;
  std::unique_ptr<images::ImageStore> images;  // safe for concurrent pulls
  // Every Service, for the environment variables of service links.
  std::shared_ptr<client::Informer> services;
  Paths paths;
  std::string node_name, node_ip;
  std::string minik_binary;
};

class PodWorker {
 public:
  // With `reject` set, the pod is not admitted: it fails at once with that
  // message and runs nothing (a node under pressure).
  PodWorker(KubeletContext& ctx, client::Object pod, std::string reject = "");
  ~PodWorker();
  // A newer version of the pod from the informer.
  void Update(client::Object pod);
  // The pod object is gone from the API server.
  void Deleted();
  // Stops the worker thread without touching the containers (kubelet shutdown).
  void Detach();
  // Stops every container and tears the sandbox down (node shutdown).
  void Shutdown();
  // Evicts the pod (node pressure): its containers are killed, its sandbox and
  // volumes removed, and it fails with reason Evicted and `message`.
  void Evict(const std::string& message);
  // Evicted or failed to admit; its resources are being or have been released.
  bool evicted() const;
  // The eviction is done: containers stopped, sandbox and volumes removed.
  bool eviction_done() const { return evicted_; }
  bool finished() const { return finished_; }
  std::string uid() const { return uid_; }
  std::string name() const { return name_; }

  // The running container of `name` (for exec, attach, logs): id, dir, pid.
  struct Running {
    std::string id, dir, log_path, previous_log_path;
    int pid = 0;
    bool running = false;
  };
  std::optional<Running> Find(const std::string& container) const;
  std::string PodIp() const;
  std::string Netns() const;
  json CurrentPod() const;

 private:
  struct ContainerRec {
    int attempt = -1;  // the latest attempt (restartCount == attempt once restarted)
    bool running = false;
    bool started = false;  // startup probe passed (or none)
    bool ready = false;    // readiness
    std::string image_ref, image_id;
    std::string started_at;
    SystemTime running_since{};
    // The last termination of this container.
    json last_terminated;
    json current_terminated;  // when not running and not restarting
    // Waiting with a reason (ContainerCreating, CrashLoopBackOff, ErrImagePull, ...).
    std::string waiting_reason, waiting_message;
    SystemTime next_start{};
    int backoff_seconds = 0;
    // Probes.
    int liveness_failures = 0, readiness_failures = 0, readiness_successes = 0,
        startup_failures = 0;
    SystemTime next_liveness{}, next_readiness{}, next_startup{};
  };

  void Loop();
  void Sync();
  void EnsureSandbox();
  void TeardownSandbox();
  void Terminate(int64_t grace_seconds, bool delete_object);
  bool StartContainer(const json& c, ContainerRec& rec, bool init);
  void StopContainer(const json& c, ContainerRec& rec, int64_t grace_seconds);
  void Observe(const json& c, ContainerRec& rec);
  void RunProbes(const json& c, ContainerRec& rec);
  // Runs a probe or hook handler (exec, httpGet, tcpSocket, sleep): true on success.
  bool Handler(const json& handler, const ContainerRec& rec, int timeout_seconds, std::string* out);
  void Adopt();
  void WriteStatus();
  // Makes the containers' current attempts visible to Find (other threads).
  void Publish();
  std::vector<std::string> EnvFor(const json& c, const images::ImageConfig& image);
  std::vector<std::pair<std::string, std::string>> ServiceLinkEnv(const json& pod) const;
  std::string LogPath(const std::string& name, int attempt) const;

  KubeletContext& ctx_;
  std::string uid_, ns_, name_;
  // Guards pod_, deleted_, pod_ip_, published_: what the API handlers read.
  mutable std::mutex mu_;
  client::Object pod_;
  bool deleted_ = false;
  std::map<std::string, Running> published_;
  // The worker thread's own state.
  std::map<std::string, ContainerRec> recs_;
  std::string pod_ip_;
  bool sandbox_ready_ = false;
  bool volumes_ready_ = false;
  std::string volume_error_;
  std::map<std::string, std::string> volume_paths_;
  std::map<std::string, bool> volume_read_only_;
  SystemTime volumes_refreshed_{};
  TokenCache tokens_;                 // service account tokens of projected volumes
  std::string evict_message_;         // guarded by mu_
  std::atomic<bool> evicted_{false};  // the eviction is done
  std::string start_time_;
  json last_status_;
  std::condition_variable cv_;
  bool wake_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

}  // namespace minik::kubelet
