// The Endpoints and EndpointSlice controllers: for every Service with a
// selector, the addresses of the pods it selects, ready and not ready, with
// the service's ports resolved against each pod's container ports. Slices hold
// at most 100 endpoints; when pods come and go only the slices that change are
// written.

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include "api/selectors.h"
#include "controllers/core.h"
#include "controllers/util.h"

namespace minik::controllers {
namespace {

constexpr size_t kMaxEndpointsPerSlice = 100;
constexpr const char* kServiceNameLabel = "kubernetes.io/service-name";
constexpr const char* kManagedByLabel = "endpointslice.kubernetes.io/managed-by";
constexpr const char* kManagedBy = "endpointslice-controller.k8s.io";

// One pod's endpoint for a service.
struct PodEndpoint {
  json pod;
  bool ready = false;
  bool terminating = false;
  json ports;  // [{name, port, protocol}] resolved for this pod
};

// Resolves a service port's targetPort against a pod: a number as it is, a
// name through the pod's container ports. Null when a named port is missing.
json ResolvePort(const json& sp, const json& pod) {
  const json tp = sp.contains("targetPort") ? sp["targetPort"] : sp.value("port", json(0));
  json out = {{"name", sp.value("name", "")}, {"protocol", sp.value("protocol", "TCP")}};
  if (tp.is_number_integer()) {
    out["port"] = tp;
    return out;
  }
  std::string name = tp.is_string() ? tp.get<std::string>() : "";
  for (const auto& c : pod["spec"].value("containers", json::array())) {
    for (const auto& p : c.value("ports", json::array())) {
      if (p.value("name", "") == name && p.value("protocol", "TCP") == out["protocol"]) {
        out["port"] = p.value("containerPort", 0);
        return out;
      }
    }
  }
  return nullptr;
}

// The pods a service selects, with their ports.
std::vector<PodEndpoint> Desired(const json& svc, const client::Informer& pods) {
  std::vector<PodEndpoint> out;
  const json* sel = Find(svc, "spec.selector");
  api::LabelSelector selector = api::LabelSelector::FromMap(sel ? *sel : json());
  bool publish_not_ready = Find(svc, "spec.publishNotReadyAddresses") &&
                           *Find(svc, "spec.publishNotReadyAddresses") == true;
  for (const auto& p : pods.ListNamespace(GetString(svc, "metadata.namespace"))) {
    const json& pod = *p;
    const json* labels = Find(pod, "metadata.labels");
    if (!selector.Matches(labels ? *labels : json()) || GetString(pod, "status.podIP").empty()) {
      continue;
    }
    std::string phase = GetString(pod, "status.phase");
    if (phase == "Succeeded" || phase == "Failed") {
      continue;
    }
    PodEndpoint e;
    e.pod = pod;
    e.terminating = IsPodTerminating(pod);
    e.ready = (IsPodReady(pod) && !e.terminating) || publish_not_ready;
    e.ports = json::array();
    for (const auto& sp : svc["spec"].value("ports", json::array())) {
      json rp = ResolvePort(sp, pod);
      if (!rp.is_null()) {
        e.ports.push_back(rp);
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

json TargetRef(const json& pod) {
  return {{"kind", "Pod"},
          {"namespace", GetString(pod, "metadata.namespace")},
          {"name", GetString(pod, "metadata.name")},
          {"uid", GetString(pod, "metadata.uid")}};
}

bool Selectable(const json& svc) {
  const json* sel = Find(svc, "spec.selector");
  return sel && sel->is_object() && !sel->empty() && GetString(svc, "spec.type") != "ExternalName";
}

class EndpointsController : public QueueController {
 public:
  explicit EndpointsController(Context ctx) : QueueController("endpoints", ctx, 2) {
    services_ = ctx_.informers->For(client::resources::kServices);
    pods_ = ctx_.informers->For(client::resources::kPods);
    endpoints_ = ctx_.informers->For(client::resources::kEndpoints);
    services_->AddHandlers(
        {[this](const client::Object& s) { EnqueueObject(s); },
         [this](const client::Object&, const client::Object& s) { EnqueueObject(s); },
         [this](const client::Object& s) { EnqueueObject(s); }});
    auto pod_changed = [this](const client::Object& p) { EnqueueServicesOf(*p); };
    pods_->AddHandlers({pod_changed,
                        [pod_changed](const client::Object& old, const client::Object& p) {
                          pod_changed(old);
                          pod_changed(p);
                        },
                        pod_changed});
  }

 protected:
  void EnqueueServicesOf(const json& pod) {
    const json* labels = Find(pod, "metadata.labels");
    for (const auto& s : services_->ListNamespace(GetString(pod, "metadata.namespace"))) {
      const json* sel = Find(*s, "spec.selector");
      if (sel && api::LabelSelector::FromMap(*sel).Matches(labels ? *labels : json())) {
        EnqueueObject(s);
      }
    }
  }

  std::shared_ptr<client::Informer> services_, pods_, endpoints_;

 private:
  void Sync(const std::string& key) override {
    client::Object svc = services_->Get(key);
    auto slash = key.find('/');
    std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
    std::string path = "/api/v1/namespaces/" + ns + "/endpoints/" + name;
    if (!svc || !Selectable(*svc)) {
      // Endpoints of services without a selector are the user's.
      if (!svc && endpoints_->Get(key)) {
        try {
          ctx_.client->Delete(path);
        } catch (const client::ApiError& e) {
          if (e.code != 404) {
            throw;
          }
        }
      }
      return;
    }
    // Group addresses by their resolved port list, as subsets.
    std::map<std::string, json> subsets;
    for (const auto& e : Desired(*svc, *pods_)) {
      std::string k = e.ports.dump();
      json& ss = subsets[k];
      if (ss.is_null()) {
        ss = {{"ports", e.ports}};
      }
      json addr = {{"ip", GetString(e.pod, "status.podIP")}, {"targetRef", TargetRef(e.pod)}};
      std::string node = GetString(e.pod, "spec.nodeName");
      if (!node.empty()) {
        addr["nodeName"] = node;
      }
      std::string hostname = GetString(e.pod, "spec.hostname");
      if (!hostname.empty() && GetString(e.pod, "spec.subdomain") == name) {
        addr["hostname"] = hostname;
      }
      ss[e.ready ? "addresses" : "notReadyAddresses"].push_back(addr);
    }
    json list = json::array();
    for (auto& [_, ss] : subsets) {
      for (const char* f : {"addresses", "notReadyAddresses"}) {
        if (ss.contains(f)) {
          std::sort(ss[f].begin(), ss[f].end(),
                    [](const json& a, const json& b) { return a["ip"] < b["ip"]; });
        }
      }
      if (ss["ports"].empty()) {
        ss.erase("ports");
      }
      list.push_back(ss);
    }
    json labels = Find(*svc, "metadata.labels") ? *Find(*svc, "metadata.labels") : json::object();
    if (GetString(*svc, "spec.clusterIP") == "None") {
      labels["service.kubernetes.io/headless"] = "";
    }
    client::Object cur = endpoints_->Get(key);
    if (cur) {
      json want_subsets = list.empty() ? json() : list;
      json have_subsets = cur->contains("subsets") ? (*cur)["subsets"] : json();
      json have_labels =
          Find(*cur, "metadata.labels") ? *Find(*cur, "metadata.labels") : json::object();
      if (want_subsets == have_subsets && have_labels == labels) {
        return;
      }
      json next = *cur;
      if (list.empty()) {
        next.erase("subsets");
      } else {
        next["subsets"] = list;
      }
      next["metadata"]["labels"] = labels;
      ctx_.client->Put(path, next);
      return;
    }
    json ep = {{"apiVersion", "v1"},
               {"kind", "Endpoints"},
               {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}}}};
    if (!list.empty()) {
      ep["subsets"] = list;
    }
    try {
      ctx_.client->Post("/api/v1/namespaces/" + ns + "/endpoints", ep);
    } catch (const client::ApiError& e) {
      if (e.code == 409) {
        Enqueue(key);  // created meanwhile; update on the next round
      } else if (e.code != 403 && e.code != 404) {
        throw;
      }
    }
  }
};

class EndpointSliceController : public EndpointsController {
 public:
  explicit EndpointSliceController(Context ctx) : EndpointsController(std::move(ctx)) {
    slices_ = ctx_.informers->For(client::resources::kEndpointSlices);
    slices_->AddHandlers({nullptr, nullptr, [this](const client::Object& s) {
                            // Someone deleted one of our slices: put it back.
                            const json* l = Find(*s, "metadata.labels");
                            if (l && l->value(kManagedByLabel, "") == kManagedBy) {
                              Enqueue(GetString(*s, "metadata.namespace") + "/" +
                                      l->value(kServiceNameLabel, ""));
                            }
                          }});
  }
  std::string name() const override { return "endpointslice"; }

 private:
  static json SliceEndpoint(const PodEndpoint& e, const std::string& svc_name) {
    json ep = {
        {"addresses", {GetString(e.pod, "status.podIP")}},
        {"conditions",
         {{"ready", e.ready}, {"serving", IsPodReady(e.pod)}, {"terminating", e.terminating}}},
        {"targetRef", TargetRef(e.pod)}};
    std::string node = GetString(e.pod, "spec.nodeName");
    if (!node.empty()) {
      ep["nodeName"] = node;
    }
    std::string hostname = GetString(e.pod, "spec.hostname");
    if (!hostname.empty() && GetString(e.pod, "spec.subdomain") == svc_name) {
      ep["hostname"] = hostname;
    }
    return ep;
  }

  void Sync(const std::string& key) override {
    client::Object svc = services_->Get(key);
    auto slash = key.find('/');
    std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
    std::string base = "/apis/discovery.k8s.io/v1/namespaces/" + ns + "/endpointslices";
    std::vector<client::Object> cached = slices_->ListNamespace(ns);
    if (!CacheCaughtUp(key, cached)) {
      EnqueueAfter(key, std::chrono::milliseconds(50));
      return;
    }
    std::vector<json> existing;
    for (const auto& s : cached) {
      const json* l = Find(*s, "metadata.labels");
      if (l && l->value(kServiceNameLabel, "") == name &&
          l->value(kManagedByLabel, "") == kManagedBy) {
        existing.push_back(*s);
      }
    }
    if (!svc || !Selectable(*svc)) {
      // Slices are owned by the service; when it goes the garbage collector removes
      // them, but a service that lost its selector has none either.
      for (const auto& s : existing) {
        Delete(key, base, GetString(s, "metadata.name"));
      }
      return;
    }
    // Desired endpoints grouped by their port list: each group needs its own slices.
    std::map<std::string, std::pair<json, std::map<std::string, json>>> groups;
    for (const auto& e : Desired(*svc, *pods_)) {
      auto& g = groups[e.ports.dump()];
      g.first = e.ports;
      g.second[GetString(e.pod, "status.podIP")] = SliceEndpoint(e, name);
    }
    if (groups.empty()) {
      groups[json::array().dump()].first = json::array();
    }
    std::set<std::string> used;
    for (auto& [port_key, group] : groups) {
      auto& [ports, want] = group;
      // Existing slices of this port list: keep what is still wanted in place.
      std::vector<json*> mine;
      for (auto& s : existing) {
        if (s.value("ports", json::array()).dump() == port_key) {
          mine.push_back(&s);
        }
      }
      std::vector<std::pair<json*, bool>> plan;  // slice, changed
      std::set<std::string> placed;
      for (json* s : mine) {
        json kept = json::array();
        bool changed = false;
        for (const auto& ep : s->value("endpoints", json::array())) {
          std::string ip = ep["addresses"][0];
          auto it = want.find(ip);
          if (it == want.end() || placed.count(ip)) {
            changed = true;
            continue;
          }
          if (ep != it->second) {
            changed = true;
          }
          kept.push_back(it->second);
          placed.insert(ip);
        }
        (*s)["endpoints"] = kept;
        plan.emplace_back(s, changed);
      }
      // New endpoints go to changed slices with room first, then to any with room.
      std::vector<json> fresh;
      for (auto& [ip, ep] : want) {
        if (!placed.count(ip)) {
          fresh.push_back(ep);
        }
      }
      for (int pass = 0; pass < 2 && !fresh.empty(); ++pass) {
        for (auto& [s, changed] : plan) {
          if ((pass == 0 && !changed) || fresh.empty()) {
            continue;
          }
          while (!fresh.empty() && (*s)["endpoints"].size() < kMaxEndpointsPerSlice) {
            (*s)["endpoints"].push_back(fresh.back());
            fresh.pop_back();
            changed = true;
          }
        }
      }
      for (auto& [s, changed] : plan) {
        std::string sname = GetString(*s, "metadata.name");
        if ((*s)["endpoints"].empty() && (plan.size() > 1 || !want.empty())) {
          Delete(key, base, sname);
          continue;
        }
        used.insert(sname);
        if (changed) {
          Wrote(key, ctx_.client->Put(base + "/" + sname, *s));
        }
      }
      bool have_slice = std::any_of(plan.begin(), plan.end(), [&](const auto& p) {
        return used.count(GetString(*p.first, "metadata.name")) > 0;
      });
      // Whatever is left needs new slices (an empty slice when nothing is selected).
      while (!fresh.empty() || !have_slice) {
        json eps = json::array();
        while (!fresh.empty() && eps.size() < kMaxEndpointsPerSlice) {
          eps.push_back(fresh.back());
          fresh.pop_back();
        }
        json labels =
            Find(*svc, "metadata.labels") ? *Find(*svc, "metadata.labels") : json::object();
        labels[kServiceNameLabel] = name;
        labels[kManagedByLabel] = kManagedBy;
        json slice = {{"apiVersion", "discovery.k8s.io/v1"},
                      {"kind", "EndpointSlice"},
                      {"metadata",
                       {{"generateName", name + "-"},
                        {"namespace", ns},
                        {"labels", labels},
                        {"ownerReferences", json::array({NewControllerRef(*svc)})}}},
                      {"addressType", "IPv4"},
                      {"endpoints", eps},
                      {"ports", ports}};
        json out = ctx_.client->Post(base, slice);
        Wrote(key, out);
        used.insert(GetString(out, "metadata.name"));
        have_slice = true;
      }
    }
    // Slices of port lists that no longer exist.
    for (const auto& s : existing) {
      if (!used.count(GetString(s, "metadata.name"))) {
        bool in_group = groups.count(s.value("ports", json::array()).dump()) > 0;
        if (!in_group) {
          Delete(key, base, GetString(s, "metadata.name"));
        }
      }
    }
  }

  void Delete(const std::string& key, const std::string& base, const std::string& slice) {
    try {
      ctx_.client->Delete(base + "/" + slice);
    } catch (const client::ApiError& e) {
      if (e.code != 404) {
        throw;
      }
    }
    std::lock_guard<std::mutex> lock(written_mu_);
    written_[key][slice] = {"", std::chrono::steady_clock::now()};
  }

  void Wrote(const std::string& key, const json& slice) {
    std::lock_guard<std::mutex> lock(written_mu_);
    written_[key][GetString(slice, "metadata.name")] = {
        GetString(slice, "metadata.resourceVersion"), std::chrono::steady_clock::now()};
  }

  // The informer lags behind this controller's own writes. A sync that read a cache
  // missing a slice it just created would place the same endpoints in a second one,
  // so a sync waits until the cache shows every write of the previous one (as the
  // endpoint slice tracker does upstream). A write the cache never shows (the slice
  // was deleted or replaced meanwhile) is forgotten after a few seconds.
  bool CacheCaughtUp(const std::string& key, const std::vector<client::Object>& cached) {
    std::lock_guard<std::mutex> lock(written_mu_);
    auto it = written_.find(key);
    if (it == written_.end()) {
      return true;
    }
    std::map<std::string, std::string> seen;
    for (const auto& s : cached) {
      seen[GetString(*s, "metadata.name")] = GetString(*s, "metadata.resourceVersion");
    }
    auto newer_or_same = [](const std::string& have, const std::string& want) {
      return have.size() != want.size() ? have.size() > want.size() : have >= want;
    };
    auto now = std::chrono::steady_clock::now();
    for (auto w = it->second.begin(); w != it->second.end();) {
      const auto& [rv, when] = w->second;
      auto found = seen.find(w->first);
      bool current = rv.empty() ? found == seen.end()
                                : found != seen.end() && newer_or_same(found->second, rv);
      if (current || now - when > std::chrono::seconds(5)) {
        w = it->second.erase(w);
      } else {
        return false;
      }
    }
    written_.erase(it);
    return true;
  }

  struct Write {
    std::string resource_version;  // empty: deleted
    std::chrono::steady_clock::time_point when;
  };
  std::mutex written_mu_;
  std::map<std::string, std::map<std::string, Write>> written_;  // service key -> slice -> write
  std::shared_ptr<client::Informer> slices_;
};

}  // namespace

std::unique_ptr<Controller> NewEndpointsController(Context ctx) {
  return std::make_unique<EndpointsController>(std::move(ctx));
}

std::unique_ptr<Controller> NewEndpointSliceController(Context ctx) {
  return std::make_unique<EndpointSliceController>(std::move(ctx));
}

}  // namespace minik::controllers
