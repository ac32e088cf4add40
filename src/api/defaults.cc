// Defaults of the built-in kinds, as Kubernetes' SetDefaults_* functions and
// create strategies fill them, so objects read back exactly as on a real cluster.

#include "api/builtin.h"
#include "common/base64.h"

namespace minik::api {
namespace {

// Sets obj[key] = value when the key is absent or null.
void Def(json& obj, const char* key, const json& value) {
  if (!obj.contains(key) || obj[key].is_null()) {
    obj[key] = value;
  }
}

json& Obj(json& parent, const char* key) {
  if (!parent.contains(key) || !parent[key].is_object()) {
    parent[key] = json::object();
  }
  return parent[key];
}

std::string ImageTag(const std::string& image) {
  if (image.find('@') != std::string::npos) {
    return "@digest";
  }
  auto slash = image.rfind('/');
  auto colon = image.rfind(':');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) {
    return "";
  }
  return image.substr(colon + 1);
}

void DefaultProbe(json& probe) {
  if (!probe.is_object()) {
    return;
  }
  Def(probe, "timeoutSeconds", 1);
  Def(probe, "periodSeconds", 10);
  Def(probe, "successThreshold", 1);
  Def(probe, "failureThreshold", 3);
  if (probe.contains("httpGet") && probe["httpGet"].is_object()) {
    Def(probe["httpGet"], "path", "/");
    Def(probe["httpGet"], "scheme", "HTTP");
  }
  if (probe.contains("grpc") && probe["grpc"].is_object()) {
    Def(probe["grpc"], "service", "");
  }
}

void DefaultContainer(json& c) {
  if (!c.is_object()) {
    return;
  }
  Def(c, "terminationMessagePath", "/dev/termination-log");
  Def(c, "terminationMessagePolicy", "File");
  Def(c, "resources", json::object());
  if (!c.contains("imagePullPolicy") || c["imagePullPolicy"].is_null()) {
    std::string tag = ImageTag(c.value("image", ""));
    c["imagePullPolicy"] = (tag.empty() || tag == "latest") ? "Always" : "IfNotPresent";
  }
  if (c.contains("ports") && c["ports"].is_array()) {
    for (auto& p : c["ports"]) {
      if (p.is_object()) {
        Def(p, "protocol", "TCP");
      }
    }
  }
  if (c.contains("env") && c["env"].is_array()) {
    for (auto& e : c["env"]) {
      if (e.is_object() && e.contains("valueFrom") && e["valueFrom"].is_object() &&
          e["valueFrom"].contains("fieldRef") && e["valueFrom"]["fieldRef"].is_object()) {
        Def(e["valueFrom"]["fieldRef"], "apiVersion", "v1");
      }
    }
  }
  for (const char* p : {"livenessProbe", "readinessProbe", "startupProbe"}) {
    if (c.contains(p)) {
      DefaultProbe(c[p]);
    }
  }
}

void DefaultVolume(json& v) {
  if (!v.is_object()) {
    return;
  }
  for (const char* k : {"configMap", "secret", "downwardAPI", "projected"}) {
    if (v.contains(k) && v[k].is_object()) {
      Def(v[k], "defaultMode", 420);
    }
  }
  if (v.contains("projected") && v["projected"].is_object() && v["projected"].contains("sources") &&
      v["projected"]["sources"].is_array()) {
    for (auto& s : v["projected"]["sources"]) {
      if (s.is_object() && s.contains("serviceAccountToken") &&
          s["serviceAccountToken"].is_object()) {
        Def(s["serviceAccountToken"], "expirationSeconds", 3600);
      }
    }
  }
  if (v.contains("hostPath") && v["hostPath"].is_object()) {
    Def(v["hostPath"], "type", "");
  }
  bool has_source = false;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it.key() != "name") {
      has_source = true;
    }
  }
  if (!has_source) {
    v["emptyDir"] = json::object();
  }
}

}  // namespace

void DefaultPodSpec(json& spec, bool is_pod) {
  if (!spec.is_object()) {
    return;
  }
  Def(spec, "restartPolicy", "Always");
  Def(spec, "terminationGracePeriodSeconds", 30);
  Def(spec, "dnsPolicy", "ClusterFirst");
  Def(spec, "securityContext", json::object());
  Def(spec, "schedulerName", "default-scheduler");
  for (const char* list : {"containers", "initContainers", "ephemeralContainers"}) {
    if (spec.contains(list) && spec[list].is_array()) {
      for (auto& c : spec[list]) {
        DefaultContainer(c);
      }
    }
  }
  if (spec.contains("volumes") && spec["volumes"].is_array()) {
    for (auto& v : spec["volumes"]) {
      DefaultVolume(v);
    }
  }
  if (is_pod) {
    Def(spec, "enableServiceLinks", true);
    Def(spec, "priority", 0);
    Def(spec, "preemptionPolicy", "PreemptLowerPriority");
    if (!spec.contains("serviceAccountName") || spec["serviceAccountName"].is_null() ||
        spec["serviceAccountName"] == "") {
      spec["serviceAccountName"] = spec.value("serviceAccount", std::string("default"));
    }
    spec["serviceAccount"] = spec["serviceAccountName"];
    // The DefaultTolerationSeconds admission plugin: tolerate a lost node for 5 minutes.
    json& tol = spec.contains("tolerations") && spec["tolerations"].is_array()
                    ? spec["tolerations"]
                    : (spec["tolerations"] = json::array());
    for (const char* key : {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}) {
      bool present = false;
      for (const auto& t : tol) {
        if (t.is_object() && t.value("key", "") == key && t.value("effect", "") == "NoExecute") {
          present = true;
        }
      }
      if (!present) {
        tol.push_back({{"key", key},
                       {"operator", "Exists"},
                       {"effect", "NoExecute"},
                       {"tolerationSeconds", 300}});
      }
    }
  }
}

void DefaultPodTemplate(json& template_) {
  if (!template_.is_object()) {
    return;
  }
  Obj(template_, "metadata");
  DefaultPodSpec(Obj(template_, "spec"), false);
}

void DefaultPod(json& obj) {
  DefaultPodSpec(Obj(obj, "spec"), true);
  json& status = Obj(obj, "status");
  Def(status, "phase", "Pending");
  // QoS class from requests and limits, as the pod strategy computes it.
  bool any = false, guaranteed = true;
  for (const auto& c : obj["spec"].value("containers", json::array())) {
    json res = c.value("resources", json::object());
    json req = res.value("requests", json::object());
    json lim = res.value("limits", json::object());
    if (!req.empty() || !lim.empty()) {
      any = true;
    }
    for (const char* r : {"cpu", "memory"}) {
      if (!lim.contains(r) || (req.contains(r) && req[r] != lim[r])) {
        guaranteed = false;
      }
    }
  }
  Def(status, "qosClass", !any ? "BestEffort" : (guaranteed ? "Guaranteed" : "Burstable"));
}

void DefaultDeployment(json& obj) {
  json& spec = Obj(obj, "spec");
  Def(spec, "replicas", 1);
  json& strategy = Obj(spec, "strategy");
  Def(strategy, "type", "RollingUpdate");
  if (strategy["type"] == "RollingUpdate") {
    json& ru = Obj(strategy, "rollingUpdate");
    Def(ru, "maxUnavailable", "25%");
    Def(ru, "maxSurge", "25%");
  }
  Def(spec, "revisionHistoryLimit", 10);
  Def(spec, "progressDeadlineSeconds", 600);
  DefaultPodTemplate(Obj(spec, "template"));
}

void DefaultReplicaSet(json& obj) {
  json& spec = Obj(obj, "spec");
  Def(spec, "replicas", 1);
  DefaultPodTemplate(Obj(spec, "template"));
}

void DefaultStatefulSet(json& obj) {
  json& spec = Obj(obj, "spec");
  Def(spec, "replicas", 1);
  Def(spec, "podManagementPolicy", "OrderedReady");
  json& us = Obj(spec, "updateStrategy");
  Def(us, "type", "RollingUpdate");
  if (us["type"] == "RollingUpdate") {
    Def(Obj(us, "rollingUpdate"), "partition", 0);
  }
  Def(spec, "revisionHistoryLimit", 10);
  json& retention = Obj(spec, "persistentVolumeClaimRetentionPolicy");
  Def(retention, "whenDeleted", "Retain");
  Def(retention, "whenScaled", "Retain");
  if (spec.contains("volumeClaimTemplates") && spec["volumeClaimTemplates"].is_array()) {
    for (auto& t : spec["volumeClaimTemplates"]) {
      if (t.is_object()) {
        Def(t, "apiVersion", "v1");
        Def(t, "kind", "PersistentVolumeClaim");
        DefaultPersistentVolumeClaim(t);
      }
    }
  }
  DefaultPodTemplate(Obj(spec, "template"));
}

void DefaultDaemonSet(json& obj) {
  json& spec = Obj(obj, "spec");
  json& us = Obj(spec, "updateStrategy");
  Def(us, "type", "RollingUpdate");
  if (us["type"] == "RollingUpdate") {
    json& ru = Obj(us, "rollingUpdate");
    Def(ru, "maxUnavailable", 1);
    Def(ru, "maxSurge", 0);
  }
  Def(spec, "revisionHistoryLimit", 10);
  DefaultPodTemplate(Obj(spec, "template"));
}

void DefaultJob(json& obj) {
  json& spec = Obj(obj, "spec");
  bool has_completions = spec.contains("completions") && !spec["completions"].is_null();
  bool has_parallelism = spec.contains("parallelism") && !spec["parallelism"].is_null();
  if (!has_completions && !has_parallelism) {
    spec["completions"] = 1;
    spec["parallelism"] = 1;
  }
  Def(spec, "parallelism", 1);
  Def(spec, "backoffLimit", 6);
  Def(spec, "completionMode", "NonIndexed");
  Def(spec, "suspend", false);
  Def(spec, "manualSelector", nullptr);
  if (spec["manualSelector"].is_null()) {
    spec.erase("manualSelector");
  }
  Def(spec, "podReplacementPolicy", "TerminatingOrFailed");
  json& tmpl = Obj(spec, "template");
  DefaultPodTemplate(tmpl);
  // The job strategy selects its pods by the job's uid unless the user chose a selector.
  std::string uid = GetString(obj, "metadata.uid");
  std::string name = GetString(obj, "metadata.name");
  bool manual = spec.value("manualSelector", false);
  if (!uid.empty() && !manual && !spec.contains("selector")) {
    spec["selector"] = {{"matchLabels", {{"batch.kubernetes.io/controller-uid", uid}}}};
    json& labels = Obj(Obj(tmpl, "metadata"), "labels");
    labels["batch.kubernetes.io/controller-uid"] = uid;
    labels["batch.kubernetes.io/job-name"] = name;
    labels["controller-uid"] = uid;
    labels["job-name"] = name;
  }
}

void DefaultCronJob(json& obj) {
  json& spec = Obj(obj, "spec");
  Def(spec, "concurrencyPolicy", "Allow");
  Def(spec, "suspend", false);
  Def(spec, "successfulJobsHistoryLimit", 3);
  Def(spec, "failedJobsHistoryLimit", 1);
  json& jt = Obj(spec, "jobTemplate");
  Obj(jt, "metadata");
  json& jspec = Obj(jt, "spec");
  DefaultPodTemplate(Obj(jspec, "template"));
}

void DefaultService(json& obj) {
  json& spec = Obj(obj, "spec");
  Def(spec, "type", "ClusterIP");
  std::string type = spec["type"];
  Def(spec, "sessionAffinity", "None");
  if (spec["sessionAffinity"] == "ClientIP") {
    json& cfg = Obj(Obj(spec, "sessionAffinityConfig"), "clientIP");
    Def(cfg, "timeoutSeconds", 10800);
  }
  if (spec.contains("ports") && spec["ports"].is_array()) {
    for (auto& p : spec["ports"]) {
      if (p.is_object()) {
        Def(p, "protocol", "TCP");
        if ((!p.contains("targetPort") || p["targetPort"].is_null() || p["targetPort"] == 0 ||
             p["targetPort"] == "") &&
            p.contains("port")) {
          p["targetPort"] = p["port"];
        }
      }
    }
  }
  if (type != "ExternalName") {
    Def(spec, "internalTrafficPolicy", "Cluster");
    if (spec.contains("clusterIP") && spec["clusterIP"] == "None") {
      Def(spec, "clusterIPs", json::array({"None"}));
    }
    Def(spec, "ipFamilies", json::array({"IPv4"}));
    Def(spec, "ipFamilyPolicy", "SingleStack");
  }
  if (type == "NodePort" || type == "LoadBalancer") {
    Def(spec, "externalTrafficPolicy", "Cluster");
  }
  if (type == "LoadBalancer") {
    Def(spec, "allocateLoadBalancerNodePorts", true);
  }
  Def(Obj(obj, "status"), "loadBalancer", json::object());
}

void DefaultSecret(json& obj) {
  Def(obj, "type", "Opaque");
  // `stringData` is write-only: Kubernetes merges it into `data` (base64) on
  // every write, a key of `stringData` winning over the same key of `data`,
  // and never stores or returns it.
  auto it = obj.find("stringData");
  if (it == obj.end()) {
    return;
  }
  if (it->is_object()) {
    json& data = Obj(obj, "data");
    for (const auto& [k, v] : it->items()) {
      if (v.is_string()) {
        data[k] = base64::Encode(v.get<std::string>());
      }
    }
    if (data.empty()) {
      obj.erase("data");
    }
  }
  obj.erase("stringData");
}

void DefaultNamespace(json& obj) {
  json& spec = Obj(obj, "spec");
  Def(spec, "finalizers", json::array({"kubernetes"}));
  Def(Obj(obj, "status"), "phase", "Active");
  std::string name = GetString(obj, "metadata.name");
  if (!name.empty()) {
    Obj(Obj(obj, "metadata"), "labels")["kubernetes.io/metadata.name"] = name;
  }
}

void DefaultPersistentVolume(json& obj) {
  json& spec = Obj(obj, "spec");
  Def(spec, "persistentVolumeReclaimPolicy", "Retain");
  Def(spec, "volumeMode", "Filesystem");
  Def(Obj(obj, "status"), "phase", "Pending");
}

void DefaultPersistentVolumeClaim(json& obj) {
  json& spec = Obj(obj, "spec");
  Def(spec, "volumeMode", "Filesystem");
  Def(Obj(obj, "status"), "phase", "Pending");
}

void DefaultEndpoints(json& obj) {
  if (obj.contains("subsets") && obj["subsets"].is_array()) {
    for (auto& s : obj["subsets"]) {
      if (s.is_object() && s.contains("ports") && s["ports"].is_array()) {
        for (auto& p : s["ports"]) {
          if (p.is_object()) {
            Def(p, "protocol", "TCP");
          }
        }
      }
    }
  }
}

void DefaultEndpointSlice(json& obj) {
  if (obj.contains("ports") && obj["ports"].is_array()) {
    for (auto& p : obj["ports"]) {
      if (p.is_object()) {
        Def(p, "protocol", "TCP");
      }
    }
  }
}

void DefaultStorageClass(json& obj) {
  Def(obj, "reclaimPolicy", "Delete");
  Def(obj, "volumeBindingMode", "Immediate");
}

void DefaultPriorityClass(json& obj) {
  Def(obj, "preemptionPolicy", "PreemptLowerPriority");
}

void DefaultRoleBinding(json& obj) {
  if (obj.contains("subjects") && obj["subjects"].is_array()) {
    for (auto& s : obj["subjects"]) {
      if (s.is_object() && (s.value("kind", "") == "User" || s.value("kind", "") == "Group")) {
        Def(s, "apiGroup", "rbac.authorization.k8s.io");
      }
    }
  }
}

void DefaultIngress(json& obj) {
  Obj(obj, "status");
}

void DefaultReplicationController(json& obj) {
  json& spec = Obj(obj, "spec");
  const json* labels = Find(obj, "spec.template.metadata.labels");
  if (labels && labels->is_object() && !labels->empty()) {
    if (!spec.contains("selector") || !spec["selector"].is_object() || spec["selector"].empty()) {
      spec["selector"] = *labels;
    }
    json& meta = Obj(obj, "metadata");
    if (!meta.contains("labels") || !meta["labels"].is_object() || meta["labels"].empty()) {
      meta["labels"] = *labels;
    }
  }
  Def(spec, "replicas", 1);
  if (spec.contains("template") && spec["template"].is_object()) {
    DefaultPodTemplate(spec["template"]);
  }
}

void DefaultHorizontalPodAutoscaler(json& obj) {
  // autoscaling/v2's defaults (the stored version): one replica at least,
  // 80% of requested CPU as the target when no metric is given, and the
  // scaling rules kube fills in when `behavior` is set.
  json& spec = Obj(obj, "spec");
  Def(spec, "minReplicas", 1);
  if (!spec.contains("metrics") || !spec["metrics"].is_array() || spec["metrics"].empty()) {
    spec["metrics"] = json::array(
        {{{"type", "Resource"},
          {"resource",
           {{"name", "cpu"}, {"target", {{"type", "Utilization"}, {"averageUtilization", 80}}}}}}});
  }
  if (spec.contains("behavior") && spec["behavior"].is_object()) {
    json& up = Obj(spec["behavior"], "scaleUp");
    Def(up, "stabilizationWindowSeconds", 0);
    Def(up, "selectPolicy", "Max");
    Def(up, "policies",
        json::array({{{"type", "Pods"}, {"value", 4}, {"periodSeconds", 15}},
                     {{"type", "Percent"}, {"value", 100}, {"periodSeconds", 15}}}));
    json& down = Obj(spec["behavior"], "scaleDown");
    Def(down, "selectPolicy", "Max");
    Def(down, "policies",
        json::array({{{"type", "Percent"}, {"value", 100}, {"periodSeconds", 15}}}));
  }
}

}  // namespace minik::api
