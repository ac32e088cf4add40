// The Job controller: not written yet (the controller manager skips it).

#include "controllers/workloads.h"

namespace minik::controllers {

std::unique_ptr<Controller> NewJobController(Context ctx) { return nullptr; }

}  // namespace minik::controllers
