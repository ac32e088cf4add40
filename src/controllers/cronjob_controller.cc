// The CronJob controller: not written yet (the controller manager skips it).

#include "controllers/workloads.h"

namespace minik::controllers {

std::unique_ptr<Controller> NewCronJobController(Context ctx) { return nullptr; }

}  // namespace minik::controllers
