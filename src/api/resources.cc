#include "api/resources.h"

#include <algorithm>

#include "common/error.h"

namespace minik::api {

bool ResourceInfo::has_subresource(const std::string& s) const {
  return std::find(subresources.begin(), subresources.end(), s) != subresources.end();
}

std::string ResourceInfo::key_prefix(const std::string& ns) const {
  std::string p = "/registry/" + plural + "/";
  if (namespaced && !ns.empty()) {
    p += ns + "/";
  }
  return p;
}

std::string ResourceInfo::key(const std::string& ns, const std::string& name) const {
  return key_prefix(namespaced ? ns : "") + name;
}

const ResourceRegistry& ResourceRegistry::Builtin() {
  static const ResourceRegistry r = [] {
    ResourceRegistry reg;
    RegisterBuiltinResources(reg);
    return reg;
  }();
  return r;
}

void ResourceRegistry::Add(ResourceInfo info) {
  if (Find(info.group, info.version, info.plural)) {
    throw Error("resource " + info.group_resource() + " is registered twice");
  }
  resources_.push_back(std::move(info));
}

const ResourceInfo* ResourceRegistry::Find(const std::string& group, const std::string& version,
                                           const std::string& plural) const {
  for (const auto& r : resources_) {
    if (r.group == group && r.version == version && r.plural == plural) {
      return &r;
    }
  }
  return nullptr;
}

const ResourceInfo* ResourceRegistry::FindKind(const std::string& api_version,
                                               const std::string& kind) const {
  for (const auto& r : resources_) {
    if (r.api_version() == api_version && r.kind == kind) {
      return &r;
    }
  }
  return nullptr;
}

std::vector<std::string> ResourceRegistry::groups() const {
  std::vector<std::string> g;
  for (const auto& r : resources_) {
    if (std::find(g.begin(), g.end(), r.group) == g.end()) {
      g.push_back(r.group);
    }
  }
  return g;
}

}  // namespace minik::api
