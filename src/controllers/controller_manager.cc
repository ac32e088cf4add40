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
  HeapTrimmer trimmer;  // thousands of objects come and go
  sigset_t set = exec::BlockTerminationSignals();
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
  bool lost = false;
  while (!stop) {
    for (int i = 0; i < elector.renew_seconds() * 10 && !stop; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!stop && !elector.Renew()) {
      // Another instance leads now: stop at once rather than act twice.
      log::Error("lost the lease kube-system/kube-controller-manager; exiting");
      lost = true;
      break;
    }
  }
  log::Info("shutting down");
  for (auto& ctrl : ctrls) {
    ctrl->Stop();
  }
  ctx.informers->Stop();
  if (lost) {
    _exit(1);
  }
  waiter.join();
  return 0;
}

}  // namespace minik::controllers
