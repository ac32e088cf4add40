// The built-in resources minik serves, one registration each. Table columns
// follow kubectl's printers on a real cluster (priority 1 = `-o wide`).

#include <set>

#include "api/registration.h"
#include "common/clock.h"

namespace minik::api {

namespace {
const json kNothing = json::object();
}  // namespace

const json& At(const json& o, const char* dotted) {
  const json* v = Find(o, dotted);
  return v ? *v : kNothing;
}
std::string S(const json& o, const char* dotted, const std::string& def) {
  const json* v = Find(o, dotted);
  if (!v || v->is_null()) {
    return def;
  }
  return v->is_string() ? v->get<std::string>() : v->dump();
}
std::string Name(const json& o) {
  return S(o, "metadata.name");
}
std::string AgeOf(const json& o) {
  return Age(At(o, "metadata.creationTimestamp"));
}

TableColumn Col(std::string name, std::string type, int priority, std::string description) {
  return TableColumn{std::move(name), std::move(type), "", std::move(description), priority};
}
TableColumn NameCol() {
  return TableColumn{"Name", "string", "name",
                     "Name must be unique within a namespace. Is required when creating "
                     "resources, although some resources may allow a client to request the "
                     "generation of an appropriate name automatically.",
                     0};
}
TableColumn AgeCol() {
  return Col("Age", "string", 0,
             "CreationTimestamp is a timestamp representing the server time when this object "
             "was created.");
}

std::pair<std::string, std::string> ContainersImages(const json& pod_spec) {
  std::string names, images;
  for (const auto& c : pod_spec.value("containers", json::array())) {
    names += (names.empty() ? "" : ",") + c.value("name", "");
    images += (images.empty() ? "" : ",") + c.value("image", "");
  }
  return {names, images};
}

namespace {

std::string ServicePorts(const json& svc) {
  std::string out;
  for (const auto& p : At(svc, "spec.ports").is_array() ? At(svc, "spec.ports") : json::array()) {
    std::string s = std::to_string(p.value("port", 0));
    if (p.contains("nodePort") && p["nodePort"].is_number_integer() && p["nodePort"] != 0) {
      s += ":" + std::to_string(p["nodePort"].get<int>());
    }
    s += "/" + p.value("protocol", std::string("TCP"));
    out += (out.empty() ? "" : ",") + s;
  }
  return out.empty() ? "<none>" : out;
}

std::string ServiceExternalIP(const json& svc) {
  std::string type = S(svc, "spec.type", "ClusterIP");
  std::string ext = Join(At(svc, "spec.externalIPs"), ",", "");
  if (type == "ExternalName") {
    return S(svc, "spec.externalName");
  }
  if (type == "LoadBalancer") {
    std::string lb;
    for (const auto& i : At(svc, "status.loadBalancer.ingress").is_array()
                             ? At(svc, "status.loadBalancer.ingress")
                             : json::array()) {
      std::string a = i.value("ip", "");
      if (a.empty()) {
        a = i.value("hostname", "");
      }
      lb += (lb.empty() ? "" : ",") + a;
    }
    std::string all = lb + (lb.empty() || ext.empty() ? "" : ",") + ext;
    return all.empty() ? "<pending>" : all;
  }
  return ext.empty() ? "<none>" : ext;
}

std::string AccessModes(const json& modes) {
  std::string out;
  static const std::map<std::string, std::string> kShort = {{"ReadWriteOnce", "RWO"},
                                                            {"ReadOnlyMany", "ROX"},
                                                            {"ReadWriteMany", "RWX"},
                                                            {"ReadWriteOncePod", "RWOP"}};
  for (const auto& m : modes.is_array() ? modes : json::array()) {
    auto it = kShort.find(m.is_string() ? m.get<std::string>() : "");
    if (it != kShort.end()) {
      out += (out.empty() ? "" : ",") + it->second;
    }
  }
  return out;
}

std::string ConditionStatus(const json& obj, const std::string& type) {
  for (const auto& c :
       At(obj, "status.conditions").is_array() ? At(obj, "status.conditions") : json::array()) {
    if (c.value("type", "") == type) {
      return c.value("status", "");
    }
  }
  return "";
}

json PodCells(const json& pod) {
  int total = 0, ready = 0, restarts = 0;
  total = static_cast<int>(At(pod, "spec.containers").size());
  std::string last_restart;
  for (const auto& cs : At(pod, "status.containerStatuses").is_array()
                            ? At(pod, "status.containerStatuses")
                            : json::array()) {
    restarts += cs.value("restartCount", 0);
    if (cs.value("ready", false) && cs.contains("state") && cs["state"].contains("running")) {
      ++ready;
    }
    if (const json* t = Find(cs, "lastState.terminated.finishedAt"); t && t->is_string()) {
      last_restart = Age(*t);
    }
  }
  std::string restart_cell = std::to_string(restarts);
  if (restarts > 0 && !last_restart.empty()) {
    restart_cell += " (" + last_restart + " ago)";
  }
  std::string ip = S(pod, "status.podIP", "<none>");
  std::string gates = "<none>";
  if (At(pod, "spec.readinessGates").is_array() && !At(pod, "spec.readinessGates").empty()) {
    int ok = 0;
    for (const auto& g : At(pod, "spec.readinessGates")) {
      if (ConditionStatus(pod, g.value("conditionType", "")) == "True") {
        ++ok;
      }
    }
    gates = std::to_string(ok) + "/" + std::to_string(At(pod, "spec.readinessGates").size());
  }
  return {Name(pod),
          std::to_string(ready) + "/" + std::to_string(total),
          PodStatusReason(pod),
          restart_cell,
          AgeOf(pod),
          ip.empty() ? "<none>" : ip,
          S(pod, "spec.nodeName", "<none>"),
          S(pod, "status.nominatedNodeName", "<none>"),
          gates};
}

json NodeCells(const json& node) {
  std::string status;
  for (const auto& c :
       At(node, "status.conditions").is_array() ? At(node, "status.conditions") : json::array()) {
    if (c.value("type", "") == "Ready") {
      status = c.value("status", "") == "True" ? "Ready" : "NotReady";
    }
  }
  if (status.empty()) {
    status = "Unknown";
  }
  if (At(node, "spec.unschedulable") == true) {
    status += ",SchedulingDisabled";
  }
  std::set<std::string> roles;
  for (auto& [k, v] : At(node, "metadata.labels").items()) {
    const std::string prefix = "node-role.kubernetes.io/";
    if (k.rfind(prefix, 0) == 0 && k.size() > prefix.size()) {
      roles.insert(k.substr(prefix.size()));
    } else if (k == "kubernetes.io/role" && v.is_string()) {
      roles.insert(v.get<std::string>());
    }
  }
  std::string role_str;
  for (const auto& r : roles) {
    role_str += (role_str.empty() ? "" : ",") + r;
  }
  std::string internal = "<none>", external = "<none>";
  for (const auto& a :
       At(node, "status.addresses").is_array() ? At(node, "status.addresses") : json::array()) {
    if (a.value("type", "") == "InternalIP" && internal == "<none>") {
      internal = a.value("address", "");
    } else if (a.value("type", "") == "ExternalIP" && external == "<none>") {
      external = a.value("address", "");
    }
  }
  return {Name(node),
          status,
          role_str.empty() ? "<none>" : role_str,
          AgeOf(node),
          S(node, "status.nodeInfo.kubeletVersion"),
          internal,
          external,
          S(node, "status.nodeInfo.osImage", "<unknown>"),
          S(node, "status.nodeInfo.kernelVersion", "<unknown>"),
          S(node, "status.nodeInfo.containerRuntimeVersion", "<unknown>")};
}

json EventCells(const json& e) {
  std::string last = S(e, "lastTimestamp");
  if (last.empty()) {
    last = S(e, "eventTime");
  }
  if (last.empty()) {
    last = S(e, "metadata.creationTimestamp");
  }
  std::string first = S(e, "firstTimestamp");
  if (first.empty()) {
    first = S(e, "eventTime");
  }
  std::string kind = S(e, "involvedObject.kind");
  std::string object = kind.empty() ? S(e, "involvedObject.name") : [&] {
    std::string k = kind;
    for (auto& ch : k) {
      ch = static_cast<char>(std::tolower(ch));
    }
    return k + "/" + S(e, "involvedObject.name");
  }();
  std::string source = S(e, "source.component");
  if (source.empty()) {
    source = S(e, "reportingComponent");
  }
  if (!S(e, "source.host").empty()) {
    source += ", " + S(e, "source.host");
  }
  int count = e.value("count", 1);
  return {last.empty() ? "<unknown>" : Age(json(last)),
          S(e, "type"),
          S(e, "reason"),
          object,
          S(e, "involvedObject.fieldPath"),
          source,
          S(e, "message"),
          first.empty() ? "<unknown>" : Age(json(first)),
          count,
          Name(e)};
}

std::string JobStatus(const json& job) {
  // The first of these that holds, in Kubernetes' order.
  auto is_true = [&](const char* type) {
    for (const auto& c :
         At(job, "status.conditions").is_array() ? At(job, "status.conditions") : json::array()) {
      if (c.value("type", "") == type && c.value("status", "") == "True") {
        return true;
      }
    }
    return false;
  };
  if (is_true("Complete")) {
    return "Complete";
  }
  if (is_true("Failed")) {
    return "Failed";
  }
  if (At(job, "metadata.deletionTimestamp").is_string()) {
    return "Terminating";
  }
  for (const char* t : {"Suspended", "FailureTarget", "SuccessCriteriaMet"}) {
    if (is_true(t)) {
      return t;
    }
  }
  return "Running";
}

std::string JobDuration(const json& job) {
  SystemTime start, end;
  if (!ParseTime(S(job, "status.startTime"), &start)) {
    return "";
  }
  if (!ParseTime(S(job, "status.completionTime"), &end)) {
    end = Now();
  }
  return HumanDuration(std::chrono::duration_cast<std::chrono::seconds>(end - start).count());
}

std::string IngressHosts(const json& ing) {
  std::string out;
  std::set<std::string> seen;
  for (const auto& r : At(ing, "spec.rules").is_array() ? At(ing, "spec.rules") : json::array()) {
    std::string h = r.value("host", "");
    if (!h.empty() && seen.insert(h).second) {
      out += (out.empty() ? "" : ",") + h;
    }
  }
  return out.empty() ? "*" : out;
}

std::string IngressAddress(const json& ing) {
  std::string out;
  for (const auto& i : At(ing, "status.loadBalancer.ingress").is_array()
                           ? At(ing, "status.loadBalancer.ingress")
                           : json::array()) {
    std::string a = i.value("ip", "");
    if (a.empty()) {
      a = i.value("hostname", "");
    }
    out += (out.empty() ? "" : ",") + a;
  }
  return out;
}

std::string IntOrString(const json& v, const std::string& def = "N/A") {
  if (v.is_null()) {
    return def;
  }
  return v.is_string() ? v.get<std::string>() : v.dump();
}

std::string BindingSubjects(const json& rb, const std::string& kind) {
  std::string out;
  for (const auto& s : At(rb, "subjects").is_array() ? At(rb, "subjects") : json::array()) {
    if (s.value("kind", "") == kind) {
      std::string n = s.value("name", "");
      if (kind == "ServiceAccount") {
        n = s.value("namespace", "") + ":" + n;
      }
      out += (out.empty() ? "" : ", ") + n;
    }
  }
  return out;
}

}  // namespace

std::vector<TableColumn> Cols(std::initializer_list<TableColumn> cols) {
  return cols;
}

ResourceInfo R(std::string group, std::string version, std::string kind, std::string plural,
               bool namespaced) {
  ResourceInfo r;
  r.group = std::move(group);
  r.version = std::move(version);
  r.kind = std::move(kind);
  r.plural = std::move(plural);
  r.singular = r.kind;
  for (auto& ch : r.singular) {
    ch = static_cast<char>(std::tolower(ch));
  }
  r.namespaced = namespaced;
  r.type_name = Package(r.group) + "." + r.version + "." + r.kind;
  r.columns = {NameCol(), AgeCol()};
  r.cells = [](const json& o) { return json{Name(o), AgeOf(o)}; };
  return r;
}

std::string Package(const std::string& group) {
  if (group.empty()) {
    return "core";
  }
  auto dot = group.find('.');
  return dot == std::string::npos ? group : group.substr(0, dot);
}

void RegisterBuiltinResources(ResourceRegistry& reg) {
  auto add = [&](ResourceInfo r) {
    if (r.type_name.empty()) {
      r.type_name = Package(r.group) + "." + r.version + "." + r.kind;
    }
    reg.Add(std::move(r));
  };

  // ---- core/v1 ----
  {
    auto r = R("", "v1", "Pod", "pods", true);
    r.short_names = {"po"};
    r.categories = {"all"};
    r.subresources = {"status", "binding", "log", "exec", "attach", "portforward"};
    r.reset_status_on_create = true;
    r.defaults = DefaultPod;
    r.validate = ValidatePod;
    r.columns =
        Cols({NameCol(),
              Col("Ready", "string", 0,
                  "The aggregate readiness state of this pod for accepting traffic."),
              Col("Status", "string", 0, "The aggregate status of the containers in this pod."),
              Col("Restarts", "string", 0,
                  "The number of times the containers in this pod have been restarted and when the "
                  "last container in this pod has restarted."),
              AgeCol(),
              Col("IP", "string", 1,
                  "IP address allocated to the pod. Routable at least within the cluster. Empty if "
                  "not yet allocated."),
              Col("Node", "string", 1,
                  "NodeName is a request to schedule this pod onto a specific node."),
              Col("Nominated Node", "string", 1,
                  "nominatedNodeName is set only when this pod preempts other pods on the node."),
              Col("Readiness Gates", "string", 1,
                  "If specified, all readiness gates will be evaluated for pod readiness.")});
    r.cells = PodCells;
    add(r);
  }
  {
    auto r = R("", "v1", "Service", "services", true);
    r.short_names = {"svc"};
    r.categories = {"all"};
    r.subresources = {"status"};
    r.reset_status_on_create = true;
    r.defaults = DefaultService;
    r.validate = ValidateService;
    r.columns = Cols(
        {NameCol(), Col("Type", "string", 0, "The type of the service."),
         Col("Cluster-IP", "string", 0, "The cluster IP of the service."),
         Col("External-IP", "string", 0, "The external IP of the service."),
         Col("Port(s)", "string", 0, "The ports of the service."), AgeCol(),
         Col("Selector", "string", 1,
             "Route service traffic to pods with label keys and values matching this selector.")});
    r.cells = [](const json& s) {
      std::string ip = S(s, "spec.clusterIP");
      return json{Name(s),
                  S(s, "spec.type", "ClusterIP"),
                  ip.empty() ? "<none>" : ip,
                  ServiceExternalIP(s),
                  ServicePorts(s),
                  AgeOf(s),
                  FormatLabels(At(s, "spec.selector"))};
    };
    add(r);
  }
  {
    auto r = R("", "v1", "Endpoints", "endpoints", true);
    r.singular = "endpoints";
    r.short_names = {"ep"};
    r.defaults = DefaultEndpoints;
    r.columns =
        Cols({NameCol(), Col("Endpoints", "string", 0, "Endpoints of the service"), AgeCol()});
    r.cells = [](const json& e) {
      std::string out;
      int count = 0;
      for (const auto& ss : At(e, "subsets").is_array() ? At(e, "subsets") : json::array()) {
        for (const auto& a : ss.value("addresses", json::array())) {
          for (const auto& p : ss.value("ports", json::array())) {
            if (count < 3) {
              out += (out.empty() ? "" : ",") + a.value("ip", "") + ":" +
                     std::to_string(p.value("port", 0));
            }
            ++count;
          }
          if (ss.value("ports", json::array()).empty()) {
            if (count < 3) {
              out += (out.empty() ? "" : ",") + a.value("ip", "");
            }
            ++count;
          }
        }
      }
      if (count > 3) {
        out += " + " + std::to_string(count - 3) + " more...";
      }
      return json{Name(e), out.empty() ? "<none>" : out, AgeOf(e)};
    };
    add(r);
  }
  {
    auto r = R("", "v1", "ConfigMap", "configmaps", true);
    r.short_names = {"cm"};
    r.validate = ValidateConfigMap;
    r.columns = Cols(
        {NameCol(), Col("Data", "string", 0, "Data contains the configuration data."), AgeCol()});
    r.cells = [](const json& o) {
      size_t n = At(o, "data").size() + At(o, "binaryData").size();
      return json{Name(o), n, AgeOf(o)};
    };
    r.columns[1].type = "integer";
    add(r);
  }
  {
    auto r = R("", "v1", "Secret", "secrets", true);
    r.defaults = DefaultSecret;
    r.validate = ValidateSecret;
    r.columns = Cols({NameCol(), Col("Type", "string", 0, "The type of the secret"),
                      Col("Data", "integer", 0, "The number of entries in the secret"), AgeCol()});
    r.cells = [](const json& o) {
      return json{Name(o), S(o, "type"), At(o, "data").size(), AgeOf(o)};
    };
    add(r);
  }
  {
    auto r = R("", "v1", "ServiceAccount", "serviceaccounts", true);
    r.short_names = {"sa"};
    r.subresources = {"token"};
    r.columns = Cols({NameCol(),
                      Col("Secrets", "string", 0,
                          "Secrets is a list of the secrets in the same namespace that pods "
                          "running using this ServiceAccount are allowed to use."),
                      AgeCol()});
    r.cells = [](const json& o) {
      return json{Name(o), std::to_string(At(o, "secrets").size()), AgeOf(o)};
    };
    add(r);
  }
  {
    auto r = R("", "v1", "Namespace", "namespaces", false);
    r.short_names = {"ns"};
    r.verbs = {"create", "delete", "get", "list", "patch", "update", "watch"};
    r.subresources = {"status", "finalize"};
    r.reset_status_on_create = true;
    r.defaults = DefaultNamespace;
    r.columns =
        Cols({NameCol(), Col("Status", "string", 0, "The status of the namespace"), AgeCol()});
    r.cells = [](const json& o) { return json{Name(o), S(o, "status.phase"), AgeOf(o)}; };
    add(r);
  }
  {
    auto r = R("", "v1", "Node", "nodes", false);
    r.short_names = {"no"};
    r.subresources = {"status"};
    r.columns = Cols(
        {NameCol(), Col("Status", "string", 0, "The status of the node"),
         Col("Roles", "string", 0, "The roles of the node"), AgeCol(),
         Col("Version", "string", 0, "Kubelet Version reported by the node."),
         Col("Internal-IP", "string", 1, "List of internal IPs."),
         Col("External-IP", "string", 1, "List of external IPs."),
         Col("OS-Image", "string", 1,
             "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 "
             "(wheezy))."),
         Col("Kernel-Version", "string", 1,
             "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
         Col("Container-Runtime", "string", 1,
             "Container Runtime Version reported by the node through runtime remote API (e.g. "
             "containerd://1.4.2).")});
    r.cells = NodeCells;
    add(r);
  }
  {
    auto r = R("", "v1", "Event", "events", true);
    r.short_names = {"ev"};
    r.columns =
        Cols({Col("Last Seen", "string", 0, "Time when last event from this resource was seen."),
              Col("Type", "string", 0,
                  "Type of this event (Normal, Warning), new types could be added in the future."),
              Col("Reason", "string", 0, "The reason for this event."),
              Col("Object", "string", 0, "The object that this event is about."),
              Col("Subobject", "string", 1, "The subobject that this event is about."),
              Col("Source", "string", 1, "The source component that created this event."),
              Col("Message", "string", 0, "A human readable message for this event."),
              Col("First Seen", "string", 1, "Time when first event from this resource was seen."),
              Col("Count", "string", 1, "Number of events seen."), NameCol()});
    r.columns.back().priority = 1;
    r.cells = EventCells;
    add(r);
  }
  {
    auto r = R("", "v1", "PersistentVolume", "persistentvolumes", false);
    r.short_names = {"pv"};
    r.subresources = {"status"};
    r.reset_status_on_create = true;
    r.defaults = DefaultPersistentVolume;
    r.validate = ValidatePersistentVolume;
    r.columns =
        Cols({NameCol(), Col("Capacity"), Col("Access Modes"), Col("Reclaim Policy"), Col("Status"),
              Col("Claim"), Col("StorageClass"), Col("VolumeAttributesClass"), Col("Reason"),
              AgeCol(), Col("VolumeMode", "string", 1)});
    r.cells = [](const json& pv) {
      std::string claim;
      if (At(pv, "spec.claimRef").is_object()) {
        claim = S(pv, "spec.claimRef.namespace") + "/" + S(pv, "spec.claimRef.name");
      }
      return json{Name(pv),
                  S(pv, "spec.capacity.storage"),
                  AccessModes(At(pv, "spec.accessModes")),
                  S(pv, "spec.persistentVolumeReclaimPolicy"),
                  S(pv, "status.phase"),
                  claim,
                  S(pv, "spec.storageClassName"),
                  S(pv, "spec.volumeAttributesClassName", "<unset>"),
                  S(pv, "status.reason"),
                  AgeOf(pv),
                  S(pv, "spec.volumeMode", "<unset>")};
    };
    add(r);
  }
  {
    auto r = R("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true);
    r.short_names = {"pvc"};
    r.subresources = {"status"};
    r.reset_status_on_create = true;
    r.defaults = DefaultPersistentVolumeClaim;
    r.validate = ValidatePersistentVolumeClaim;
    r.columns = Cols({NameCol(), Col("Status"), Col("Volume"), Col("Capacity"), Col("Access Modes"),
                      Col("StorageClass"), Col("VolumeAttributesClass"), AgeCol(),
                      Col("VolumeMode", "string", 1)});
    r.cells = [](const json& pvc) {
      bool bound = S(pvc, "status.phase") == "Bound";
      return json{Name(pvc),
                  S(pvc, "status.phase"),
                  S(pvc, "spec.volumeName"),
                  bound ? S(pvc, "status.capacity.storage") : "",
                  bound ? AccessModes(At(pvc, "status.accessModes")) : "",
                  S(pvc, "spec.storageClassName"),
                  S(pvc, "spec.volumeAttributesClassName", "<unset>"),
                  AgeOf(pvc),
                  S(pvc, "spec.volumeMode", "<unset>")};
    };
    add(r);
  }
  {
    auto r = R("", "v1", "ResourceQuota", "resourcequotas", true);
    r.short_names = {"quota"};
    r.subresources = {"status"};
    r.reset_status_on_create = true;
    r.columns = Cols({NameCol(), AgeCol(), Col("Request"), Col("Limit")});
    r.cells = [](const json& q) {
      std::string req, lim;
      for (auto& [k, v] : At(q, "spec.hard").items()) {
        std::string used = S(q, ("status.used." + k).c_str(), "0");
        std::string entry =
            k + ": " + used + "/" + (v.is_string() ? v.get<std::string>() : v.dump());
        if (k.rfind("limits.", 0) == 0) {
          lim += (lim.empty() ? "" : ", ") + entry;
        } else {
          req += (req.empty() ? "" : ", ") + entry;
        }
      }
      return json{Name(q), AgeOf(q), req, lim};
    };
    add(r);
  }

  // ---- apps/v1 ----
  auto workload = [&](const char* kind, const char* plural, std::vector<std::string> shorts,
                      std::function<void(json&)> def,
                      std::function<void(const json&, const json*, Causes&)> val) {
    auto r = R("apps", "v1", kind, plural, true);
    r.short_names = std::move(shorts);
    r.categories = {"all"};
    r.subresources = {"status"};
    r.tracks_generation = true;
    r.reset_status_on_create = true;
    r.defaults = std::move(def);
    r.validate = std::move(val);
    return r;
  };
  {
    auto r =
        workload("Deployment", "deployments", {"deploy"}, DefaultDeployment, ValidateDeployment);
    r.subresources.push_back("scale");
    r.columns =
        Cols({NameCol(), Col("Ready", "string", 0, "Number of the pod with ready state"),
              Col("Up-to-date", "string", 0,
                  "Total number of non-terminated pods targeted by this deployment that have the "
                  "desired template spec."),
              Col("Available", "string", 0,
                  "Total number of available pods (ready for at least minReadySeconds) targeted by "
                  "this deployment."),
              AgeCol(), Col("Containers", "string", 1, "Names of each container in the template."),
              Col("Images", "string", 1, "Images referenced by each container in the template."),
              Col("Selector", "string", 1,
                  "Label selector for pods. Existing ReplicaSets whose pods are selected by this "
                  "will be the ones affected by this deployment.")});
    r.columns[2].type = r.columns[3].type = "integer";
    r.cells = [](const json& d) {
      auto [c, i] = ContainersImages(At(d, "spec.template.spec"));
      return json{Name(d),
                  std::to_string(Int(d, "status.readyReplicas")) + "/" +
                      std::to_string(Int(d, "spec.replicas")),
                  Int(d, "status.updatedReplicas"),
                  Int(d, "status.availableReplicas"),
                  AgeOf(d),
                  c,
                  i,
                  FormatSelector(At(d, "spec.selector"))};
    };
    add(r);
  }
  {
    auto r = workload("ReplicaSet", "replicasets", {"rs"}, DefaultReplicaSet, ValidateReplicaSet);
    r.subresources.push_back("scale");
    r.columns = Cols(
        {NameCol(), Col("Desired", "integer", 0, "Replicas is the number of desired replicas."),
         Col("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
         Col("Ready", "integer", 0, "The number of ready replicas for this replica set."), AgeCol(),
         Col("Containers", "string", 1, "Names of each container in the template."),
         Col("Images", "string", 1, "Images referenced by each container in the template."),
         Col("Selector", "string", 1,
             "Selector is a label query over pods that should match the replica count.")});
    r.cells = [](const json& d) {
      auto [c, i] = ContainersImages(At(d, "spec.template.spec"));
      return json{Name(d),
                  Int(d, "spec.replicas"),
                  Int(d, "status.replicas"),
                  Int(d, "status.readyReplicas"),
                  AgeOf(d),
                  c,
                  i,
                  FormatSelector(At(d, "spec.selector"))};
    };
    add(r);
  }
  {
    auto r =
        workload("StatefulSet", "statefulsets", {"sts"}, DefaultStatefulSet, ValidateStatefulSet);
    r.subresources.push_back("scale");
    r.columns =
        Cols({NameCol(), Col("Ready", "string", 0, "Number of the pod with ready state"), AgeCol(),
              Col("Containers", "string", 1, "Names of each container in the template."),
              Col("Images", "string", 1, "Images referenced by each container in the template.")});
    r.cells = [](const json& d) {
      auto [c, i] = ContainersImages(At(d, "spec.template.spec"));
      return json{Name(d),
                  std::to_string(Int(d, "status.readyReplicas")) + "/" +
                      std::to_string(Int(d, "spec.replicas")),
                  AgeOf(d), c, i};
    };
    add(r);
  }
  {
    auto r = workload("DaemonSet", "daemonsets", {"ds"}, DefaultDaemonSet, ValidateDaemonSet);
    r.columns = Cols(
        {NameCol(),
         Col("Desired", "integer", 0,
             "The total number of nodes that should be running the daemon pod."),
         Col("Current", "integer", 0,
             "The number of nodes that are running at least 1 daemon pod and are supposed to run "
             "the daemon pod."),
         Col("Ready", "integer", 0,
             "The number of nodes that should be running the daemon pod and have one or more of "
             "the daemon pod running and ready."),
         Col("Up-to-date", "integer", 0,
             "The total number of nodes that are running updated daemon pod"),
         Col("Available", "integer", 0,
             "The number of nodes that should be running the daemon pod and have one or more of "
             "the daemon pod running and available (ready for at least spec.minReadySeconds)"),
         Col("Node Selector", "string", 0,
             "NodeSelector is a selector which must be true for the pod to fit on a node. Selector "
             "which must match a node's labels for the pod to be scheduled on that node."),
         AgeCol(), Col("Containers", "string", 1, "Names of each container in the template."),
         Col("Images", "string", 1, "Images referenced by each container in the template."),
         Col("Selector", "string", 1,
             "A label query over pods that are managed by the daemon set.")});
    r.cells = [](const json& d) {
      auto [c, i] = ContainersImages(At(d, "spec.template.spec"));
      return json{Name(d),
                  Int(d, "status.desiredNumberScheduled"),
                  Int(d, "status.currentNumberScheduled"),
                  Int(d, "status.numberReady"),
                  Int(d, "status.updatedNumberScheduled"),
                  Int(d, "status.numberAvailable"),
                  FormatLabels(At(d, "spec.template.spec.nodeSelector")),
                  AgeOf(d),
                  c,
                  i,
                  FormatSelector(At(d, "spec.selector"))};
    };
    add(r);
  }
  {
    auto r = R("apps", "v1", "ControllerRevision", "controllerrevisions", true);
    r.columns = Cols({NameCol(), Col("Controller"), Col("Revision", "integer"), AgeCol()});
    r.cells = [](const json& o) {
      std::string ctrl = "<none>";
      for (const auto& ref : At(o, "metadata.ownerReferences").is_array()
                                 ? At(o, "metadata.ownerReferences")
                                 : json::array()) {
        if (ref.value("controller", false)) {
          std::string k = ref.value("kind", "");
          for (auto& ch : k) {
            ch = static_cast<char>(std::tolower(ch));
          }
          std::string g = ref.value("apiVersion", "");
          g = g.find('/') == std::string::npos ? "" : "." + g.substr(0, g.find('/'));
          ctrl = k + g + "/" + ref.value("name", "");
        }
      }
      return json{Name(o), ctrl, o.value("revision", 0), AgeOf(o)};
    };
    add(r);
  }

  // ---- batch/v1 ----
  {
    auto r = R("batch", "v1", "Job", "jobs", true);
    r.categories = {"all"};
    r.subresources = {"status"};
    r.tracks_generation = true;
    r.reset_status_on_create = true;
    r.defaults = DefaultJob;
    r.validate = ValidateJob;
    r.columns = Cols(
        {NameCol(), Col("Status", "string", 0, "Status of the job."),
         Col("Completions", "string", 0, "The completion status of the job."),
         Col("Duration", "string", 0, "Time required to complete the job."), AgeCol(),
         Col("Containers", "string", 1, "Names of each container in the template."),
         Col("Images", "string", 1, "Images referenced by each container in the template."),
         Col("Selector", "string", 1, "A label query over pods that should match the pod count.")});
    r.cells = [](const json& j) {
      auto [c, i] = ContainersImages(At(j, "spec.template.spec"));
      std::string completions;
      const json& comp = At(j, "spec.completions");
      if (comp.is_number_integer()) {
        completions = std::to_string(Int(j, "status.succeeded")) + "/" + comp.dump();
      } else {
        int64_t par = Int(j, "spec.parallelism", 1);
        completions = std::to_string(Int(j, "status.succeeded")) + "/1" +
                      (par > 1 ? " of " + std::to_string(par) : "");
      }
      return json{Name(j),     JobStatus(j),
                  completions, JobDuration(j),
                  AgeOf(j),    c,
                  i,           FormatSelector(At(j, "spec.selector"))};
    };
    add(r);
  }
  {
    auto r = R("batch", "v1", "CronJob", "cronjobs", true);
    r.short_names = {"cj"};
    r.categories = {"all"};
    r.subresources = {"status"};
    r.tracks_generation = true;
    r.reset_status_on_create = true;
    r.defaults = DefaultCronJob;
    r.validate = ValidateCronJob;
    r.columns = Cols(
        {NameCol(),
         Col("Schedule", "string", 0,
             "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
         Col("Timezone", "string", 0,
             "The time zone name for the given schedule, see "
             "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
         Col("Suspend", "boolean", 0,
             "This flag tells the controller to suspend subsequent executions."),
         Col("Active", "integer", 0, "A list of pointers to currently running jobs."),
         Col("Last Schedule", "string", 0,
             "Information when was the last time the job was successfully scheduled."),
         AgeCol(), Col("Containers", "string", 1, "Names of each container in the template."),
         Col("Images", "string", 1, "Images referenced by each container in the template."),
         Col("Selector", "string", 1, "A label query over pods that should match the pod count.")});
    r.cells = [](const json& cj) {
      auto [c, i] = ContainersImages(At(cj, "spec.jobTemplate.spec.template.spec"));
      std::string last = S(cj, "status.lastScheduleTime");
      return json{Name(cj),
                  S(cj, "spec.schedule"),
                  S(cj, "spec.timeZone", "<none>"),
                  At(cj, "spec.suspend") == true ? "True" : "False",
                  At(cj, "status.active").size(),
                  last.empty() ? "<none>" : Age(json(last)),
                  AgeOf(cj),
                  c,
                  i,
                  FormatSelector(At(cj, "spec.jobTemplate.spec.selector"))};
    };
    add(r);
  }

  // ---- networking.k8s.io/v1 ----
  {
    auto r = R("networking.k8s.io", "v1", "Ingress", "ingresses", true);
    r.short_names = {"ing"};
    r.subresources = {"status"};
    r.tracks_generation = true;
    r.reset_status_on_create = true;
    r.defaults = DefaultIngress;
    r.validate = ValidateIngress;
    r.columns =
        Cols({NameCol(),
              Col("Class", "string", 0,
                  "The name of the IngressClass resource that should be used for ingress."),
              Col("Hosts", "string", 0,
                  "Hosts that incoming requests are matched against before the ingress rule"),
              Col("Address", "string", 0,
                  "Address is a list containing ingress points for the load-balancer"),
              Col("Ports", "string", 0, "Ports of TLS configurations that open"), AgeCol()});
    r.cells = [](const json& ing) {
      bool tls = At(ing, "spec.tls").is_array() && !At(ing, "spec.tls").empty();
      return json{Name(ing),
                  S(ing, "spec.ingressClassName", "<none>"),
                  IngressHosts(ing),
                  IngressAddress(ing),
                  tls ? "80, 443" : "80",
                  AgeOf(ing)};
    };
    add(r);
  }

  // ---- storage.k8s.io/v1 ----
  {
    auto r = R("storage.k8s.io", "v1", "StorageClass", "storageclasses", false);
    r.short_names = {"sc"};
    r.defaults = DefaultStorageClass;
    r.validate = ValidateStorageClass;
    r.columns =
        Cols({NameCol(), Col("Provisioner", "string", 0, "Indicates the type of the provisioner."),
              Col("ReclaimPolicy", "string", 0, "Indicates the type of the reclaim policy."),
              Col("VolumeBindingMode", "string", 0,
                  "Indicates how PersistentVolumeClaims should be provisioned and bound"),
              Col("AllowVolumeExpansion", "string", 0,
                  "Indicates whether the storage class allow volume expand"),
              AgeCol()});
    r.cells = [](const json& sc) {
      std::string name = Name(sc);
      std::string def =
          S(sc, "metadata.annotations.storageclass\\.kubernetes\\.io/is-default-class");
      const json& ann = At(sc, "metadata.annotations");
      if (ann.is_object() &&
          (ann.value("storageclass.kubernetes.io/is-default-class", "") == "true" ||
           ann.value("storageclass.beta.kubernetes.io/is-default-class", "") == "true")) {
        name += " (default)";
      }
      (void)def;
      return json{name,
                  S(sc, "provisioner"),
                  S(sc, "reclaimPolicy", "Delete"),
                  S(sc, "volumeBindingMode", "Immediate"),
                  At(sc, "allowVolumeExpansion") == true ? "true" : "false",
                  AgeOf(sc)};
    };
    add(r);
  }

  // ---- coordination.k8s.io/v1 ----
  {
    auto r = R("coordination.k8s.io", "v1", "Lease", "leases", true);
    r.columns = Cols({NameCol(), Col("Holder", "string", 0, "The holder of the lease"), AgeCol()});
    r.cells = [](const json& l) { return json{Name(l), S(l, "spec.holderIdentity"), AgeOf(l)}; };
    add(r);
  }

  // ---- discovery.k8s.io/v1 ----
  {
    auto r = R("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true);
    r.defaults = DefaultEndpointSlice;
    r.validate = ValidateEndpointSlice;
    r.columns = Cols({NameCol(), Col("AddressType", "string", 0, "The IP protocol for this slice"),
                      Col("Ports", "string", 0, "The ports defined on this slice"),
                      Col("Endpoints", "string", 0, "Endpoints covered by this slice"), AgeCol()});
    r.cells = [](const json& s) {
      std::string ports;
      for (const auto& p : At(s, "ports").is_array() ? At(s, "ports") : json::array()) {
        ports += (ports.empty() ? "" : ",") + (p.contains("port") ? p["port"].dump() : "*");
      }
      std::string eps;
      int n = 0;
      for (const auto& e : At(s, "endpoints").is_array() ? At(s, "endpoints") : json::array()) {
        for (const auto& a : e.value("addresses", json::array())) {
          if (n < 3) {
            eps += (eps.empty() ? "" : ",") + a.get<std::string>();
          }
          ++n;
        }
      }
      if (n > 3) {
        eps += " + " + std::to_string(n - 3) + " more...";
      }
      return json{Name(s), S(s, "addressType"), ports.empty() ? "<unset>" : ports,
                  eps.empty() ? "<unset>" : eps, AgeOf(s)};
    };
    add(r);
  }

  // ---- rbac.authorization.k8s.io/v1 ----
  for (auto [kind, plural, ns] :
       {std::tuple{"Role", "roles", true}, std::tuple{"ClusterRole", "clusterroles", false}}) {
    auto r = R("rbac.authorization.k8s.io", "v1", kind, plural, ns);
    r.columns = Cols({NameCol(), Col("Created At", "date", 0,
                                     "CreationTimestamp is a timestamp representing the server "
                                     "time when this object was created.")});
    r.cells = [](const json& o) { return json{Name(o), S(o, "metadata.creationTimestamp")}; };
    add(r);
  }
  for (auto [kind, plural, ns] : {std::tuple{"RoleBinding", "rolebindings", true},
                                  std::tuple{"ClusterRoleBinding", "clusterrolebindings", false}}) {
    auto r = R("rbac.authorization.k8s.io", "v1", kind, plural, ns);
    r.defaults = DefaultRoleBinding;
    r.validate = ValidateRoleBinding;
    r.columns = Cols({NameCol(), Col("Role", "string", 0, "Role of the binding"), AgeCol(),
                      Col("Users", "string", 1, "Users in the binding"),
                      Col("Groups", "string", 1, "Groups in the binding"),
                      Col("ServiceAccounts", "string", 1, "ServiceAccounts in the binding")});
    r.cells = [](const json& o) {
      return json{Name(o),
                  S(o, "roleRef.kind") + "/" + S(o, "roleRef.name"),
                  AgeOf(o),
                  BindingSubjects(o, "User"),
                  BindingSubjects(o, "Group"),
                  BindingSubjects(o, "ServiceAccount")};
    };
    add(r);
  }

  // ---- scheduling.k8s.io/v1 ----
  {
    auto r = R("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false);
    r.short_names = {"pc"};
    r.defaults = DefaultPriorityClass;
    r.validate = ValidatePriorityClass;
    r.columns = Cols({NameCol(), Col("Value", "integer"), Col("Global-Default", "boolean"),
                      AgeCol(), Col("PreemptionPolicy")});
    r.cells = [](const json& o) {
      return json{Name(o), o.value("value", 0), o.value("globalDefault", false), AgeOf(o),
                  S(o, "preemptionPolicy")};
    };
    add(r);
  }

  RegisterCoreExtras(reg);
  RegisterAutoscaling(reg);

  // ---- policy/v1 ----
  {
    auto r = R("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true);
    r.short_names = {"pdb"};
    r.subresources = {"status"};
    r.tracks_generation = true;
    r.reset_status_on_create = true;
    r.validate = ValidatePodDisruptionBudget;
    r.columns = Cols({NameCol(), Col("Min Available"), Col("Max Unavailable"),
                      Col("Allowed Disruptions", "integer"), AgeCol()});
    r.cells = [](const json& o) {
      return json{
          Name(o),
          IntOrString(
              At(o, "spec.minAvailable").is_object()
                  ? json()
                  : (Find(o, "spec.minAvailable") ? *Find(o, "spec.minAvailable") : json())),
          IntOrString(Find(o, "spec.maxUnavailable") ? *Find(o, "spec.maxUnavailable") : json()),
          Int(o, "status.disruptionsAllowed"), AgeOf(o)};
    };
    add(r);
  }
  RegisterMoreGroups(reg);
}

}  // namespace minik::api
