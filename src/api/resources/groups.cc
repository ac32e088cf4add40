// The API groups whose kinds minik stores and serves as a real cluster does,
// for the tools that read and write them, without a controller of its own
// acting on them yet (see docs/apiserver.md for what each one does here):
// apiregistration, events, authentication and authorization reviews,
// certificates, networking's IngressClasses and NetworkPolicies, node,
// storage's CSI objects, and flowcontrol.

#include "api/registration.h"

namespace minik::api {
namespace {

// events.k8s.io/v1 Event <-> core/v1 Event (the stored form): the same
// object under other field names.
const std::vector<std::pair<const char*, const char*>> kEventFields = {
    {"involvedObject", "regarding"},
    {"message", "note"},
    {"source", "deprecatedSource"},
    {"firstTimestamp", "deprecatedFirstTimestamp"},
    {"lastTimestamp", "deprecatedLastTimestamp"},
    {"count", "deprecatedCount"},
    {"reportingComponent", "reportingController"},
};

json RenameFields(const json& in, bool to_events) {
  json out = in;
  for (const auto& [core, events] : kEventFields) {
    const char* from = to_events ? core : events;
    const char* to = to_events ? events : core;
    if (out.contains(from)) {
      out[to] = out[from];
      out.erase(from);
    }
  }
  return out;
}

std::string Condition(const json& obj, const char* type) {
  for (const auto& c :
       At(obj, "status.conditions").is_array() ? At(obj, "status.conditions") : json::array()) {
    if (c.value("type", "") == type) {
      std::string s = c.value("status", "");
      if (s == "False" && !c.value("reason", "").empty()) {
        s += " (" + c.value("reason", "") + ")";
      }
      return s;
    }
  }
  return "Unknown";
}

ResourceInfo Review(const std::string& group, const std::string& kind, const std::string& plural,
                    bool namespaced) {
  auto r = R(group, "v1", kind, plural, namespaced);
  r.virtual_resource = true;
  r.verbs = {"create"};
  return r;
}

}  // namespace

void RegisterMoreGroups(ResourceRegistry& reg) {
  // ---- apiregistration.k8s.io/v1 ----
  {
    auto r = R("apiregistration.k8s.io", "v1", "APIService", "apiservices", false);
    r.categories = {"api-extensions"};
    r.subresources = {"status"};
    r.reset_status_on_create = true;
    r.validate = [](const json& obj, const json*, Causes& c) {
      std::string group = S(obj, "spec.group");
      std::string version = S(obj, "spec.version");
      std::string name = S(obj, "metadata.name");
      if (version.empty()) {
        c.push_back({"FieldValueRequired", "Required value", "spec.version"});
      }
      if (name != version + "." + group) {
        c.push_back({"FieldValueInvalid",
                     "Invalid value: \"" + name + "\": must be " + version + "." + group,
                     "metadata.name"});
      }
      auto priority = [&](const char* field, int64_t limit) {
        const json& v = At(obj, (std::string("spec.") + field).c_str());
        if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > limit) {
          c.push_back({"FieldValueInvalid",
                       "Invalid value: " + (v.is_number() ? v.dump() : std::string("0")) +
                           ": must be positive and less than " + std::to_string(limit),
                       std::string("spec.") + field});
        }
      };
      priority("groupPriorityMinimum", 20000);
      priority("versionPriority", 1000);
    };
    r.columns =
        Cols({NameCol(),
              Col("Service", "string", 0,
                  "The reference to the service that "
                  "hosts this API endpoint."),
              Col("Available", "string", 0, "Whether this service is available."), AgeCol()});
    r.cells = [](const json& a) {
      std::string svc = At(a, "spec.service").is_object()
                            ? S(a, "spec.service.namespace") + "/" + S(a, "spec.service.name")
                            : "Local";
      return json{Name(a), svc, Condition(a, "Available"), AgeOf(a)};
    };
    reg.Add(std::move(r));
  }

  // ---- events.k8s.io/v1: core/v1 events under other field names ----
  {
    auto r = R("events.k8s.io", "v1", "Event", "events", true);
    r.short_names = {"ev"};
    r.storage_api_version = "v1";
    r.to_storage = [](const json& e) { return RenameFields(e, false); };
    r.from_storage = [](const json& e) { return RenameFields(e, true); };
    const ResourceInfo* core = reg.Find("", "v1", "events");
    r.columns = core->columns;
    auto core_cells = core->cells;
    r.cells = [core_cells](const json& e) { return core_cells(RenameFields(e, false)); };
    reg.Add(std::move(r));
  }

  // ---- authentication.k8s.io/v1 and authorization.k8s.io/v1 (not stored) ----
  reg.Add(Review("authentication.k8s.io", "SelfSubjectReview", "selfsubjectreviews", false));
  reg.Add(Review("authentication.k8s.io", "TokenReview", "tokenreviews", false));
  reg.Add(Review("authorization.k8s.io", "LocalSubjectAccessReview", "localsubjectaccessreviews",
                 true));
  reg.Add(
      Review("authorization.k8s.io", "SelfSubjectAccessReview", "selfsubjectaccessreviews", false));
  reg.Add(
      Review("authorization.k8s.io", "SelfSubjectRulesReview", "selfsubjectrulesreviews", false));
  reg.Add(Review("authorization.k8s.io", "SubjectAccessReview", "subjectaccessreviews", false));

  // ---- certificates.k8s.io/v1 ----
  {
    auto r = R("certificates.k8s.io", "v1", "CertificateSigningRequest",
               "certificatesigningrequests", false);
    r.short_names = {"csr"};
    r.subresources = {"approval", "status"};
    r.reset_status_on_create = true;
    r.validate = [](const json& obj, const json*, Causes& c) {
      if (S(obj, "spec.request").empty()) {
        c.push_back({"FieldValueRequired", "Required value", "spec.request"});
      }
      if (S(obj, "spec.signerName").empty()) {
        c.push_back({"FieldValueRequired", "Required value", "spec.signerName"});
      }
      if (!At(obj, "spec.usages").is_array() || At(obj, "spec.usages").empty()) {
        c.push_back({"FieldValueRequired", "Required value", "spec.usages"});
      }
    };
    r.columns = Cols({NameCol(), AgeCol(), Col("SignerName"), Col("Requestor"),
                      Col("RequestedDuration"), Col("Condition")});
    r.cells = [](const json& csr) {
      std::string cond;
      for (const auto& c :
           At(csr, "status.conditions").is_array() ? At(csr, "status.conditions") : json::array()) {
        cond += (cond.empty() ? "" : ",") + c.value("type", "");
      }
      if (cond.empty()) {
        cond = "Pending";
      }
      if (At(csr, "status.certificate").is_string()) {
        cond += ",Issued";
      }
      const json& d = At(csr, "spec.expirationSeconds");
      return json{Name(csr),
                  AgeOf(csr),
                  S(csr, "spec.signerName"),
                  S(csr, "spec.username"),
                  d.is_number_integer() ? HumanDuration(d.get<int64_t>()) : "<none>",
                  cond};
    };
    reg.Add(std::move(r));
  }

  // ---- networking.k8s.io/v1 ----
  {
    auto r = R("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false);
    r.columns = Cols({NameCol(), Col("Controller"), Col("Parameters"), AgeCol()});
    r.cells = [](const json& o) {
      std::string params = "<none>";
      if (At(o, "spec.parameters").is_object()) {
        std::string g = S(o, "spec.parameters.apiGroup");
        params = S(o, "spec.parameters.kind") + (g.empty() ? "" : "." + g) + "/" +
                 S(o, "spec.parameters.name");
      }
      return json{Name(o), S(o, "spec.controller"), params, AgeOf(o)};
    };
    reg.Add(std::move(r));
  }
  {
    auto r = R("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true);
    r.short_names = {"netpol"};
    r.tracks_generation = true;
    r.columns = Cols({NameCol(), Col("Pod-Selector"), AgeCol()});
    r.cells = [](const json& o) {
      std::string sel = FormatSelector(At(o, "spec.podSelector"));
      return json{Name(o), sel == "<none>" ? "" : sel, AgeOf(o)};
    };
    reg.Add(std::move(r));
  }

  // ---- node.k8s.io/v1 ----
  {
    auto r = R("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", false);
    r.columns = Cols({NameCol(), Col("Handler"), AgeCol()});
    r.cells = [](const json& o) { return json{Name(o), S(o, "handler"), AgeOf(o)}; };
    r.validate = [](const json& obj, const json*, Causes& c) {
      if (S(obj, "handler").empty()) {
        c.push_back({"FieldValueRequired", "Required value", "handler"});
      }
    };
    reg.Add(std::move(r));
  }

  // ---- storage.k8s.io/v1 ----
  {
    auto r = R("storage.k8s.io", "v1", "CSIDriver", "csidrivers", false);
    r.columns =
        Cols({NameCol(), Col("AttachRequired"), Col("PodInfoOnMount"), Col("StorageCapacity"),
              Col("TokenRequests"), Col("RequiresRepublish"), Col("Modes"), AgeCol()});
    r.cells = [](const json& o) {
      auto flag = [&](const char* path, bool def) {
        const json& v = At(o, path);
        return v.is_boolean() ? (v.get<bool>() ? "true" : "false") : (def ? "true" : "false");
      };
      std::string tokens;
      for (const auto& t :
           At(o, "spec.tokenRequests").is_array() ? At(o, "spec.tokenRequests") : json::array()) {
        tokens += (tokens.empty() ? "" : ",") + t.value("audience", "");
      }
      return json{Name(o),
                  flag("spec.attachRequired", true),
                  flag("spec.podInfoOnMount", false),
                  flag("spec.storageCapacity", false),
                  tokens.empty() ? "<unset>" : tokens,
                  flag("spec.requiresRepublish", false),
                  Join(At(o, "spec.volumeLifecycleModes"), ",", "<none>"),
                  AgeOf(o)};
    };
    reg.Add(std::move(r));
  }
  {
    auto r = R("storage.k8s.io", "v1", "CSINode", "csinodes", false);
    r.columns = Cols({NameCol(), Col("Drivers", "integer"), AgeCol()});
    r.cells = [](const json& o) { return json{Name(o), At(o, "spec.drivers").size(), AgeOf(o)}; };
    reg.Add(std::move(r));
  }
  {
    auto r = R("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", true);
    r.columns = Cols({NameCol(), Col("StorageClassName"), Col("Capacity")});
    r.cells = [](const json& o) {
      return json{Name(o), S(o, "storageClassName"), S(o, "capacity", "<unset>")};
    };
    reg.Add(std::move(r));
  }
  {
    auto r = R("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", false);
    r.subresources = {"status"};
    r.reset_status_on_create = true;
    r.columns = Cols(
        {NameCol(), Col("Attacher"), Col("PV"), Col("Node"), Col("Attached", "boolean"), AgeCol()});
    r.cells = [](const json& o) {
      return json{Name(o),
                  S(o, "spec.attacher"),
                  S(o, "spec.source.persistentVolumeName"),
                  S(o, "spec.nodeName"),
                  At(o, "status.attached") == true,
                  AgeOf(o)};
    };
    reg.Add(std::move(r));
  }

  // ---- flowcontrol.apiserver.k8s.io/v1 ----
  {
    auto r = R("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", false);
    r.subresources = {"status"};
    r.reset_status_on_create = true;
    r.columns = Cols({NameCol(), Col("PriorityLevel"), Col("MatchingPrecedence", "integer"),
                      Col("DistinguisherMethod"), AgeCol(), Col("MissingPL")});
    r.cells = [](const json& o) {
      return json{Name(o),
                  S(o, "spec.priorityLevelConfiguration.name"),
                  Int(o, "spec.matchingPrecedence"),
                  S(o, "spec.distinguisherMethod.type", "<none>"),
                  AgeOf(o),
                  Condition(o, "Dangling") == "True" ? "True" : "False"};
    };
    reg.Add(std::move(r));
  }
  {
    auto r = R("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration",
               "prioritylevelconfigurations", false);
    r.subresources = {"status"};
    r.reset_status_on_create = true;
    r.columns = Cols({NameCol(), Col("Type"), Col("NominalConcurrencyShares"), Col("Queues"),
                      Col("HandSize"), Col("QueueLengthLimit"), AgeCol()});
    r.cells = [](const json& o) {
      auto limited = [&](const char* path) {
        const json& v = At(o, (std::string("spec.limited.") + path).c_str());
        return v.is_number() ? v.dump() : std::string("<none>");
      };
      return json{Name(o),
                  S(o, "spec.type"),
                  limited("nominalConcurrencyShares"),
                  limited("limitResponse.queuing.queues"),
                  limited("limitResponse.queuing.handSize"),
                  limited("limitResponse.queuing.queueLengthLimit"),
                  AgeOf(o)};
    };
    reg.Add(std::move(r));
  }
}

}  // namespace minik::api
