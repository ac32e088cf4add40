// The DaemonSet controller: not written yet (the controller manager skips it).

#include "controllers/workloads.h"

namespace minik::controllers {

std::unique_ptr<Controller> NewDaemonSetController(Context ctx) { return nullptr; }

}  // namespace minik::controllers
