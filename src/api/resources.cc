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

bool ResourceInfo::has_verb(const std::string& v) const {
  return std::find(verbs.begin(), verbs.end(), v) != verbs.end();
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
  // kube-apiserver's order of the built-in groups (its group priorities),
  // which is also the order kubectl resolves an ambiguous name in (`ev` is
  // core's events before events.k8s.io's).
  static const std::vector<std::string> kOrder = {"",
                                                  "apiregistration.k8s.io",
                                                  "apps",
                                                  "events.k8s.io",
                                                  "authentication.k8s.io",
                                                  "authorization.k8s.io",
                                                  "autoscaling",
                                                  "batch",
                                                  "certificates.k8s.io",
                                                  "networking.k8s.io",
                                                  "policy",
                                                  "rbac.authorization.k8s.io",
                                                  "storage.k8s.io",
                                                  "admissionregistration.k8s.io",
                                                  "apiextensions.k8s.io",
                                                  "scheduling.k8s.io",
                                                  "coordination.k8s.io",
                                                  "node.k8s.io",
                                                  "discovery.k8s.io",
                                                  "flowcontrol.apiserver.k8s.io"};
  std::vector<std::string> g;
  for (const auto& r : resources_) {
    if (std::find(g.begin(), g.end(), r.group) == g.end()) {
      g.push_back(r.group);
    }
  }
  auto rank = [](const std::string& group) {
    auto it = std::find(kOrder.begin(), kOrder.end(), group);
    return it - kOrder.begin();
  };
  std::stable_sort(g.begin(), g.end(),
                   [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
  return g;
}

std::vector<std::string> ResourceRegistry::versions(const std::string& group) const {
  std::vector<std::string> v;
  for (const auto& r : resources_) {
    if (r.group == group && std::find(v.begin(), v.end(), r.version) == v.end()) {
      v.push_back(r.version);
    }
  }
  return v;
}

const ResourceInfo& ResourceRegistry::storage(const ResourceInfo& r) const {
  if (!r.converted()) {
    return r;
  }
  const ResourceInfo* s = FindKind(r.storage_api_version, r.kind);
  if (!s) {
    throw Error("resource " + r.group_resource() + " " + r.version + " is stored as " +
                r.storage_api_version + " " + r.kind + ", which is not registered");
  }
  return *s;
}

}  // namespace minik::api
