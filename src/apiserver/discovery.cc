// Discovery documents in both forms kubectl and the client libraries use:
// legacy (APIVersions, APIGroupList, APIResourceList) and aggregated
// (apidiscovery.k8s.io/v2 APIGroupDiscoveryList), all derived from the registry.

#include <algorithm>

#include "apiserver/apiserver.h"

namespace minik::apiserver {
namespace {

struct SubresourceInfo {
  std::string group, version, kind;
  std::vector<std::string> verbs;
};

SubresourceInfo Subresource(const api::ResourceInfo& r, const std::string& sub) {
  if (sub == "scale") {
    return {"autoscaling", "v1", "Scale", {"get", "patch", "update"}};
  }
  if (sub == "binding") {
    return {"", "v1", "Binding", {"create"}};
  }
  if (sub == "eviction") {
    return {"policy", "v1", "Eviction", {"create"}};
  }
  if (sub == "log") {
    return {"", "v1", "Pod", {"get"}};
  }
  if (sub == "exec" || sub == "attach") {
    return {"", "v1", sub == "exec" ? "PodExecOptions" : "PodAttachOptions", {"create", "get"}};
  }
  if (sub == "portforward") {
    return {"", "v1", "PodPortForwardOptions", {"create", "get"}};
  }
  if (sub == "proxy") {
    return {"", "v1", r.kind + "ProxyOptions", {"create", "delete", "get", "patch", "update"}};
  }
  if (sub == "token") {
    return {"authentication.k8s.io", "v1", "TokenRequest", {"create"}};
  }
  if (sub == "finalize") {
    return {r.group, r.version, r.kind, {"update"}};
  }
  return {r.group, r.version, r.kind, {"get", "patch", "update"}};
}

// The resources of one group-version, in discovery's order (by name).
std::vector<const api::ResourceInfo*> Resources(const api::ResourceRegistry& reg,
                                                const std::string& group,
                                                const std::string& version) {
  std::vector<const api::ResourceInfo*> out;
  for (const auto& r : reg.all()) {
    if (r.group == group && r.version == version) {
      out.push_back(&r);
    }
  }
  std::sort(out.begin(), out.end(), [](const api::ResourceInfo* a, const api::ResourceInfo* b) {
    return a->plural < b->plural;
  });
  return out;
}

}  // namespace

Negotiated Negotiate(const std::string& accept) {
  Negotiated n;
  // Accept lists media types in preference order; the first one we can serve wins.
  size_t pos = 0;
  while (pos <= accept.size()) {
    size_t comma = accept.find(',', pos);
    std::string part =
        accept.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    std::map<std::string, std::string> params;
    size_t semi = part.find(';');
    std::string type = part.substr(0, semi);
    type.erase(0, type.find_first_not_of(' '));
    type.erase(type.find_last_not_of(' ') + 1);
    while (semi != std::string::npos) {
      size_t next = part.find(';', semi + 1);
      std::string kv =
          part.substr(semi + 1, next == std::string::npos ? std::string::npos : next - semi - 1);
      auto eq = kv.find('=');
      if (eq != std::string::npos) {
        std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
        k.erase(0, k.find_first_not_of(' '));
        params[k] = v;
      }
      semi = next;
    }
    if (type == "application/json" || type == "*/*" || type == "application/*") {
      if (params["as"] == "Table" && params["g"] == "meta.k8s.io" &&
          (params["v"] == "v1" || params["v"] == "v1beta1")) {
        n.table = true;
        n.table_version = params["v"];
        return n;
      }
      if (params["as"] == "APIGroupDiscoveryList" && params["g"] == "apidiscovery.k8s.io" &&
          (params["v"] == "v2" || params["v"] == "v2beta1")) {
        n.aggregated_discovery = true;
        n.discovery_version = params["v"];
        return n;
      }
      if (params.count("as") == 0) {
        return n;
      }
    }
    if (comma == std::string::npos) {
      break;
    }
    pos = comma + 1;
  }
  return n;
}

json DiscoveryApiVersions(const std::string& server_address) {
  return {{"kind", "APIVersions"},
          {"versions", {"v1"}},
          {"serverAddressByClientCIDRs",
           {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", server_address}}}}};
}

json DiscoveryGroup(const api::ResourceRegistry& reg, const std::string& group) {
  json versions = json::array();
  for (const auto& v : reg.versions(group)) {
    versions.push_back({{"groupVersion", group + "/" + v}, {"version", v}});
  }
  return {{"kind", "APIGroup"},
          {"apiVersion", "v1"},
          {"name", group},
          {"versions", versions},
          {"preferredVersion", versions.empty() ? json::object() : versions[0]}};
}

json DiscoveryGroupList(const api::ResourceRegistry& reg) {
  json groups = json::array();
  for (const auto& g : reg.groups()) {
    if (g.empty()) {
      continue;
    }
    json d = DiscoveryGroup(reg, g);
    d.erase("kind");
    d.erase("apiVersion");
    groups.push_back(d);
  }
  return {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}};
}

json DiscoveryResourceList(const api::ResourceRegistry& reg, const std::string& group,
                           const std::string& version) {
  json resources = json::array();
  for (const api::ResourceInfo* rp : Resources(reg, group, version)) {
    const api::ResourceInfo& r = *rp;
    json e = {{"name", r.plural},
              {"singularName", r.singular},
              {"namespaced", r.namespaced},
              {"kind", r.kind},
              {"verbs", r.verbs}};
    if (!r.short_names.empty()) {
      e["shortNames"] = r.short_names;
    }
    if (!r.categories.empty()) {
      e["categories"] = r.categories;
    }
    resources.push_back(e);
    std::vector<std::string> subs = r.subresources;
    std::sort(subs.begin(), subs.end());
    for (const auto& sub : subs) {
      SubresourceInfo s = Subresource(r, sub);
      json se = {{"name", r.plural + "/" + sub},
                 {"singularName", ""},
                 {"namespaced", r.namespaced},
                 {"kind", s.kind},
                 {"verbs", s.verbs}};
      if (s.group != r.group) {
        se["group"] = s.group;
      }
      if (s.version != r.version || s.group != r.group) {
        se["version"] = s.version;
      }
      resources.push_back(se);
    }
  }
  return {{"kind", "APIResourceList"},
          {"apiVersion", "v1"},
          {"groupVersion", group.empty() ? version : group + "/" + version},
          {"resources", resources}};
}

json AggregatedDiscovery(const api::ResourceRegistry& reg, bool core, const std::string& version) {
  json items = json::array();
  for (const auto& g : reg.groups()) {
    if (g.empty() != core) {
      continue;
    }
    json versions = json::array();
    for (const auto& v : reg.versions(g)) {
      json resources = json::array();
      for (const api::ResourceInfo* rp : Resources(reg, g, v)) {
        const api::ResourceInfo& r = *rp;
        json e = {{"resource", r.plural},
                  {"responseKind", {{"group", r.group}, {"version", r.version}, {"kind", r.kind}}},
                  {"scope", r.namespaced ? "Namespaced" : "Cluster"},
                  {"singularResource", r.singular},
                  {"verbs", r.verbs}};
        if (!r.short_names.empty()) {
          e["shortNames"] = r.short_names;
        }
        if (!r.categories.empty()) {
          e["categories"] = r.categories;
        }
        if (!r.subresources.empty()) {
          std::vector<std::string> subs = r.subresources;
          std::sort(subs.begin(), subs.end());
          json sj = json::array();
          for (const auto& sub : subs) {
            SubresourceInfo s = Subresource(r, sub);
            sj.push_back(
                {{"subresource", sub},
                 {"responseKind", {{"group", s.group}, {"version", s.version}, {"kind", s.kind}}},
                 {"verbs", s.verbs}});
          }
          e["subresources"] = sj;
        }
        resources.push_back(e);
      }
      versions.push_back({{"version", v}, {"resources", resources}, {"freshness", "Current"}});
    }
    json item = {{"metadata", {{"creationTimestamp", nullptr}}}, {"versions", versions}};
    if (!g.empty()) {
      item["metadata"]["name"] = g;
    }
    items.push_back(item);
  }
  return {{"kind", "APIGroupDiscoveryList"},
          {"apiVersion", "apidiscovery.k8s.io/" + version},
          {"metadata", json::object()},
          {"items", items}};
}

json BuildTable(const api::ResourceInfo& r, const json& objects, const json& list_meta,
                const std::string& include_object, const std::string& version) {
  json cols = json::array();
  for (const auto& c : r.columns) {
    cols.push_back({{"name", c.name},
                    {"type", c.type},
                    {"format", c.format},
                    {"description", c.description},
                    {"priority", c.priority}});
  }
  json rows = json::array();
  for (const auto& o : objects) {
    json row = {{"cells", r.cells(o)}};
    if (include_object == "Object") {
      row["object"] = o;
    } else if (include_object != "None") {
      row["object"] = {{"kind", "PartialObjectMetadata"},
                       {"apiVersion", "meta.k8s.io/v1"},
                       {"metadata", o.value("metadata", json::object())}};
    }
    rows.push_back(row);
  }
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/" + version},
          {"metadata", list_meta},
          {"columnDefinitions", cols},
          {"rows", rows}};
}

}  // namespace minik::apiserver
