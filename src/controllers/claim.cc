#include "api/selectors.h"
#include "common/log.h"
#include "controllers/util.h"
#include "controllers/workloads.h"

namespace minik::controllers {

std::vector<client::Object> ClaimShared(client::Client& c, const client::Informer& informer,
                                        const json& owner, bool deleting) {
  std::string ns = GetString(owner, "metadata.namespace");
  std::string uid = GetString(owner, "metadata.uid");
  const json* sel = Find(owner, "spec.selector");
  api::LabelSelector selector = api::LabelSelector::FromJson(sel ? *sel : json());
  std::vector<client::Object> out;
  const client::ResourcePath& rp = informer.resource();
  for (const auto& obj : informer.ListNamespace(ns)) {
    const json* labels = Find(*obj, "metadata.labels");
    bool matches = !selector.empty() && selector.Matches(labels ? *labels : json());
    const json* ref = ControllerRef(*obj);
    std::string path = rp.Item(ns, GetString(*obj, "metadata.name"));
    if (ref && ref->value("uid", "") == uid) {
      if (matches || deleting) {
        out.push_back(obj);
        continue;
      }
      // Release: it no longer matches our selector.
      json refs = json::array();
      for (const auto& r : *Find(*obj, "metadata.ownerReferences")) {
        if (r.value("uid", "") != uid) {
          refs.push_back(r);
        }
      }
      try {
        c.Patch(path, {{"metadata",
                        {{"ownerReferences", refs.empty() ? json() : refs},
                         {"uid", GetString(*obj, "metadata.uid")}}}});
      } catch (const client::ApiError& e) {
        log::Debug("release {}: {}", path, e.what());
      }
      continue;
    }
    if (ref || !matches || deleting || Find(*obj, "metadata.deletionTimestamp")) {
      continue;
    }
    // Adopt the orphan.
    json refs = Find(*obj, "metadata.ownerReferences") ? *Find(*obj, "metadata.ownerReferences")
                                                       : json::array();
    if (!refs.is_array()) {
      refs = json::array();
    }
    refs.push_back(NewControllerRef(owner));
    try {
      json adopted =
          c.Patch(path, {{"metadata",
                          {{"ownerReferences", refs},
                           {"uid", GetString(*obj, "metadata.uid")},
                           {"resourceVersion", GetString(*obj, "metadata.resourceVersion")}}}});
      out.push_back(std::make_shared<const json>(std::move(adopted)));
    } catch (const client::ApiError& e) {
      log::Debug("adopt {}: {}", path, e.what());
    }
  }
  return out;
}

std::vector<json> ClaimObjects(client::Client& c, const client::Informer& informer,
                               const json& owner, bool deleting) {
  std::vector<json> out;
  for (const auto& o : ClaimShared(c, informer, owner, deleting)) {
    out.push_back(*o);
  }
  return out;
}

}  // namespace minik::controllers
