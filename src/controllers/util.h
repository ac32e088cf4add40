#pragma once
// Helpers the workload controllers share: ownership (controller references,
// adoption), pod state (active, ready, available) and pod creation from a
// template, as Kubernetes' controller utilities define them.

#include <string>
#include <vector>

#include "client/client.h"
#include "common/clock.h"
#include "common/json.h"

namespace minik::controllers {

// The owner reference with controller=true, or null.
const json* ControllerRef(const json& obj);
// An owner reference making `owner` the controller of a dependent.
json NewControllerRef(const json& owner);
// True when `obj` is controlled by the object with this uid.
bool IsControlledBy(const json& obj, const std::string& owner_uid);
// The key ("ns/name") of the `kind` that controls `obj`, when the object of
// that name in `owners` is the very one referenced (same UID), else "". So a
// pod of a deleted owner never counts for a new owner made under the same
// name (upstream's resolveControllerRef).
std::string ResolveControllerRef(const json& obj, const std::string& kind,
                                 const client::Informer& owners);
// True when an informer's update replaced an object by another of the same
// name (deleted and made again while the watch was away).
bool Replaced(const json& old_obj, const json& obj);

bool IsPodActive(const json& pod);       // not finished and not being deleted
bool IsPodTerminating(const json& pod);  // has a deletionTimestamp
bool IsPodReady(const json& pod);
// Ready for at least `min_ready_seconds` as of `now`.
bool IsPodAvailable(const json& pod, int64_t min_ready_seconds, SystemTime now);
// When the pod last became Ready (its Ready condition's lastTransitionTime).
bool PodReadySince(const json& pod, SystemTime* since);

// A pod for `owner` from its pod template (`template_` with metadata and spec).
json PodFromTemplate(const json& template_, const json& owner, const std::string& generate_name);

// FNV-1a of a JSON document's canonical text, rendered as Kubernetes renders
// pod-template-hash values (digits and consonants only).
std::string TemplateHash(const json& template_, int64_t collision_count = 0);

// Sets or replaces a condition of `status.conditions` by type; returns true
// when something changed. lastTransitionTime changes only with the status.
bool SetCondition(json& obj, const std::string& type, const std::string& status,
                  const std::string& reason, const std::string& message,
                  bool with_update_time = false);
const json* GetCondition(const json& obj, const std::string& type);

int64_t IntAt(const json& obj, const char* path, int64_t def = 0);
// An IntOrString such as maxSurge ("25%" or 1) resolved against `total`.
int64_t ScaledValue(const json& v, int64_t total, bool round_up);

}  // namespace minik::controllers
