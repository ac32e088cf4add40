#pragma once
// The registry of API resources. Serving a resource is one registration here:
// its group-version-kind, names, scope, subresources and the hooks that give it
// Kubernetes' behaviour (defaults, validation, table columns). Every handler,
// discovery document and OpenAPI document is derived from this list.

#include <functional>
#include <string>
#include <vector>

#include "api/status.h"
#include "common/json.h"

namespace minik::api {

struct TableColumn {
  std::string name;
  std::string type;    // string, integer, date, number, boolean
  std::string format;  // name for the NAME column, else ""
  std::string description;
  int priority = 0;  // 1: shown only with -o wide
};

struct ResourceInfo {
  std::string group;  // "" for core
  std::string version;
  std::string kind;
  std::string plural;
  std::string singular;
  bool namespaced = true;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  std::vector<std::string> subresources;  // "status", "scale", ...
  // The verbs discovery lists; a request for any other gets 405.
  std::vector<std::string> verbs = {"create", "delete", "deletecollection", "get",
                                    "list",   "patch",  "update",           "watch"};
  // Objects that are not stored (reviews, bindings, component statuses) are
  // served by the API server itself; they have no key in the store.
  bool virtual_resource = false;
  // A version that is not the one stored (autoscaling/v1 HorizontalPodAutoscaler,
  // events.k8s.io/v1 Event) names the stored one and converts objects to and
  // from it; everything else (defaults, validation, storage) is the stored one's.
  std::string storage_api_version;
  std::function<json(const json& obj)> to_storage;
  std::function<json(const json& stored)> from_storage;
  // metadata.generation is bumped when anything but metadata and status changes.
  bool tracks_generation = false;
  // On create, `status` is reset (the status subresource owns it).
  bool reset_status_on_create = false;
  // The message that describes this kind in types.yaml (e.g. apps.v1.Deployment).
  std::string type_name;

  // Fills defaults, as the Kubernetes defaulting functions do.
  std::function<void(json& obj)> defaults;
  // Appends what is wrong with `obj`; `old` is the stored object on update.
  std::function<void(const json& obj, const json* old, std::vector<Cause>& causes)> validate;
  // Table columns after NAME; `cells` returns the values for them (NAME first).
  std::vector<TableColumn> columns;
  std::function<json(const json& obj)> cells;

  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  std::string group_resource() const { return group.empty() ? plural : plural + "." + group; }
  bool has_subresource(const std::string& s) const;
  bool has_verb(const std::string& v) const;
  bool converted() const { return !storage_api_version.empty(); }
  // The store key prefix for all objects (`/registry/pods/`) or one namespace.
  std::string key_prefix(const std::string& ns = "") const;
  std::string key(const std::string& ns, const std::string& name) const;
};

class ResourceRegistry {
 public:
  // The built-in resources, registered once.
  static const ResourceRegistry& Builtin();

  void Add(ResourceInfo info);
  const ResourceInfo* Find(const std::string& group, const std::string& version,
                           const std::string& plural) const;
  const ResourceInfo* FindKind(const std::string& api_version, const std::string& kind) const;
  const std::vector<ResourceInfo>& all() const { return resources_; }
  // Group names in discovery order (kube-apiserver's: "" first, then by
  // group priority), and the versions of a group, the preferred one first.
  std::vector<std::string> groups() const;
  std::vector<std::string> versions(const std::string& group) const;
  // The resource as stored: `r` itself, or the version it converts to.
  const ResourceInfo& storage(const ResourceInfo& r) const;

 private:
  std::vector<ResourceInfo> resources_;
};

// Registers the built-in resources into `r` (defined in builtin_resources.cc).
void RegisterBuiltinResources(ResourceRegistry& r);

}  // namespace minik::api
