// The StatefulSet controller: not written yet (the controller manager skips it).

#include "controllers/workloads.h"

namespace minik::controllers {

std::unique_ptr<Controller> NewStatefulSetController(Context ctx) { return nullptr; }

}  // namespace minik::controllers
