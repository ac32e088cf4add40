#pragma once
// Internal to the api library: what the files that register built-in
// resources share (builtin_resources.cc and src/api/resources/<group>.cc):
// the resource skeleton, table columns and small field readers.

#include <string>
#include <vector>

#include "api/builtin.h"
#include "api/printers.h"
#include "api/resources.h"

namespace minik::api {

// The value at a dotted path, or an empty object.
const json& At(const json& o, const char* dotted);
// The string at a dotted path (other values as JSON text), or `def`.
std::string S(const json& o, const char* dotted, const std::string& def = "");
std::string Name(const json& o);
std::string AgeOf(const json& o);

TableColumn Col(std::string name, std::string type = "string", int priority = 0,
                std::string description = "");
TableColumn NameCol();
TableColumn AgeCol();
std::vector<TableColumn> Cols(std::initializer_list<TableColumn> cols);

// A resource with NAME and AGE columns and the singular name made from its kind.
ResourceInfo R(std::string group, std::string version, std::string kind, std::string plural,
               bool namespaced);
// The Go package of an API group as the type table names it ("core", "apps",
// "networking" for networking.k8s.io).
std::string Package(const std::string& group);
// Containers and images of a pod spec, for the wide columns of workloads.
std::pair<std::string, std::string> ContainersImages(const json& pod_spec);

// Registrations of the groups that live in src/api/resources/.
void RegisterCoreExtras(ResourceRegistry& reg);
void RegisterAutoscaling(ResourceRegistry& reg);
void RegisterMoreGroups(ResourceRegistry& reg);

}  // namespace minik::api
