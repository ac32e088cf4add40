#pragma once
// `minik controller-manager`: the control loops that make the cluster converge.
// Each controller watches the API server through informers and acts through
// the API server only.

#include <memory>
#include <string>

#include "client/client.h"

namespace minik::controllers {

class Controller {
 public:
  virtual ~Controller() = default;
  virtual std::string name() const = 0;
  virtual void Start() = 0;
  virtual void Stop() = 0;
};

struct ManagerOptions {
  std::string server;
  std::string cert_dir;  // ca.crt, controller-manager.crt, controller-manager.key
  std::string data_dir;  // the node's data directory (hostPath volumes go under volumes/)
};

// Runs until SIGTERM or SIGINT.
int RunControllerManager(const ManagerOptions& opts);

}  // namespace minik::controllers
