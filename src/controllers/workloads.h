#pragma once
// Pieces the workload controllers (ReplicaSet, Deployment, StatefulSet,
// DaemonSet, Job) share, and their constructors.

#include <memory>
#include <vector>

#include "client/client.h"
#include "controllers/controller.h"

namespace minik::controllers {

// The objects of `informer` in `owner`'s namespace that `owner` controls,
// after adopting orphans its selector matches and releasing those it no
// longer matches (patching their ownerReferences). When `deleting`, nothing
// is adopted. The objects are the informer's (or the adopted ones), not copies.
std::vector<client::Object> ClaimShared(client::Client& c, const client::Informer& informer,
                                        const json& owner, bool deleting);
// As ClaimShared, as copies the caller may change.
std::vector<json> ClaimObjects(client::Client& c, const client::Informer& informer,
                               const json& owner, bool deleting);
inline std::vector<client::Object> ClaimPods(client::Client& c, const client::Informer& pods,
                                             const json& owner, bool deleting) {
  return ClaimShared(c, pods, owner, deleting);
}

std::unique_ptr<Controller> NewReplicaSetController(Context ctx);
std::unique_ptr<Controller> NewReplicationControllerController(Context ctx);
std::unique_ptr<Controller> NewDeploymentController(Context ctx);
std::unique_ptr<Controller> NewStatefulSetController(Context ctx);
std::unique_ptr<Controller> NewDaemonSetController(Context ctx);
std::unique_ptr<Controller> NewJobController(Context ctx);
std::unique_ptr<Controller> NewCronJobController(Context ctx);

}  // namespace minik::controllers
