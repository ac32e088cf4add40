#pragma once
// Internal to the api library: the defaulting and validation functions of the
// built-in kinds, used by builtin_resources.cc.

#include <string>
#include <vector>

#include "api/status.h"
#include "api/validation.h"
#include "common/json.h"

namespace minik::api {

// Defaulting (defaults.cc).
void DefaultPodSpec(json& spec, bool is_pod);
void DefaultPodTemplate(json& template_);
void DefaultPod(json& obj);
void DefaultDeployment(json& obj);
void DefaultReplicaSet(json& obj);
void DefaultStatefulSet(json& obj);
void DefaultDaemonSet(json& obj);
void DefaultJob(json& obj);
void DefaultCronJob(json& obj);
void DefaultService(json& obj);
void DefaultSecret(json& obj);
void DefaultNamespace(json& obj);
void DefaultPersistentVolume(json& obj);
void DefaultPersistentVolumeClaim(json& obj);
void DefaultEndpoints(json& obj);
void DefaultEndpointSlice(json& obj);
void DefaultStorageClass(json& obj);
void DefaultPriorityClass(json& obj);
void DefaultRoleBinding(json& obj);
void DefaultIngress(json& obj);
void DefaultReplicationController(json& obj);
void DefaultHorizontalPodAutoscaler(json& obj);

// Validation (validation.cc). Each appends causes with field paths.
using Causes = std::vector<Cause>;
void ValidatePod(const json& obj, const json* old, Causes& c);
void ValidateDeployment(const json& obj, const json* old, Causes& c);
void ValidateReplicaSet(const json& obj, const json* old, Causes& c);
void ValidateStatefulSet(const json& obj, const json* old, Causes& c);
void ValidateDaemonSet(const json& obj, const json* old, Causes& c);
void ValidateJob(const json& obj, const json* old, Causes& c);
void ValidateCronJob(const json& obj, const json* old, Causes& c);
void ValidateService(const json& obj, const json* old, Causes& c);
void ValidateConfigMap(const json& obj, const json* old, Causes& c);
void ValidateSecret(const json& obj, const json* old, Causes& c);
void ValidatePersistentVolume(const json& obj, const json* old, Causes& c);
void ValidatePersistentVolumeClaim(const json& obj, const json* old, Causes& c);
void ValidateIngress(const json& obj, const json* old, Causes& c);
void ValidateRoleBinding(const json& obj, const json* old, Causes& c);
void ValidateStorageClass(const json& obj, const json* old, Causes& c);
void ValidatePriorityClass(const json& obj, const json* old, Causes& c);
void ValidatePodDisruptionBudget(const json& obj, const json* old, Causes& c);
void ValidateEndpointSlice(const json& obj, const json* old, Causes& c);
void ValidateReplicationController(const json& obj, const json* old, Causes& c);
void ValidatePodTemplate(const json& obj, const json* old, Causes& c);
void ValidateHorizontalPodAutoscaler(const json& obj, const json* old, Causes& c);

}  // namespace minik::api
