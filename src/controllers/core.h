#pragma once
// The controllers of cluster plumbing (not workloads): garbage collection,
// service accounts, endpoints and endpoint slices, volumes, node lifecycle,
// pod garbage collection.

#include <memory>

#include "controllers/controller.h"

namespace minik::controllers {

// Deletes dependents whose owners are gone, honours foreground and orphan
// propagation, and removes the foregroundDeletion / orphan finalizers.
std::unique_ptr<Controller> NewGarbageCollector(Context ctx);
// A `default` ServiceAccount in every namespace.
std::unique_ptr<Controller> NewServiceAccountController(Context ctx);
// The ConfigMap `kube-root-ca.crt` with the cluster CA in every namespace
// (null when the context has no CA).
std::unique_ptr<Controller> NewRootCaPublisher(Context ctx);
// Endpoints for every Service with a selector.
std::unique_ptr<Controller> NewEndpointsController(Context ctx);
// EndpointSlices (at most 100 endpoints each) for every Service with a selector.
std::unique_ptr<Controller> NewEndpointSliceController(Context ctx);
// Binds claims to volumes, provisions hostPath volumes for the default
// `standard` class under the node's data directory, and reclaims them.
std::unique_ptr<Controller> NewPersistentVolumeController(Context ctx);
// Marks nodes whose Lease stops being renewed NotReady, taints them, and
// evicts their pods after the tolerations' time.
std::unique_ptr<Controller> NewNodeLifecycleController(Context ctx);
// Deletes pods bound to nodes that no longer exist and the oldest finished
// pods beyond a threshold.
std::unique_ptr<Controller> NewPodGCController(Context ctx);

}  // namespace minik::controllers
