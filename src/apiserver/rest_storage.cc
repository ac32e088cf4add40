#include "apiserver/rest_storage.h"

#include <arpa/inet.h>

#include <mutex>
#include <random>
#include <set>

#include "api/managed_fields.h"
#include "api/patch.h"
#include "api/status.h"
#include "api/validation.h"
#include "apiserver/apiserver.h"
#include "apiserver/auth.h"
#include "common/base64.h"
#include "common/clock.h"
#include "common/log.h"

namespace minik::apiserver {

using api::BadRequest;
using api::Cause;
using api::StatusError;

namespace {

constexpr int kMaxRetries = 16;

std::mutex& AllocationMutex() {
  static std::mutex mu;
  return mu;
}

json& Meta(json& obj) {
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) {
    obj["metadata"] = json::object();
  }
  return obj["metadata"];
}

bool HasDeletionTimestamp(const json& obj) {
  const json* d = Find(obj, "metadata.deletionTimestamp");
  return d && d->is_string();
}

bool HasFinalizers(const json& obj) {
  const json* f = Find(obj, "metadata.finalizers");
  return f && f->is_array() && !f->empty();
}

// The parts of an object that count for metadata.generation.
json SpecPart(const json& obj) {
  json o = obj;
  o.erase("metadata");
  o.erase("status");
  o.erase("apiVersion");
  o.erase("kind");
  return o;
}

uint32_t ParseIPv4(const std::string& s, bool* ok) {
  in_addr a;
  *ok = inet_pton(AF_INET, s.c_str(), &a) == 1;
  return ntohl(a.s_addr);
}

std::string FormatIPv4(uint32_t ip) {
  in_addr a;
  a.s_addr = htonl(ip);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

// Service CIDR 10.96.0.0/12; the first 256 addresses are for static assignment
// (`kubernetes` = .1, DNS = .10), dynamic allocation takes the rest.
constexpr uint32_t kServiceBase = (10u << 24) | (96u << 16);
constexpr uint32_t kServiceSize = 1u << 20;
constexpr int kNodePortMin = 30000, kNodePortMax = 32767;

}  // namespace

std::string EncodeContinue(int64_t revision, const std::string& key) {
  json t = {{"v", "meta.k8s.io/v1"}, {"rv", revision}, {"start", key + std::string(1, '\0')}};
  return base64::Encode(t.dump());
}

bool DecodeContinue(const std::string& token, int64_t* revision, std::string* key) {
  try {
    json t = json::parse(base64::Decode(token).value_or(""));
    *revision = t.at("rv").get<int64_t>();
    std::string start = t.at("start").get<std::string>();
    if (!start.empty() && start.back() == '\0') {
      start.pop_back();
    }
    *key = start;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

RestStorage::RestStorage(store::Store& store, const api::ResourceRegistry& registry,
                         const api::TypeTable& types)
    : store_(store), registry_(registry), types_(types) {}

json RestStorage::Decode(const store::KeyValue& kv) {
  json obj = json::parse(*kv.value);
  Meta(obj)["resourceVersion"] = std::to_string(kv.mod_revision);
  return obj;
}

json RestStorage::Present(const ResourceInfo& r, json stored) {
  if (!r.converted() || !r.from_storage) {
    return stored;
  }
  json obj = r.from_storage(stored);
  obj["apiVersion"] = r.api_version();
  obj["kind"] = r.kind;
  return obj;
}

EncodedObjects::Entry& EncodedObjects::Find(const store::KeyValue& kv, const ResourceInfo& r) {
  std::string id = std::to_string(kv.mod_revision) + "/" + kv.key;
  if (r.converted()) {
    id += "@" + r.api_version();
  }
  auto [it, added] = map_.try_emplace(id);
  if (added) {
    order_.push_back(std::move(id));
    if (order_.size() > kMax) {
      map_.erase(order_.front());
      order_.pop_front();
    }
  }
  return it->second;
}

std::shared_ptr<const json> EncodedObjects::Object(const store::KeyValue& kv,
                                                   const ResourceInfo& r) {
  {
    std::lock_guard lock(mu_);
    if (auto& e = Find(kv, r); e.object) {
      return e.object;
    }
  }
  // Decoded without the lock: two watches may both decode a revision once.
  auto obj = std::make_shared<const json>(RestStorage::Present(r, RestStorage::Decode(kv)));
  std::lock_guard lock(mu_);
  auto& e = Find(kv, r);
  if (!e.object) {
    e.object = obj;
  }
  return e.object;
}

std::shared_ptr<const std::string> EncodedObjects::Text(const store::KeyValue& kv,
                                                        const ResourceInfo& r) {
  {
    std::lock_guard lock(mu_);
    if (auto& e = Find(kv, r); e.text) {
      return e.text;
    }
  }
  std::string encoded;
  ApiEncoder().Append(*Object(kv, r), encoded);
  auto text = std::make_shared<const std::string>(std::move(encoded));
  std::lock_guard lock(mu_);
  auto& e = Find(kv, r);
  if (!e.text) {
    e.text = text;
  }
  return e.text;
}

json RestStorage::Read(const ResourceInfo& r, const std::string& ns, const std::string& name,
                       int64_t* revision) const {
  try {
    store::KeyValue kv = store_.Get(r.key(ns, name));
    if (revision) {
      *revision = kv.mod_revision;
    }
    return Present(r, Decode(kv));
  } catch (const store::NotFound&) {
    throw api::NotFound(r.group, r.plural, name);
  }
}

json RestStorage::Get(const ResourceInfo& r, const std::string& ns, const std::string& name) const {
  return Read(r, ns, name, nullptr);
}

json RestStorage::List(const ResourceInfo& r, const std::string& ns, const ListRequest& req) const {
  store::ListOptions lo;
  if (!req.continue_token.empty()) {
    if (!DecodeContinue(req.continue_token, &lo.revision, &lo.start_after)) {
      throw BadRequest("continue key is not valid: the token could not be decoded");
    }
  } else if (req.resource_version_match == "Exact" && !req.resource_version.empty()) {
    try {
      lo.revision = std::stoll(req.resource_version);
    } catch (const std::exception&) {
      throw BadRequest("invalid resource version: " + req.resource_version);
    }
  }
  lo.limit = req.limit > 0 ? static_cast<size_t>(req.limit) : 0;
  bool filtered = !req.labels.empty() || !req.fields.empty();
  if (filtered) {
    lo.filter = [&](const store::KeyValue& kv) {
      json obj = json::parse(*kv.value);
      const json* labels = Find(obj, "metadata.labels");
      return req.labels.Matches(labels ? *labels : json()) && req.fields.Matches(obj);
    };
  }
  store::ListResult res;
  try {
    res = store_.List(r.key_prefix(ns), lo);
  } catch (const store::Expired& e) {
    throw StatusError(410, "Expired",
                      "The provided continue parameter is too old to display a consistent list "
                      "result. You can start a new list without the continue parameter.");
  }
  json items = json::array();
  for (const auto& kv : res.items) {
    items.push_back(Present(r, Decode(kv)));
  }
  std::string kind = r.kind + "List";
  json list = {{"kind", kind},
               {"apiVersion", r.api_version()},
               {"metadata", {{"resourceVersion", std::to_string(res.revision)}}},
               {"items", items}};
  if (res.more && !res.items.empty()) {
    list["metadata"]["continue"] = EncodeContinue(res.revision, res.items.back().key);
    if (!filtered) {
      list["metadata"]["remainingItemCount"] = res.remaining;
    }
  }
  return list;
}

void RestStorage::PrepareCreate(const ResourceInfo& r, const std::string& ns, json& obj,
                                const WriteOptions& o, bool apply) {
  if (!obj.is_object()) {
    throw BadRequest("the body of a create must be an object");
  }
  // What an apply owns is its configuration as sent; managedFields sent with
  // a create are kept when valid (an exported object keeps its owners).
  json config = apply ? obj : json();
  json body_managed =
      Find(obj, "metadata.managedFields") ? *Find(obj, "metadata.managedFields") : json();
  json& meta = Meta(obj);
  if (r.namespaced) {
    std::string body_ns = meta.value("namespace", "");
    if (!body_ns.empty() && body_ns != ns) {
      throw BadRequest(
          "the namespace of the provided object does not match the namespace sent "
          "on the request");
    }
    meta["namespace"] = ns;
  } else {
    meta.erase("namespace");
  }
  obj["apiVersion"] = r.api_version();
  obj["kind"] = r.kind;
  std::string name = meta.value("name", "");
  std::string generate = meta.value("generateName", "");
  if (name.empty() && !generate.empty()) {
    meta["name"] = generate + RandomSuffix(5);
  }
  if (meta.contains("resourceVersion") && meta["resourceVersion"].is_string() &&
      !meta["resourceVersion"].get<std::string>().empty()) {
    throw BadRequest("resourceVersion should not be set on objects to be created");
  }
  meta.erase("resourceVersion");
  meta.erase("selfLink");
  meta.erase("deletionTimestamp");
  meta.erase("deletionGracePeriodSeconds");
  meta.erase("managedFields");
  meta["uid"] = NewUid();
  meta["creationTimestamp"] = FormatTime(Now());
  if (r.tracks_generation) {
    meta["generation"] = 1;
  } else {
    meta.erase("generation");
  }
  if (r.reset_status_on_create) {
    obj.erase("status");
  }
  for (const char* k : {"labels", "annotations", "finalizers", "ownerReferences"}) {
    if (meta.contains(k) && meta[k].is_null()) {
      meta.erase(k);
    }
  }
  if (r.defaults) {
    r.defaults(obj);
  }
  // Field managers see the defaulted object, and not what admission adds.
  if (!o.field_manager.empty()) {
    api::FieldManager fm(types_, r.type_name, r.has_subresource("status"));
    api::FieldManagerRequest req{
        o.field_manager, o.managed_api_version.empty() ? r.api_version() : o.managed_api_version,
        o.managed_subresource, FormatTime(Now()), false};
    std::vector<api::ManagedFieldsEntry> managers;
    if (apply) {
      fm.Apply(fm.Empty(), {}, config, obj, req, &managers);
    } else {
      if (auto given = api::ParseManagedFields(body_managed)) {
        managers = *given;
      }
      fm.Update(managers, json(), obj, req);
    }
    if (!managers.empty()) {
      Meta(obj)["managedFields"] = api::EncodeManagedFields(managers);
    }
  }
  Admit(r, obj, nullptr);
  Validate(r, obj, nullptr);
}

void RestStorage::Validate(const ResourceInfo& r, const json& obj, const json* old) {
  std::vector<Cause> causes;
  // Namespaces and services are DNS labels; RBAC names are path segments; the rest subdomains.
  bool label_name = r.plural == "namespaces" || r.plural == "services";
  bool path_segment = r.group == "rbac.authorization.k8s.io" || r.plural == "events";
  if (path_segment) {
    std::string name = GetString(obj, "metadata.name");
    if (name.empty()) {
      causes.push_back({"FieldValueRequired", "Required value: name or generateName is required",
                        "metadata.name"});
    } else if (name == "." || name == ".." || name.find_first_of("/%") != std::string::npos) {
      causes.push_back({"FieldValueInvalid",
                        "Invalid value: \"" + name + "\": may not contain '/' or '%'",
                        "metadata.name"});
    }
    json copy = obj;
    copy["metadata"]["name"] = "x";
    api::ValidateObjectMeta(copy, r.namespaced, false, causes);
  } else {
    api::ValidateObjectMeta(obj, r.namespaced, label_name, causes);
  }
  if (r.validate) {
    r.validate(obj, old, causes);
  }
  if (!causes.empty()) {
    throw api::Invalid(r.group, r.kind, GetString(obj, "metadata.name"), causes);
  }
}

void RestStorage::Admit(const ResourceInfo& r, json& obj, const json* old) {
  // NamespaceLifecycle: objects live in namespaces that exist and are not terminating.
  if (r.namespaced && !old) {
    std::string ns = GetString(obj, "metadata.namespace");
    const ResourceInfo* nsr = registry_.Find("", "v1", "namespaces");
    try {
      json n = Decode(store_.Get(nsr->key("", ns)));
      if (GetString(n, "status.phase") == "Terminating") {
        throw StatusError(403, "Forbidden",
                          r.plural + " \"" + GetString(obj, "metadata.name") +
                              "\" is forbidden: unable to create new content in namespace " + ns +
                              " because it is being terminated",
                          json{{"name", GetString(obj, "metadata.name")}, {"kind", r.plural}});
      }
    } catch (const store::NotFound&) {
      throw api::NotFound("", "namespaces", ns);
    }
  }
  if (r.group.empty() && r.plural == "services") {
    AllocateServiceAddresses(obj, old);
  }
  // ServiceAccount: a pod gets its account's token mounted.
  if (r.group.empty() && r.plural == "pods" && !old) {
    const ResourceInfo* sar = registry_.Find("", "v1", "serviceaccounts");
    json sa;
    try {
      sa = Decode(store_.Get(sar->key(GetString(obj, "metadata.namespace"),
                                      GetString(obj, "spec.serviceAccountName"))));
    } catch (const store::NotFound&) {
    }
    AddServiceAccountVolume(obj, sa);
  }
  // DefaultStorageClass: a claim that names no class gets the default one.
  if (r.group.empty() && r.plural == "persistentvolumeclaims" && !old &&
      !Find(obj, "spec.storageClassName")) {
    const ResourceInfo* sc = registry_.Find("storage.k8s.io", "v1", "storageclasses");
    for (const auto& kv : store_.List(sc->key_prefix()).items) {
      json c = json::parse(*kv.value);
      const json* ann = Find(c, "metadata.annotations");
      if (ann && ann->is_object() &&
          (ann->value("storageclass.kubernetes.io/is-default-class", "") == "true" ||
           ann->value("storageclass.beta.kubernetes.io/is-default-class", "") == "true")) {
        obj["spec"]["storageClassName"] = GetString(c, "metadata.name");
        break;
      }
    }
  }
}

void RestStorage::AdmitDelete(const ResourceInfo& r, const json& obj) {
  // NamespaceLifecycle: the namespaces every cluster relies on cannot be
  // deleted (dry runs included, as admission runs for them too).
  if (r.group.empty() && r.plural == "namespaces") {
    std::string name = GetString(obj, "metadata.name");
    if (name == "default" || name == "kube-system" || name == "kube-public") {
      throw StatusError(
          403, "Forbidden",
          "namespaces \"" + name + "\" is forbidden: this namespace may not be deleted",
          json{{"name", name}, {"kind", "namespaces"}});
    }
  }
}

void RestStorage::AllocateServiceAddresses(json& svc, const json* old) {
  json& spec = svc["spec"];
  std::string type = spec.value("type", "ClusterIP");
  const ResourceInfo* sr = registry_.Find("", "v1", "services");
  std::set<uint32_t> ips;
  std::set<int64_t> ports;
  std::string self_key =
      sr->key(GetString(svc, "metadata.namespace"), GetString(svc, "metadata.name"));
  for (const auto& kv : store_.List(sr->key_prefix()).items) {
    if (kv.key == self_key) {
      continue;
    }
    json s = json::parse(*kv.value);
    bool ok;
    uint32_t ip = ParseIPv4(GetString(s, "spec.clusterIP"), &ok);
    if (ok) {
      ips.insert(ip);
    }
    for (const auto& p : Find(s, "spec.ports") && Find(s, "spec.ports")->is_array()
                             ? *Find(s, "spec.ports")
                             : json::array()) {
      if (p.contains("nodePort") && p["nodePort"].is_number_integer()) {
        ports.insert(p["nodePort"].get<int64_t>());
      }
    }
  }
  std::vector<Cause> causes;
  static thread_local std::mt19937 rng{std::random_device{}()};
  if (type == "ExternalName") {
    spec.erase("clusterIP");
    spec.erase("clusterIPs");
  } else {
    std::string want = spec.value("clusterIP", "");
    if (old && want.empty()) {
      want = GetString(*old, "spec.clusterIP");
    }
    if (want == "None") {
      spec["clusterIPs"] = json::array({"None"});
    } else if (!want.empty()) {
      bool ok;
      uint32_t ip = ParseIPv4(want, &ok);
      if (!ok) {
        causes.push_back({"FieldValueInvalid",
                          "Invalid value: \"" + want + "\": must be a valid IP address",
                          "spec.clusterIPs[0]"});
      } else if (ip < kServiceBase || ip >= kServiceBase + kServiceSize) {
        causes.push_back({"FieldValueInvalid",
                          "Invalid value: \"" + want + "\": failed to allocate IP " + want +
                              ": the provided IP (" + want +
                              ") is not in the valid range. The range of valid IPs is 10.96.0.0/12",
                          "spec.clusterIPs"});
      } else if (ips.count(ip) && !(old && GetString(*old, "spec.clusterIP") == want)) {
        causes.push_back({"FieldValueInvalid",
                          "Invalid value: []string{\"" + want + "\"}: failed to allocate IP " +
                              want + ": provided IP is already allocated",
                          "spec.clusterIPs"});
      }
      spec["clusterIP"] = want;
      spec["clusterIPs"] = json::array({want});
    } else {
      std::uniform_int_distribution<uint32_t> dist(256, kServiceSize - 2);
      for (int i = 0; i < 1000; ++i) {
        uint32_t ip = kServiceBase + dist(rng);
        if (!ips.count(ip)) {
          spec["clusterIP"] = FormatIPv4(ip);
          spec["clusterIPs"] = json::array({FormatIPv4(ip)});
          break;
        }
      }
    }
  }
  if (type == "NodePort" || type == "LoadBalancer") {
    std::map<std::pair<int64_t, std::string>, int64_t> old_ports;
    if (old) {
      for (const auto& p : Find(*old, "spec.ports") && Find(*old, "spec.ports")->is_array()
                               ? *Find(*old, "spec.ports")
                               : json::array()) {
        if (p.contains("nodePort")) {
          old_ports[{p.value("port", 0), p.value("protocol", "TCP")}] = p["nodePort"];
        }
      }
    }
    bool allocate = type == "NodePort" || spec.value("allocateLoadBalancerNodePorts", true);
    if (spec.contains("ports") && spec["ports"].is_array()) {
      for (size_t i = 0; i < spec["ports"].size(); ++i) {
        json& p = spec["ports"][i];
        int64_t np = p.contains("nodePort") && p["nodePort"].is_number_integer()
                         ? p["nodePort"].get<int64_t>()
                         : 0;
        if (np == 0) {
          auto o = old_ports.find({p.value("port", 0), p.value("protocol", "TCP")});
          if (o != old_ports.end()) {
            np = o->second;
          }
        }
        if (np != 0) {
          bool reused = false;
          for (auto& [k, v] : old_ports) {
            reused = reused || v == np;
          }
          if (ports.count(np) && !reused) {
            causes.push_back(
                {"FieldValueInvalid",
                 "Invalid value: " + std::to_string(np) + ": provided port is already allocated",
                 "spec.ports[" + std::to_string(i) + "].nodePort"});
          }
          p["nodePort"] = np;
          ports.insert(np);
        } else if (allocate) {
          std::uniform_int_distribution<int> dist(kNodePortMin, kNodePortMax);
          for (int k = 0; k < 10000; ++k) {
            int64_t cand = dist(rng);
            if (!ports.count(cand)) {
              p["nodePort"] = cand;
              ports.insert(cand);
              break;
            }
          }
        }
      }
    }
  } else if (spec.contains("ports") && spec["ports"].is_array() && old) {
    for (auto& p : spec["ports"]) {
      if (p.is_object() && p.contains("nodePort") && p["nodePort"] == 0) {
        p.erase("nodePort");
      }
    }
  }
  if (!causes.empty()) {
    throw api::Invalid("", "Service", GetString(svc, "metadata.name"), causes);
  }
}

json RestStorage::ToStorage(const ResourceInfo& r, const json& obj) const {
  const ResourceInfo& sr = registry_.storage(r);
  json stored = r.to_storage ? r.to_storage(obj) : obj;
  stored["apiVersion"] = sr.api_version();
  stored["kind"] = sr.kind;
  return stored;
}

json RestStorage::Create(const ResourceInfo& r, const std::string& ns, json obj,
                         const WriteOptions& o) {
  return CreateObject(r, ns, std::move(obj), o, false);
}

json RestStorage::CreateObject(const ResourceInfo& r, const std::string& ns, json obj,
                               const WriteOptions& o, bool apply) {
  if (r.converted()) {
    WriteOptions so = o;
    if (so.managed_api_version.empty()) {
      so.managed_api_version = r.api_version();
    }
    return Present(r, CreateObject(registry_.storage(r), ns, ToStorage(r, obj), so, apply));
  }
  std::unique_lock<std::mutex> alloc_lock;
  if (r.group.empty() && r.plural == "services") {
    alloc_lock = std::unique_lock(AllocationMutex());
  }
  // Only a name the server made up may be made up again on a clash.
  bool generated =
      GetString(obj, "metadata.name").empty() && !GetString(obj, "metadata.generateName").empty();
  PrepareCreate(r, ns, obj, o, apply);
  std::string name = GetString(obj, "metadata.name");
  if (o.dry_run) {
    return obj;
  }
  for (int attempt = 0;; ++attempt) {
    try {
      store::KeyValue kv = store_.Create(r.key(ns, name), obj.dump());
      Meta(obj)["resourceVersion"] = std::to_string(kv.mod_revision);
      return obj;
    } catch (const store::AlreadyExists&) {
      if (!generated || attempt >= 8) {
        throw api::AlreadyExists(r.group, r.plural, name);
      }
      name = GetString(obj, "metadata.generateName") + RandomSuffix(5);
      Meta(obj)["name"] = name;
    }
  }
}

bool RestStorage::PrepareUpdate(const ResourceInfo& r, const json& old, json& obj,
                                const std::string& subresource, const WriteOptions& o) {
  if (!obj.is_object()) {
    throw BadRequest("the body of an update must be an object");
  }
  const json& old_meta = old.at("metadata");
  json& meta = Meta(obj);
  // The managedFields a write of the main resource carries replace the
  // stored ones when they are valid (how kubectl moves client-side apply's
  // fields to server-side apply); `[]` clears them. Subresources never
  // change them.
  std::optional<json> body_managed;
  if (subresource.empty() && meta.contains("managedFields")) {
    body_managed = meta["managedFields"];
  }
  std::string name = old_meta.value("name", "");
  if (meta.contains("name") && meta["name"] != name) {
    throw BadRequest("the name of the object (" + meta.value("name", "") +
                     ") does not match the name on the URL (" + name + ")");
  }
  if (r.namespaced && meta.contains("namespace") && meta["namespace"] != old_meta["namespace"] &&
      meta["namespace"] != "") {
    throw BadRequest(
        "the namespace of the provided object does not match the namespace sent on "
        "the request");
  }
  if (meta.contains("uid") && meta["uid"].is_string() && meta["uid"] != "" &&
      meta["uid"] != old_meta.value("uid", "")) {
    throw api::Conflict(r.group, r.plural, name,
                        "Precondition failed: UID in precondition: " + meta.value("uid", "") +
                            ", UID in object meta: " + old_meta.value("uid", ""));
  }
  if (subresource == "status") {
    // The status subresource changes status only (and the managers an apply
    // to it recorded).
    json next = old;
    if (obj.contains("status")) {
      next["status"] = obj["status"];
    } else {
      next.erase("status");
    }
    if (const json* mf = Find(obj, "metadata.managedFields"); mf && o.keep_managed_fields) {
      Meta(next)["managedFields"] = *mf;
    }
    obj = std::move(next);
  } else if (subresource == "approval") {
    // A CertificateSigningRequest's approval changes its conditions only.
    json next = old;
    const json* conditions = Find(obj, "status.conditions");
    if (conditions) {
      next["status"]["conditions"] = *conditions;
    } else if (next.contains("status")) {
      next["status"].erase("conditions");
    }
    obj = std::move(next);
  } else if (r.has_subresource("status") && subresource != "binding") {
    // (A binding writes spec.nodeName and the PodScheduled condition together.)
    if (old.contains("status")) {
      obj["status"] = old["status"];
    } else {
      obj.erase("status");
    }
  }
  json& m = Meta(obj);
  for (const char* k : {"name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                        "deletionGracePeriodSeconds", "generation"}) {
    if (old_meta.contains(k)) {
      m[k] = old_meta[k];
    } else {
      m.erase(k);
    }
  }
  m.erase("resourceVersion");
  m.erase("selfLink");
  for (const char* k : {"labels", "annotations", "finalizers", "ownerReferences"}) {
    if (m.contains(k) && (m[k].is_null() || m[k].empty())) {
      m.erase(k);
    }
  }
  obj["apiVersion"] = r.api_version();
  obj["kind"] = r.kind;
  if (r.defaults) {
    r.defaults(obj);
  }
  if (r.tracks_generation && SpecPart(obj) != SpecPart(old)) {
    m["generation"] = old_meta.value("generation", int64_t{0}) + 1;
  }
  if (!o.keep_managed_fields) {
    // An apply has set managedFields already; anything else is recorded here.
    std::vector<api::ManagedFieldsEntry> managers;
    const json* live = Find(old, "metadata.managedFields");
    if (live) {
      managers = api::ParseManagedFields(*live).value_or(managers);
    }
    if (body_managed) {
      const json& b = *body_managed;
      bool reset =
          b.is_array() && (b.empty() || (b.size() == 1 && b[0].is_object() && b[0].empty()));
      if (reset) {
        managers.clear();
      } else if (auto given = api::ParseManagedFields(b); given && !given->empty()) {
        managers = *given;
      }
    }
    // An object nobody owns any field of stays so until it is applied.
    if (!managers.empty() && !o.field_manager.empty() && subresource != "binding") {
      api::FieldManager fm(types_, r.type_name, r.has_subresource("status"));
      std::string sub = o.managed_subresource.empty() ? subresource : o.managed_subresource;
      fm.Update(
          managers, old, obj,
          {o.field_manager, o.managed_api_version.empty() ? r.api_version() : o.managed_api_version,
           sub, FormatTime(Now()), false});
    }
    if (managers.empty()) {
      Meta(obj).erase("managedFields");
    } else {
      Meta(obj)["managedFields"] = api::EncodeManagedFields(managers);
    }
  }
  json old_cmp = old;
  Meta(old_cmp).erase("resourceVersion");
  if (obj == old_cmp) {
    return false;
  }
  Admit(r, obj, &old);
  Validate(r, obj, &old);
  return true;
}

json RestStorage::Commit(const ResourceInfo& r, const std::string& ns, const std::string& name,
                         json obj, int64_t rev, bool dry_run) {
  bool finished = HasDeletionTimestamp(obj) && !HasFinalizers(obj);
  if (r.group.empty() && r.plural == "namespaces") {
    // A namespace also waits for the finalizers of its spec (the namespace controller's).
    const json* spec_fins = Find(obj, "spec.finalizers");
    finished = finished && (!spec_fins || !spec_fins->is_array() || spec_fins->empty());
  }
  if (dry_run) {
    Meta(obj)["resourceVersion"] = std::to_string(rev);
    return obj;
  }
  if (finished) {
    store::KeyValue kv = store_.Delete(r.key(ns, name), rev);
    Meta(obj)["resourceVersion"] = std::to_string(kv.mod_revision);
    return obj;
  }
  json stored = obj;
  Meta(stored).erase("resourceVersion");
  store::KeyValue kv = store_.Update(r.key(ns, name), stored.dump(), rev);
  Meta(obj)["resourceVersion"] = std::to_string(kv.mod_revision);
  return obj;
}

json RestStorage::Update(const ResourceInfo& r, const std::string& ns, const std::string& name,
                         json obj, const std::string& subresource, const WriteOptions& o) {
  if (!obj.is_object()) {
    throw BadRequest("the body of an update must be an object");
  }
  if (r.converted()) {
    WriteOptions so = o;
    if (so.managed_api_version.empty()) {
      so.managed_api_version = r.api_version();
    }
    return Present(r, Update(registry_.storage(r), ns, name, ToStorage(r, obj), subresource, so));
  }
  std::string want_rv = GetString(obj, "metadata.resourceVersion");
  for (int attempt = 0;; ++attempt) {
    int64_t rev = 0;
    json old = Read(r, ns, name, &rev);
    if (!want_rv.empty() && want_rv != std::to_string(rev)) {
      throw api::Conflict(r.group, r.plural, name,
                          "the object has been modified; please apply your changes to the latest "
                          "version and try again");
    }
    json next = obj;
    std::unique_lock<std::mutex> alloc_lock;
    if (r.group.empty() && r.plural == "services") {
      alloc_lock = std::unique_lock(AllocationMutex());
    }
    if (!PrepareUpdate(r, old, next, subresource, o)) {
      return old;
    }
    try {
      return Commit(r, ns, name, std::move(next), rev, o.dry_run);
    } catch (const store::Conflict&) {
      if (!want_rv.empty() || attempt >= kMaxRetries) {
        throw api::Conflict(r.group, r.plural, name,
                            "the object has been modified; please apply your changes to the "
                            "latest version and try again");
      }
    } catch (const store::NotFound&) {
      throw api::NotFound(r.group, r.plural, name);
    }
  }
}

json RestStorage::ApplyPatch(const ResourceInfo& r, const json& old, PatchType type,
                             const json& patch) const {
  json patched;
  try {
    switch (type) {
      case PatchType::kJson:
        patched = api::ApplyJsonPatch(old, patch);
        break;
      case PatchType::kMerge:
        patched = api::ApplyMergePatch(old, patch);
        break;
      case PatchType::kStrategic:
      case PatchType::kApply:
        patched = api::ApplyStrategicMergePatch(types_, r.type_name, old, patch);
        break;
    }
  } catch (const api::PatchError& e) {
    throw StatusError(422, "Invalid", e.what());
  }
  if (!patched.is_object()) {
    throw StatusError(422, "Invalid", "the patch does not result in an object");
  }
  api::FieldProblems problems = api::CheckFields(types_, r.type_name, patched);
  if (!problems.errors.empty()) {
    throw BadRequest(problems.errors.front());
  }
  return patched;
}

json RestStorage::ApplyConfig(const ResourceInfo& r, const json& old, const json& config,
                              const WriteOptions& o, bool force, const std::string& subresource) {
  if (Find(config, "metadata.managedFields")) {
    throw BadRequest("metadata.managedFields must be nil");
  }
  json merged = ApplyPatch(r, old, PatchType::kApply, config);
  std::vector<api::ManagedFieldsEntry> live;
  if (const json* m = Find(old, "metadata.managedFields")) {
    live = api::ParseManagedFields(*m).value_or(live);
  }
  api::FieldManager fm(types_, r.type_name, r.has_subresource("status"));
  api::FieldManagerRequest req{o.field_manager, r.api_version(), subresource, FormatTime(Now()),
                               force};
  const std::string kLastApplied = "kubectl.kubernetes.io/last-applied-configuration";
  const json* annotations = Find(old, "metadata.annotations");
  json last_applied;
  if (annotations && annotations->is_object() && annotations->contains(kLastApplied) &&
      (*annotations)[kLastApplied].is_string()) {
    try {
      last_applied = json::parse((*annotations)[kLastApplied].get<std::string>());
    } catch (const json::exception&) {
    }
  }
  std::vector<api::ManagedFieldsEntry> managers;
  try {
    merged = fm.Apply(old, live, config, merged, req, &managers);
  } catch (const api::ApplyConflictError& e) {
    // kubectl moving from client-side to server-side apply: conflicts on
    // fields the last client-side apply set, to the values they still have,
    // are the same user's and are taken over.
    std::vector<api::ApplyConflict> remaining = e.conflicts();
    if (o.field_manager == "kubectl" && last_applied.is_object() &&
        last_applied.value("apiVersion", "") == r.api_version()) {
      std::vector<std::string> still = fm.StillApplied(last_applied, old).Paths();
      remaining.erase(std::remove_if(remaining.begin(), remaining.end(),
                                     [&](const api::ApplyConflict& c) {
                                       return std::find(still.begin(), still.end(), c.path) !=
                                              still.end();
                                     }),
                      remaining.end());
    }
    if (!remaining.empty()) {
      // Only the conflicts client-side apply does not explain are reported.
      api::ApplyConflictError left(remaining, api::FieldSet());
      json causes = json::array();
      for (const auto& c : left.conflicts()) {
        causes.push_back({{"reason", "FieldManagerConflict"},
                          {"message", "conflict with " + c.manager},
                          {"field", c.path}});
      }
      throw StatusError(409, "Conflict", left.what(), json{{"causes", causes}});
    }
    req.force = true;
    merged =
        fm.Apply(old, live, config, ApplyPatch(r, old, PatchType::kApply, config), req, &managers);
  }
  // kubectl's last-applied annotation, where there is one, follows what
  // kubectl applies on the server (so a later client-side apply works).
  if (o.field_manager == "kubectl" && !last_applied.is_null()) {
    json applied = config;
    if (const json* a = Find(applied, "metadata.annotations"); a && a->is_object()) {
      applied["metadata"]["annotations"].erase(kLastApplied);
      if (applied["metadata"]["annotations"].empty()) {
        applied["metadata"].erase("annotations");
      }
    } else if (a) {
      applied["metadata"].erase("annotations");
    }
    Meta(merged)["annotations"][kLastApplied] = applied.dump();
  }
  if (managers.empty()) {
    Meta(merged).erase("managedFields");
  } else {
    Meta(merged)["managedFields"] = api::EncodeManagedFields(managers);
  }
  return merged;
}

json RestStorage::Patch(const ResourceInfo& r, const std::string& ns, const std::string& name,
                        PatchType type, const json& patch, const std::string& subresource,
                        const WriteOptions& o, bool force, bool* created) {
  if (r.converted()) {
    // The patch is in `r`'s terms: applied to the object as `r` shows it,
    // then written as an update of the stored version over what was read.
    bool precondition = Find(patch, "metadata.resourceVersion") != nullptr;
    for (int attempt = 0;; ++attempt) {
      json old;
      try {
        old = Get(r, ns, name);
      } catch (const StatusError& e) {
        if (type == PatchType::kApply && e.code() == 404 && subresource.empty()) {
          json obj = patch;
          Meta(obj)["name"] = name;
          if (created) {
            *created = true;
          }
          return CreateObject(r, ns, obj, o, true);
        }
        throw;
      }
      WriteOptions po = o;
      json patched;
      if (type == PatchType::kApply) {
        patched = ApplyConfig(r, old, patch, o, force, subresource);
        po.keep_managed_fields = true;
      } else {
        patched = ApplyPatch(r, old, type, patch);
      }
      if (!precondition) {
        Meta(patched)["resourceVersion"] = GetString(old, "metadata.resourceVersion");
      }
      try {
        return Update(r, ns, name, patched, subresource, po);
      } catch (const StatusError& e) {
        if (e.code() != 409 || precondition || attempt >= kMaxRetries) {
          throw;
        }
      }
    }
  }
  for (int attempt = 0;; ++attempt) {
    int64_t rev = 0;
    json old;
    try {
      old = Read(r, ns, name, &rev);
    } catch (const StatusError& e) {
      if (type == PatchType::kApply && e.code() == 404 && subresource.empty()) {
        // Server-side apply creates what does not exist yet.
        if (Find(patch, "metadata.managedFields")) {
          throw BadRequest("metadata.managedFields must be nil");
        }
        json obj = patch;
        Meta(obj)["name"] = name;
        if (created) {
          *created = true;
        }
        return CreateObject(r, ns, obj, o, true);
      }
      throw;
    }
    json patched = type == PatchType::kApply ? ApplyConfig(r, old, patch, o, force, subresource)
                                             : ApplyPatch(r, old, type, patch);
    std::string want_rv = GetString(patched, "metadata.resourceVersion");
    if (want_rv != std::to_string(rev) && !want_rv.empty() &&
        want_rv != GetString(old, "metadata.resourceVersion")) {
      throw api::Conflict(r.group, r.plural, name,
                          "the object has been modified; please apply your changes to the latest "
                          "version and try again");
    }
    bool precondition = Find(patch, "metadata.resourceVersion") != nullptr;
    std::unique_lock<std::mutex> alloc_lock;
    if (r.group.empty() && r.plural == "services") {
      alloc_lock = std::unique_lock(AllocationMutex());
    }
    // (An apply has recorded its managedFields already.)
    WriteOptions po = o;
    po.keep_managed_fields = type == PatchType::kApply;
    if (!PrepareUpdate(r, old, patched, subresource, po)) {
      return old;
    }
    try {
      return Commit(r, ns, name, std::move(patched), rev, o.dry_run);
    } catch (const store::Conflict&) {
      if (precondition || attempt >= kMaxRetries) {
        throw api::Conflict(r.group, r.plural, name,
                            "the object has been modified; please apply your changes to the "
                            "latest version and try again");
      }
    } catch (const store::NotFound&) {
      throw api::NotFound(r.group, r.plural, name);
    }
  }
}

std::pair<json, bool> RestStorage::Delete(const ResourceInfo& r, const std::string& ns,
                                          const std::string& name, const json& options,
                                          bool dry_run) {
  if (r.converted()) {
    auto [obj, gone] = Delete(registry_.storage(r), ns, name, options, dry_run);
    return {Present(r, std::move(obj)), gone};
  }
  for (int attempt = 0;; ++attempt) {
    int64_t rev = 0;
    json obj = Read(r, ns, name, &rev);
    AdmitDelete(r, obj);
    if (const json* pre = Find(options, "preconditions"); pre && pre->is_object()) {
      std::string uid = pre->value("uid", "");
      std::string rv = pre->value("resourceVersion", "");
      if (!uid.empty() && uid != GetString(obj, "metadata.uid")) {
        throw api::Conflict(r.group, r.plural, name,
                            "Precondition failed: UID in precondition: " + uid +
                                ", UID in object meta: " + GetString(obj, "metadata.uid"));
      }
      if (!rv.empty() && rv != std::to_string(rev)) {
        throw api::Conflict(r.group, r.plural, name,
                            "Precondition failed: ResourceVersion in precondition: " + rv +
                                ", ResourceVersion in object meta: " + std::to_string(rev));
      }
    }
    std::string policy = options.is_object() ? options.value("propagationPolicy", "") : "";
    if (policy.empty() && options.is_object() && options.contains("orphanDependents") &&
        options["orphanDependents"].is_boolean()) {
      policy = options["orphanDependents"].get<bool>() ? "Orphan" : "Background";
    }
    if (!policy.empty() && policy != "Background" && policy != "Foreground" && policy != "Orphan") {
      throw api::Invalid(r.group, "DeleteOptions", "",
                         {{"FieldValueNotSupported",
                           "Unsupported value: \"" + policy +
                               "\": supported values: \"Foreground\", \"Background\", \"Orphan\"",
                           "propagationPolicy"}});
    }
    json& meta = Meta(obj);
    bool already = HasDeletionTimestamp(obj);
    json next = obj;
    json& nm = Meta(next);
    nm.erase("resourceVersion");
    // Finalizers that the garbage collector acts on.
    auto add_finalizer = [&](const char* f) {
      json& fs = nm.contains("finalizers") && nm["finalizers"].is_array()
                     ? nm["finalizers"]
                     : (nm["finalizers"] = json::array());
      if (std::find(fs.begin(), fs.end(), f) == fs.end()) {
        fs.push_back(f);
      }
    };
    if (!already) {
      if (policy == "Foreground") {
        add_finalizer("foregroundDeletion");
      } else if (policy == "Orphan") {
        add_finalizer("orphan");
      }
    }
    // Pods bound to a node terminate gracefully: the kubelet removes them.
    int64_t grace = -1;
    if (r.group.empty() && r.plural == "pods") {
      std::string phase = GetString(obj, "status.phase");
      bool bound = !GetString(obj, "spec.nodeName").empty();
      grace = Find(obj, "spec.terminationGracePeriodSeconds") &&
                      Find(obj, "spec.terminationGracePeriodSeconds")->is_number_integer()
                  ? Find(obj, "spec.terminationGracePeriodSeconds")->get<int64_t>()
                  : 30;
      if (options.is_object() && options.contains("gracePeriodSeconds") &&
          options["gracePeriodSeconds"].is_number_integer()) {
        grace = options["gracePeriodSeconds"].get<int64_t>();
      }
      if (!bound || phase == "Succeeded" || phase == "Failed") {
        grace = 0;
      }
    }
    bool graceful = grace > 0;
    bool namespace_finalizing = r.group.empty() && r.plural == "namespaces" &&
                                Find(obj, "spec.finalizers") &&
                                !Find(obj, "spec.finalizers")->empty();
    if (HasFinalizers(next) || graceful || namespace_finalizing) {
      if (already && !graceful) {
        return {obj, false};
      }
      if (!already) {
        nm["deletionTimestamp"] =
            FormatTime(Now() + std::chrono::seconds(std::max<int64_t>(grace, 0)));
        nm["deletionGracePeriodSeconds"] = std::max<int64_t>(grace, 0);
        if (namespace_finalizing) {
          next["status"]["phase"] = "Terminating";
        }
      } else if (graceful) {
        // A shorter grace period may replace a longer one.
        int64_t cur = nm.value("deletionGracePeriodSeconds", int64_t{0});
        if (grace >= cur) {
          return {obj, false};
        }
        nm["deletionGracePeriodSeconds"] = grace;
        nm["deletionTimestamp"] = FormatTime(Now() + std::chrono::seconds(grace));
      }
      if (dry_run) {
        return {next, false};
      }
      try {
        store::KeyValue kv = store_.Update(r.key(ns, name), next.dump(), rev);
        Meta(next)["resourceVersion"] = std::to_string(kv.mod_revision);
        return {next, false};
      } catch (const store::Conflict&) {
        if (attempt >= kMaxRetries) {
          throw;
        }
        continue;
      }
    }
    (void)meta;
    if (dry_run) {
      return {obj, true};
    }
    try {
      store::KeyValue kv = store_.Delete(r.key(ns, name), rev);
      Meta(obj)["resourceVersion"] = std::to_string(kv.mod_revision);
      return {obj, true};
    } catch (const store::Conflict&) {
      if (attempt >= kMaxRetries) {
        throw;
      }
    } catch (const store::NotFound&) {
      throw api::NotFound(r.group, r.plural, name);
    }
  }
}

json RestStorage::DeleteCollection(const ResourceInfo& r, const std::string& ns,
                                   const ListRequest& req, const json& options, bool dry_run) {
  json list = List(r, ns, req);
  json items = json::array();
  for (const auto& item : list["items"]) {
    try {
      auto [obj, gone] = Delete(r, GetString(item, "metadata.namespace"),
                                GetString(item, "metadata.name"), options, dry_run);
      items.push_back(obj);
    } catch (const StatusError& e) {
      if (e.code() != 404) {
        throw;
      }
    }
  }
  list["items"] = items;
  list["metadata"] = {{"resourceVersion", std::to_string(store_.Revision())}};
  return list;
}

}  // namespace minik::apiserver
