// Validation of the built-in kinds: the checks users meet most often on a real
// cluster, with the same field paths and messages, so 422 answers read the same.

#include <algorithm>
#include <regex>
#include <set>

#include "api/builtin.h"

namespace minik::api {
namespace {

void Add(Causes& c, const std::string& reason, const std::string& field,
         const std::string& message) {
  c.push_back(Cause{reason, message, field});
}
void Required(Causes& c, const std::string& field) {
  Add(c, "FieldValueRequired", field, "Required value");
}
void Invalid(Causes& c, const std::string& field, const json& value, const std::string& why) {
  std::string v = value.is_string() ? "\"" + value.get<std::string>() + "\"" : value.dump();
  Add(c, "FieldValueInvalid", field, "Invalid value: " + v + ": " + why);
}
void NotSupported(Causes& c, const std::string& field, const json& value,
                  const std::vector<std::string>& allowed) {
  std::string list;
  for (const auto& a : allowed) {
    list += (list.empty() ? "" : ", ") + ("\"" + a + "\"");
  }
  std::string v = value.is_string() ? "\"" + value.get<std::string>() + "\"" : value.dump();
  Add(c, "FieldValueNotSupported", field,
      "Unsupported value: " + v + ": supported values: " + list);
}
void Duplicate(Causes& c, const std::string& field, const json& value) {
  std::string v = value.is_string() ? "\"" + value.get<std::string>() + "\"" : value.dump();
  Add(c, "FieldValueDuplicate", field, "Duplicate value: " + v);
}

const json kEmpty = json::object();
const json& Get(const json& o, const char* key) {
  if (o.is_object()) {
    auto it = o.find(key);
    if (it != o.end()) {
      return *it;
    }
  }
  return kEmpty;
}
bool Present(const json& o, const char* key) {
  return o.is_object() && o.contains(key) && !o[key].is_null();
}
std::string Str(const json& o, const char* key) {
  return o.is_object() && o.contains(key) && o[key].is_string() ? o[key].get<std::string>() : "";
}

const char* kLabelMsg =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const char* kSubdomainMsg =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

bool IsQualifiedName(const std::string& s) {
  static const std::regex kName("([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]");
  auto slash = s.find('/');
  std::string name = slash == std::string::npos ? s : s.substr(slash + 1);
  if (slash != std::string::npos) {
    std::string prefix = s.substr(0, slash);
    if (prefix.empty() || !IsDns1123Subdomain(prefix)) {
      return false;
    }
  }
  return !name.empty() && name.size() <= 63 && std::regex_match(name, kName);
}

bool IsLabelValue(const std::string& s) {
  static const std::regex kValue("(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?");
  return s.size() <= 63 && std::regex_match(s, kValue);
}

void ValidateLabels(const json& labels, const std::string& path, Causes& c) {
  if (!labels.is_object()) {
    return;
  }
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (!IsQualifiedName(it.key())) {
      Invalid(c, path, it.key(),
              "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
              "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
              "'123-abc', regex used for validation is "
              "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')");
    }
    if (!it.value().is_string() || !IsLabelValue(it.value().get<std::string>())) {
      Invalid(c, path, it.value(),
              "a valid label must be an empty string or consist of alphanumeric characters, '-', "
              "'_' or '.', and must start and end with an alphanumeric character (e.g. "
              "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
              "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')");
    }
  }
}

bool SelectorMatches(const json& selector, const json& labels) {
  if (!selector.is_object()) {
    return false;
  }
  for (auto& [k, v] : Get(selector, "matchLabels").items()) {
    if (!labels.is_object() || !labels.contains(k) || labels[k] != v) {
      return false;
    }
  }
  for (const auto& e : Get(selector, "matchExpressions").is_array()
                           ? Get(selector, "matchExpressions")
                           : json::array()) {
    std::string key = Str(e, "key"), op = Str(e, "operator");
    bool has = labels.is_object() && labels.contains(key);
    std::set<std::string> vals;
    for (const auto& v : Get(e, "values").is_array() ? Get(e, "values") : json::array()) {
      if (v.is_string()) {
        vals.insert(v.get<std::string>());
      }
    }
    std::string lv = has && labels[key].is_string() ? labels[key].get<std::string>() : "";
    if ((op == "In" && (!has || !vals.count(lv))) || (op == "NotIn" && has && vals.count(lv)) ||
        (op == "Exists" && !has) || (op == "DoesNotExist" && has)) {
      return false;
    }
  }
  return true;
}

bool SelectorEmpty(const json& selector) {
  return !selector.is_object() ||
         (Get(selector, "matchLabels").empty() && Get(selector, "matchExpressions").empty());
}

void ValidatePort(const json& v, const std::string& field, Causes& c, bool allow_zero = false) {
  if (!v.is_number_integer() || v.get<int64_t>() > 65535 ||
      v.get<int64_t>() < (allow_zero ? 0 : 1)) {
    Invalid(c, field, v, "must be between 1 and 65535, inclusive");
  }
}

void ValidateContainers(const json& list, const std::string& path,
                        const std::set<std::string>& volumes, std::set<std::string>& names,
                        Causes& c, bool required) {
  if (!list.is_array() || list.empty()) {
    if (required) {
      Required(c, path);
    }
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const json& ct = list[i];
    std::string p = path + "[" + std::to_string(i) + "]";
    std::string name = Str(ct, "name");
    if (name.empty()) {
      Required(c, p + ".name");
    } else if (!IsDns1123Label(name)) {
      Invalid(c, p + ".name", name, kLabelMsg);
    } else if (!names.insert(name).second) {
      Duplicate(c, p + ".name", name);
    }
    if (Str(ct, "image").empty()) {
      Required(c, p + ".image");
    }
    const json& ports = Get(ct, "ports");
    if (ports.is_array()) {
      for (size_t j = 0; j < ports.size(); ++j) {
        std::string pp = p + ".ports[" + std::to_string(j) + "]";
        if (!Present(ports[j], "containerPort")) {
          Required(c, pp + ".containerPort");
        } else {
          ValidatePort(ports[j]["containerPort"], pp + ".containerPort", c);
        }
        std::string proto = Str(ports[j], "protocol");
        if (!proto.empty() && proto != "TCP" && proto != "UDP" && proto != "SCTP") {
          NotSupported(c, pp + ".protocol", proto, {"SCTP", "TCP", "UDP"});
        }
      }
    }
    const json& mounts = Get(ct, "volumeMounts");
    if (mounts.is_array()) {
      for (size_t j = 0; j < mounts.size(); ++j) {
        std::string mp = p + ".volumeMounts[" + std::to_string(j) + "]";
        std::string vn = Str(mounts[j], "name");
        if (vn.empty()) {
          Required(c, mp + ".name");
        } else if (!volumes.count(vn)) {
          Add(c, "FieldValueNotFound", mp + ".name", "Not found: \"" + vn + "\"");
        }
        if (Str(mounts[j], "mountPath").empty()) {
          Required(c, mp + ".mountPath");
        }
      }
    }
    const json& env = Get(ct, "env");
    if (env.is_array()) {
      for (size_t j = 0; j < env.size(); ++j) {
        if (Str(env[j], "name").empty()) {
          Required(c, p + ".env[" + std::to_string(j) + "].name");
        }
      }
    }
  }
}

void ValidatePodTemplateLabels(const json& spec, const std::string& path, Causes& c,
                               bool selector_required = true) {
  const json& selector = Get(spec, "selector");
  const json& labels = Get(Get(Get(spec, "template"), "metadata"), "labels");
  if (SelectorEmpty(selector)) {
    if (selector_required) {
      Required(c, path + ".selector");
      Invalid(c, path + ".selector", selector.is_null() ? json::object() : selector,
              "empty selector is invalid for deployment");
    }
    return;
  }
  if (!SelectorMatches(selector, labels)) {
    Invalid(c, path + ".template.metadata.labels", labels.is_null() ? json::object() : labels,
            "`selector` does not match template `labels`");
  }
}

void ValidateReplicas(const json& spec, const std::string& path, Causes& c) {
  if (Present(spec, "replicas") &&
      (!spec["replicas"].is_number_integer() || spec["replicas"].get<int64_t>() < 0)) {
    Invalid(c, path + ".replicas", spec["replicas"], "must be greater than or equal to 0");
  }
}

}  // namespace

bool IsDns1123Label(const std::string& s) {
  static const std::regex kRe("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return !s.empty() && s.size() <= 63 && std::regex_match(s, kRe);
}

bool IsDns1123Subdomain(const std::string& s) {
  static const std::regex kRe("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");
  return !s.empty() && s.size() <= 253 && std::regex_match(s, kRe);
}

void ValidateObjectMeta(const json& obj, bool namespaced, bool label_name, Causes& c) {
  const json& meta = Get(obj, "metadata");
  std::string name = Str(meta, "name");
  if (name.empty()) {
    Add(c, "FieldValueRequired", "metadata.name",
        "Required value: name or generateName is required");
  } else if (label_name ? !IsDns1123Label(name) : !IsDns1123Subdomain(name)) {
    Invalid(c, "metadata.name", name, label_name ? kLabelMsg : kSubdomainMsg);
  }
  if (namespaced && Str(meta, "namespace").empty()) {
    Required(c, "metadata.namespace");
  }
  ValidateLabels(Get(meta, "labels"), "metadata.labels", c);
  const json& ann = Get(meta, "annotations");
  if (ann.is_object()) {
    size_t total = 0;
    for (auto it = ann.begin(); it != ann.end(); ++it) {
      if (!IsQualifiedName(it.key())) {
        Invalid(c, "metadata.annotations", it.key(),
                "name part must consist of alphanumeric characters, '-', '_' or '.'");
      }
      total +=
          it.key().size() + (it.value().is_string() ? it.value().get<std::string>().size() : 0);
    }
    if (total > 256 * 1024) {
      Add(c, "FieldValueTooLong", "metadata.annotations",
          "Too long: must have at most 262144 bytes");
    }
  }
}

void ValidatePodSpec(const json& spec, const std::string& path, Causes& c,
                     const std::vector<std::string>& restart_policies) {
  std::set<std::string> volumes;
  const json& vols = Get(spec, "volumes");
  if (vols.is_array()) {
    for (size_t i = 0; i < vols.size(); ++i) {
      std::string n = Str(vols[i], "name");
      std::string vp = path + ".volumes[" + std::to_string(i) + "]";
      if (n.empty()) {
        Required(c, vp + ".name");
      } else if (!IsDns1123Label(n)) {
        Invalid(c, vp + ".name", n, kLabelMsg);
      } else if (!volumes.insert(n).second) {
        Duplicate(c, vp + ".name", n);
      }
    }
  }
  std::set<std::string> names;
  ValidateContainers(Get(spec, "containers"), path + ".containers", volumes, names, c, true);
  ValidateContainers(Get(spec, "initContainers"), path + ".initContainers", volumes, names, c,
                     false);
  std::string rp = Str(spec, "restartPolicy");
  if (!rp.empty() &&
      std::find(restart_policies.begin(), restart_policies.end(), rp) == restart_policies.end()) {
    NotSupported(c, path + ".restartPolicy", rp, restart_policies);
  }
  std::string dns = Str(spec, "dnsPolicy");
  if (!dns.empty() && dns != "ClusterFirst" && dns != "ClusterFirstWithHostNet" &&
      dns != "Default" && dns != "None") {
    NotSupported(c, path + ".dnsPolicy", dns,
                 {"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"});
  }
}

void ValidatePod(const json& obj, const json* old, Causes& c) {
  ValidatePodSpec(Get(obj, "spec"), "spec", c, {"Always", "OnFailure", "Never"});
  if (old) {
    // Most of a pod's spec is immutable; the images of containers may change.
    json a = Get(obj, "spec"), b = Get(*old, "spec");
    for (json* s : {&a, &b}) {
      for (const char* list : {"containers", "initContainers"}) {
        if (s->contains(list) && (*s)[list].is_array()) {
          for (auto& ct : (*s)[list]) {
            ct.erase("image");
          }
        }
      }
      s->erase("activeDeadlineSeconds");
      s->erase("tolerations");
      s->erase("terminationGracePeriodSeconds");
      s->erase("nodeName");
      s->erase("schedulingGates");
    }
    if (a != b) {
      Add(c, "FieldValueForbidden", "spec",
          "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
          "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
          "`spec.tolerations` (only additions to existing tolerations), "
          "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
          "negative)");
    }
  }
}

void ValidateDeployment(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  ValidateReplicas(spec, "spec", c);
  ValidatePodTemplateLabels(spec, "spec", c);
  ValidatePodSpec(Get(Get(spec, "template"), "spec"), "spec.template.spec", c, {"Always"});
  std::string type = Str(Get(spec, "strategy"), "type");
  if (!type.empty() && type != "RollingUpdate" && type != "Recreate") {
    NotSupported(c, "spec.strategy.type", type, {"Recreate", "RollingUpdate"});
  }
  if (type == "Recreate" && Present(Get(spec, "strategy"), "rollingUpdate")) {
    Add(c, "FieldValueForbidden", "spec.strategy.rollingUpdate",
        "Forbidden: may not be specified when strategy `type` is 'Recreate'");
  }
  if (old && Get(Get(*old, "spec"), "selector") != Get(spec, "selector")) {
    Invalid(c, "spec.selector", Get(spec, "selector"), "field is immutable");
  }
}

void ValidateReplicaSet(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  ValidateReplicas(spec, "spec", c);
  ValidatePodTemplateLabels(spec, "spec", c);
  ValidatePodSpec(Get(Get(spec, "template"), "spec"), "spec.template.spec", c, {"Always"});
}

void ValidateStatefulSet(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  ValidateReplicas(spec, "spec", c);
  ValidatePodTemplateLabels(spec, "spec", c);
  // Containers may mount the claims of volumeClaimTemplates by name: they become volumes.
  json pod_spec = Get(Get(spec, "template"), "spec");
  const json& claims = Get(spec, "volumeClaimTemplates");
  if (claims.is_array() && pod_spec.is_object()) {
    for (const auto& t : claims) {
      std::string n = Str(Get(t, "metadata"), "name");
      if (!n.empty()) {
        pod_spec["volumes"].push_back({{"name", n}, {"persistentVolumeClaim", {{"claimName", n}}}});
      }
    }
  }
  ValidatePodSpec(pod_spec, "spec.template.spec", c, {"Always"});
  std::string pmp = Str(spec, "podManagementPolicy");
  if (!pmp.empty() && pmp != "OrderedReady" && pmp != "Parallel") {
    NotSupported(c, "spec.podManagementPolicy", pmp, {"OrderedReady", "Parallel"});
  }
}

void ValidateDaemonSet(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  ValidatePodTemplateLabels(spec, "spec", c);
  ValidatePodSpec(Get(Get(spec, "template"), "spec"), "spec.template.spec", c, {"Always"});
}

void ValidateJob(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  for (const char* f : {"parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"}) {
    if (Present(spec, f) && (!spec[f].is_number_integer() || spec[f].get<int64_t>() < 0)) {
      Invalid(c, std::string("spec.") + f, spec[f], "must be greater than or equal to 0");
    }
  }
  const json& tspec = Get(Get(spec, "template"), "spec");
  std::string rp = Str(tspec, "restartPolicy");
  if (rp.empty()) {
    Required(c, "spec.template.spec.restartPolicy");
  }
  ValidatePodSpec(tspec, "spec.template.spec", c, {"OnFailure", "Never"});
  if (!SelectorEmpty(Get(spec, "selector"))) {
    ValidatePodTemplateLabels(spec, "spec", c, false);
  }
}

namespace {
bool ValidCronField(const std::string& f, int lo, int hi) {
  static const std::regex kRe(
      "(\\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/"
      "[0-9]+)?)*");
  (void)lo;
  (void)hi;
  return std::regex_match(f, kRe) || f == "?";
}
}  // namespace

void ValidateCronJob(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  std::string schedule = Str(spec, "schedule");
  if (schedule.empty()) {
    Required(c, "spec.schedule");
  } else if (schedule[0] != '@') {
    std::vector<std::string> fields;
    std::string cur;
    std::string s = schedule;
    if (s.rfind("TZ=", 0) == 0 || s.rfind("CRON_TZ=", 0) == 0) {
      Invalid(c, "spec.schedule", schedule,
              "cannot use TZ or CRON_TZ in schedule, use timeZone field instead");
    }
    for (char ch : s) {
      if (ch == ' ' || ch == '\t') {
        if (!cur.empty()) {
          fields.push_back(cur);
        }
        cur.clear();
      } else {
        cur += ch;
      }
    }
    if (!cur.empty()) {
      fields.push_back(cur);
    }
    bool ok = fields.size() == 5;
    for (auto& f : fields) {
      ok = ok && ValidCronField(f, 0, 59);
    }
    if (!ok) {
      Invalid(c, "spec.schedule", schedule,
              fields.size() != 5 ? "expected exactly 5 fields, found " +
                                       std::to_string(fields.size()) + ": " + schedule
                                 : "invalid schedule");
    }
  } else {
    static const std::set<std::string> kDescriptors = {
        "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"};
    if (!kDescriptors.count(schedule) && schedule.rfind("@every ", 0) != 0) {
      Invalid(c, "spec.schedule", schedule, "unrecognized descriptor: " + schedule);
    }
  }
  std::string cp = Str(spec, "concurrencyPolicy");
  if (!cp.empty() && cp != "Allow" && cp != "Forbid" && cp != "Replace") {
    NotSupported(c, "spec.concurrencyPolicy", cp, {"Allow", "Forbid", "Replace"});
  }
  const json& tspec = Get(Get(Get(Get(spec, "jobTemplate"), "spec"), "template"), "spec");
  if (Str(tspec, "restartPolicy").empty()) {
    Required(c, "spec.jobTemplate.spec.template.spec.restartPolicy");
  }
  ValidatePodSpec(tspec, "spec.jobTemplate.spec.template.spec", c, {"OnFailure", "Never"});
}

void ValidateService(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  std::string type = Str(spec, "type");
  static const std::vector<std::string> kTypes = {"ClusterIP", "ExternalName", "LoadBalancer",
                                                  "NodePort"};
  if (std::find(kTypes.begin(), kTypes.end(), type) == kTypes.end()) {
    NotSupported(c, "spec.type", type, kTypes);
    return;
  }
  const json& ports = Get(spec, "ports");
  bool headless = Str(spec, "clusterIP") == "None";
  if (type == "ExternalName") {
    std::string en = Str(spec, "externalName");
    if (en.empty()) {
      Required(c, "spec.externalName");
    } else if (!IsDns1123Subdomain(en) && en.back() != '.') {
      Invalid(c, "spec.externalName", en, kSubdomainMsg);
    }
  } else if ((!ports.is_array() || ports.empty()) && !headless) {
    Required(c, "spec.ports");
  }
  if (ports.is_array()) {
    std::set<std::string> names;
    std::set<std::pair<int64_t, std::string>> seen;
    for (size_t i = 0; i < ports.size(); ++i) {
      const json& p = ports[i];
      std::string pp = "spec.ports[" + std::to_string(i) + "]";
      std::string name = Str(p, "name");
      if (ports.size() > 1 && name.empty()) {
        Required(c, pp + ".name");
      } else if (!name.empty() && !IsDns1123Label(name)) {
        Invalid(c, pp + ".name", name, kLabelMsg);
      } else if (!name.empty() && !names.insert(name).second) {
        Duplicate(c, pp + ".name", name);
      }
      if (!Present(p, "port")) {
        Required(c, pp + ".port");
      } else {
        ValidatePort(p["port"], pp + ".port", c);
      }
      std::string proto = Str(p, "protocol");
      if (!proto.empty() && proto != "TCP" && proto != "UDP" && proto != "SCTP") {
        NotSupported(c, pp + ".protocol", proto, {"SCTP", "TCP", "UDP"});
      }
      if (Present(p, "port") && p["port"].is_number_integer() &&
          !seen.insert({p["port"].get<int64_t>(), proto}).second) {
        Duplicate(c, pp, json{{"port", p["port"]}, {"protocol", proto}});
      }
      if (Present(p, "nodePort") && p["nodePort"] != 0) {
        if (type != "NodePort" && type != "LoadBalancer") {
          Add(c, "FieldValueForbidden", pp + ".nodePort",
              "Forbidden: may not be used when `type` is '" + type + "'");
        } else if (!p["nodePort"].is_number_integer() || p["nodePort"].get<int64_t>() < 30000 ||
                   p["nodePort"].get<int64_t>() > 32767) {
          Invalid(c, pp + ".nodePort", p["nodePort"],
                  "provided port is not in the valid range. The range of valid ports is "
                  "30000-32767");
        }
      }
      if (Present(p, "targetPort")) {
        const json& tp = p["targetPort"];
        if (tp.is_number_integer()) {
          ValidatePort(tp, pp + ".targetPort", c);
        } else if (tp.is_string() && !IsDns1123Label(tp.get<std::string>())) {
          Invalid(c, pp + ".targetPort", tp,
                  "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
        }
      }
    }
  }
  std::string sa = Str(spec, "sessionAffinity");
  if (!sa.empty() && sa != "None" && sa != "ClientIP") {
    NotSupported(c, "spec.sessionAffinity", sa, {"ClientIP", "None"});
  }
  ValidateLabels(Get(spec, "selector"), "spec.selector", c);
  if (old) {
    std::string old_ip = Str(Get(*old, "spec"), "clusterIP");
    std::string new_ip = Str(spec, "clusterIP");
    if (!old_ip.empty() && !new_ip.empty() && old_ip != new_ip && type != "ExternalName" &&
        Str(Get(*old, "spec"), "type") != "ExternalName") {
      Invalid(c, "spec.clusterIPs[0]", new_ip, "may not change once set");
    }
  }
}

namespace {
void ValidateDataKeys(const json& data, const std::string& path, Causes& c, size_t& total) {
  static const std::regex kKey("[-._a-zA-Z0-9]+");
  if (!data.is_object()) {
    return;
  }
  for (auto it = data.begin(); it != data.end(); ++it) {
    if (it.key().size() > 253 || !std::regex_match(it.key(), kKey)) {
      Invalid(c, path, it.key(),
              "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
              "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
              "'[-._a-zA-Z0-9]+')");
    }
    if (it.value().is_string()) {
      total += it.value().get<std::string>().size();
    }
  }
}
}  // namespace

void ValidateConfigMap(const json& obj, const json* old, Causes& c) {
  size_t total = 0;
  ValidateDataKeys(Get(obj, "data"), "data", c, total);
  ValidateDataKeys(Get(obj, "binaryData"), "binaryData", c, total);
  const json& data = Get(obj, "data");
  const json& bin = Get(obj, "binaryData");
  if (data.is_object() && bin.is_object()) {
    for (auto it = data.begin(); it != data.end(); ++it) {
      if (bin.contains(it.key())) {
        Invalid(c, "data", it.key(), "duplicate of key present in binaryData");
      }
    }
  }
  if (total > 1024 * 1024) {
    Add(c, "FieldValueTooLong", "", "Too long: must have at most 1048576 bytes");
  }
  if (old && Get(*old, "immutable") == true &&
      (Get(*old, "data") != data || Get(*old, "binaryData") != bin)) {
    Add(c, "FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set");
  }
}

void ValidateSecret(const json& obj, const json* old, Causes& c) {
  size_t total = 0;
  ValidateDataKeys(Get(obj, "data"), "data", c, total);
  ValidateDataKeys(Get(obj, "stringData"), "stringData", c, total);
  const json& data = Get(obj, "data");
  std::string type = Str(obj, "type");
  auto need = [&](const char* key) {
    if (!data.is_object() || !data.contains(key)) {
      Required(c, std::string("data[") + key + "]");
    }
  };
  if (type == "kubernetes.io/tls") {
    need("tls.crt");
    need("tls.key");
  } else if (type == "kubernetes.io/dockerconfigjson") {
    need(".dockerconfigjson");
  } else if (type == "kubernetes.io/dockercfg") {
    need(".dockercfg");
  } else if (type == "kubernetes.io/basic-auth") {
    if (!data.is_object() || (!data.contains("username") && !data.contains("password"))) {
      Required(c, "data[username]");
    }
  } else if (type == "kubernetes.io/ssh-auth") {
    need("ssh-privatekey");
  }
  if (old && Str(*old, "type") != type) {
    Invalid(c, "type", type, "field is immutable");
  }
  if (old && Get(*old, "immutable") == true && Get(*old, "data") != data) {
    Add(c, "FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set");
  }
}

void ValidatePersistentVolume(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  if (!Present(Get(spec, "capacity"), "storage")) {
    Required(c, "spec.capacity");
  }
  if (!Get(spec, "accessModes").is_array() || Get(spec, "accessModes").empty()) {
    Required(c, "spec.accessModes");
  }
  static const std::set<std::string> kNonSource = {"capacity",
                                                   "accessModes",
                                                   "claimRef",
                                                   "persistentVolumeReclaimPolicy",
                                                   "storageClassName",
                                                   "mountOptions",
                                                   "volumeMode",
                                                   "nodeAffinity",
                                                   "volumeAttributesClassName"};
  int sources = 0;
  if (spec.is_object()) {
    for (auto it = spec.begin(); it != spec.end(); ++it) {
      if (!kNonSource.count(it.key()) && !it.value().is_null()) {
        ++sources;
      }
    }
  }
  if (sources == 0) {
    Required(c, "spec");
    c.back().message = "Required value: must specify a volume type";
  } else if (sources > 1) {
    Add(c, "FieldValueForbidden", "spec", "Forbidden: may not specify more than 1 volume type");
  }
}

void ValidatePersistentVolumeClaim(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  if (!Get(spec, "accessModes").is_array() || Get(spec, "accessModes").empty()) {
    Required(c, "spec.accessModes");
  }
  if (!Present(Get(Get(spec, "resources"), "requests"), "storage")) {
    Required(c, "spec.resources[storage]");
  }
}

void ValidateIngress(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  const json& rules = Get(spec, "rules");
  if (!Present(spec, "defaultBackend") && (!rules.is_array() || rules.empty())) {
    Required(c, "spec.rules");
    c.back().message = "Required value: either `defaultBackend` or `rules` must be specified";
  }
  if (!rules.is_array()) {
    return;
  }
  static const std::vector<std::string> kPathTypes = {"Exact", "ImplementationSpecific", "Prefix"};
  for (size_t i = 0; i < rules.size(); ++i) {
    const json& paths = Get(Get(rules[i], "http"), "paths");
    if (!paths.is_array()) {
      continue;
    }
    for (size_t j = 0; j < paths.size(); ++j) {
      std::string pp =
          "spec.rules[" + std::to_string(i) + "].http.paths[" + std::to_string(j) + "]";
      std::string pt = Str(paths[j], "pathType");
      if (pt.empty()) {
        Required(c, pp + ".pathType");
      } else if (std::find(kPathTypes.begin(), kPathTypes.end(), pt) == kPathTypes.end()) {
        NotSupported(c, pp + ".pathType", pt, kPathTypes);
      }
      if (!Present(paths[j], "backend")) {
        Required(c, pp + ".backend");
      }
    }
  }
}

void ValidateRoleBinding(const json& obj, const json* old, Causes& c) {
  const json& ref = Get(obj, "roleRef");
  if (Str(ref, "name").empty()) {
    Required(c, "roleRef.name");
  }
  std::string kind = Str(ref, "kind");
  if (kind != "Role" && kind != "ClusterRole") {
    NotSupported(c, "roleRef.kind", kind, {"ClusterRole", "Role"});
  }
  const json& subjects = Get(obj, "subjects");
  if (subjects.is_array()) {
    for (size_t i = 0; i < subjects.size(); ++i) {
      std::string k = Str(subjects[i], "kind");
      if (k != "User" && k != "Group" && k != "ServiceAccount") {
        NotSupported(c, "subjects[" + std::to_string(i) + "].kind", k,
                     {"Group", "ServiceAccount", "User"});
      }
      if (Str(subjects[i], "name").empty()) {
        Required(c, "subjects[" + std::to_string(i) + "].name");
      }
    }
  }
  if (old && Get(*old, "roleRef") != ref) {
    Invalid(c, "roleRef", ref, "cannot change roleRef");
  }
}

void ValidateStorageClass(const json& obj, const json* old, Causes& c) {
  if (Str(obj, "provisioner").empty()) {
    Required(c, "provisioner");
  }
  std::string mode = Str(obj, "volumeBindingMode");
  if (!mode.empty() && mode != "Immediate" && mode != "WaitForFirstConsumer") {
    NotSupported(c, "volumeBindingMode", mode, {"Immediate", "WaitForFirstConsumer"});
  }
}

void ValidatePriorityClass(const json& obj, const json* old, Causes& c) {
  if (!Present(obj, "value")) {
    Required(c, "value");
  }
}

void ValidatePodDisruptionBudget(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  if (Present(spec, "minAvailable") && Present(spec, "maxUnavailable")) {
    Invalid(c, "spec", spec, "minAvailable and maxUnavailable cannot be both set");
  }
}

void ValidateEndpointSlice(const json& obj, const json* old, Causes& c) {
  std::string t = Str(obj, "addressType");
  if (t.empty()) {
    Required(c, "addressType");
  } else if (t != "IPv4" && t != "IPv6" && t != "FQDN") {
    NotSupported(c, "addressType", t, {"FQDN", "IPv4", "IPv6"});
  }
}

void ValidateReplicationController(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  if (Present(spec, "minReadySeconds") && (!spec["minReadySeconds"].is_number_integer() ||
                                           spec["minReadySeconds"].get<int64_t>() < 0)) {
    Invalid(c, "spec.minReadySeconds", spec["minReadySeconds"],
            "must be greater than or equal to 0");
  }
  // The selector of a ReplicationController is a plain map of labels.
  const json& selector = Get(spec, "selector");
  bool has_selector = selector.is_object() && !selector.empty();
  if (!has_selector) {
    Required(c, "spec.selector");
  }
  ValidateReplicas(spec, "spec", c);
  const json& tmpl = Get(spec, "template");
  if (!tmpl.is_object()) {
    Required(c, "spec.template");
    return;
  }
  const json& labels = Get(Get(tmpl, "metadata"), "labels");
  if (has_selector) {
    bool matches = labels.is_object();
    for (auto it = selector.begin(); matches && it != selector.end(); ++it) {
      matches = labels.contains(it.key()) && labels[it.key()] == it.value();
    }
    if (!matches) {
      Invalid(c, "spec.template.metadata.labels", labels.is_null() ? json::object() : labels,
              "`selector` does not match template `labels`");
    }
  }
  ValidatePodSpec(Get(tmpl, "spec"), "spec.template.spec", c, {"Always"});
  if (Present(Get(tmpl, "spec"), "activeDeadlineSeconds")) {
    Add(c, "FieldValueForbidden", "spec.template.spec.activeDeadlineSeconds",
        "Forbidden: activeDeadlineSeconds in ReplicationController is not Supported");
  }
}

void ValidatePodTemplate(const json& obj, const json* old, Causes& c) {
  const json& tmpl = Get(obj, "template");
  ValidatePodSpec(Get(tmpl, "spec"), "template.spec", c, {"Always", "OnFailure", "Never"});
}

void ValidateHorizontalPodAutoscaler(const json& obj, const json* old, Causes& c) {
  const json& spec = Get(obj, "spec");
  const json& ref = Get(spec, "scaleTargetRef");
  if (Str(ref, "kind").empty()) {
    Required(c, "spec.scaleTargetRef.kind");
  }
  if (Str(ref, "name").empty()) {
    Required(c, "spec.scaleTargetRef.name");
  }
  int64_t min = 1;
  if (Present(spec, "minReplicas")) {
    if (!spec["minReplicas"].is_number_integer() || spec["minReplicas"].get<int64_t>() < 1) {
      Invalid(c, "spec.minReplicas", spec["minReplicas"], "must be greater than or equal to 1");
    } else {
      min = spec["minReplicas"].get<int64_t>();
    }
  }
  const json& max = Get(spec, "maxReplicas");
  if (!max.is_number_integer() || max.get<int64_t>() < 1) {
    Invalid(c, "spec.maxReplicas", max.is_null() ? json(0) : max,
            "must be greater than or equal to 1");
  } else if (max.get<int64_t>() < min) {
    Invalid(c, "spec.maxReplicas", max, "must be greater than or equal to `minReplicas`");
  }
  const json& metrics = Get(spec, "metrics");
  if (metrics.is_array()) {
    for (size_t i = 0; i < metrics.size(); ++i) {
      std::string type = Str(metrics[i], "type");
      std::string path = "spec.metrics[" + std::to_string(i) + "]";
      static const std::vector<std::string> kTypes = {"ContainerResource", "External", "Object",
                                                      "Pods", "Resource"};
      if (type.empty()) {
        Required(c, path + ".type");
      } else if (std::find(kTypes.begin(), kTypes.end(), type) == kTypes.end()) {
        NotSupported(c, path + ".type", type, kTypes);
      }
    }
  }
}

}  // namespace minik::api
