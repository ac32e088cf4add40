#include "controllers/controller_manager.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "client/events.h"
#include "client/leader_election.h"
#include "common/clock.h"
#include "common/exec.h"
#include "common/heap.h"
#include "common/log.h"
#include "controllers/controller.h"
#include "controllers/core.h"
#include "controllers/workloads.h"

namespace minik::controllers {

int RunControllerManager(const ManagerOptions& opts) {
  log::SetComponent("controller-manager");
  sigset_t set = exec::BlockTerminationSignals();
  // After the signals are blocked: its thread must not take SIGTERM.
  HeapTrimmer trimmer;  // thousands of objects come and go
  Context ctx;
  ctx.client = std::make_shared<client::Client>(
      client::Config::FromCertDir(opts.server, opts.cert_dir, "controller-manager"));
  ctx.informers = std::make_shared<client::InformerFactory>(ctx.client);
  ctx.events = std::make_shared<client::EventRecorder>(ctx.client, "controller-manager");
  ctx.node_data_dir = opts.data_dir;
  ctx.root_ca_pem = ctx.client->config().ca_pem;
  // Only the holder of the lease runs controllers; another instance stands by.
  std::atomic<bool> stop{false};
  std::thread waiter([&] {
    exec::WaitForSignal(set);
    stop = true;
  });
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  client::LeaderElector elector(ctx.client, "kube-system", "kube-controller-manager",
                                std::string(host) + "_" + NewUid());
  if (!elector.Acquire(stop)) {
    waiter.join();
    return 0;
  }
  std::vector<std::unique_ptr<Controller>> ctrls;
  ctrls.push_back(NewNamespaceController(ctx));
  ctrls.push_back(NewReplicaSetController(ctx));
  ctrls.push_back(NewReplicationControllerController(ctx));
  ctrls.push_back(NewDeploymentController(ctx));
  ctrls.push_back(NewStatefulSetController(ctx));
  ctrls.push_back(NewDaemonSetController(ctx));
  ctrls.push_back(NewJobController(ctx));
  ctrls.push_back(NewCronJobController(ctx));
  ctrls.push_back(NewServiceAccountController(ctx));
  ctrls.push_back(NewRootCaPublisher(ctx));
  ctrls.push_back(NewEndpointsController(ctx));
  ctrls.push_back(NewEndpointSliceController(ctx));
  ctrls.push_back(NewPersistentVolumeController(ctx));
  ctrls.push_back(NewNodeLifecycleController(ctx));
  ctrls.push_back(NewPodGCController(ctx));
  ctrls.push_back(NewGarbageCollector(ctx));
  // Controllers not built yet are null.
  ctrls.erase(std::remove(ctrls.begin(), ctrls.end(), nullptr), ctrls.end());
  ctx.informers->Start();
  if (!ctx.informers->WaitForSync(std::chrono::seconds(60))) {
    log::Warn("informers did not sync within 60s; starting anyway");
  }
  for (auto& ctrl : ctrls) {
    ctrl->Start();
  }
  log::Info("started {} controllers", ctrls.size());
  // Another instance leading means stopping at once rather than acting twice.
  bool lost = !elector.KeepRenewed(stop);
  log::Info("shutting down");
  for (auto& ctrl : ctrls) {
    ctrl->Stop();
  }
  ctx.informers->Stop();
  if (lost) {
    _exit(1);
  }
  elector.Release();
  waiter.join();
  return 0;
}

}  // namespace minik::controllers
