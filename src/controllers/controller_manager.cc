#include "controllers/controller_manager.h"

#include <signal.h>

#include <vector>

#include "common/log.h"

namespace minik::controllers {

int RunControllerManager(const ManagerOptions& opts) {
  log::SetComponent("controller-manager");
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  auto c = std::make_shared<client::Client>(
      client::Config::FromCertDir(opts.server, opts.cert_dir, "controller-manager"));
  std::vector<std::unique_ptr<Controller>> ctrls;
  ctrls.push_back(NewNamespaceController(c));
  for (auto& ctrl : ctrls) {
    ctrl->Start();
    log::Info("started the {} controller", ctrl->name());
  }
  int sig;
  sigwait(&set, &sig);
  log::Info("shutting down");
  for (auto& ctrl : ctrls) {
    ctrl->Stop();
  }
  return 0;
}

}  // namespace minik::controllers
