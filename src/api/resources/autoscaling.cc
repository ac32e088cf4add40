// autoscaling: HorizontalPodAutoscalers, served at v2 (stored, preferred)
// and v1, which is converted to and from v2 as kube-apiserver does: v1 has
// only a CPU utilization target, so any other metric, the conditions and the
// scaling behaviour travel in `autoscaling.alpha.kubernetes.io/*` annotations.

#include "api/registration.h"

namespace minik::api {
namespace {

constexpr const char* kMetricsAnnotation = "autoscaling.alpha.kubernetes.io/metrics";
constexpr const char* kCurrentMetricsAnnotation = "autoscaling.alpha.kubernetes.io/current-metrics";
constexpr const char* kConditionsAnnotation = "autoscaling.alpha.kubernetes.io/conditions";
constexpr const char* kBehaviorAnnotation = "autoscaling.alpha.kubernetes.io/behavior";

bool IsCpuUtilization(const json& m, const char* value_key) {
  return m.value("type", "") == "Resource" && GetString(m, "resource.name") == "cpu" &&
         Find(m, value_key) != nullptr;
}

void SetAnnotation(json& obj, const char* key, const json& value) {
  obj["metadata"]["annotations"][key] = value.dump();
}

// Takes annotation `key` off `obj` and returns its JSON value (null when absent or not JSON).
json TakeAnnotation(json& obj, const char* key) {
  json* ann = obj.contains("metadata") && obj["metadata"].contains("annotations")
                  ? &obj["metadata"]["annotations"]
                  : nullptr;
  if (!ann || !ann->is_object() || !ann->contains(key)) {
    return nullptr;
  }
  json v = nullptr;
  if ((*ann)[key].is_string()) {
    try {
      v = json::parse((*ann)[key].get<std::string>());
    } catch (const json::exception&) {
    }
  }
  ann->erase(key);
  if (ann->empty()) {
    obj["metadata"].erase("annotations");
  }
  return v;
}

json V2ToV1(const json& v2) {
  json v1 = {{"metadata", v2.value("metadata", json::object())}};
  const json spec = v2.value("spec", json::object());
  json s = json::object();
  for (const char* k : {"scaleTargetRef", "minReplicas", "maxReplicas"}) {
    if (spec.contains(k)) {
      s[k] = spec[k];
    }
  }
  json others = json::array();
  for (const auto& m : spec.value("metrics", json::array())) {
    if (IsCpuUtilization(m, "resource.target.averageUtilization") &&
        !s.contains("targetCPUUtilizationPercentage")) {
      s["targetCPUUtilizationPercentage"] = *Find(m, "resource.target.averageUtilization");
    } else {
      others.push_back(m);
    }
  }
  if (!others.empty()) {
    SetAnnotation(v1, kMetricsAnnotation, others);
  }
  if (spec.contains("behavior")) {
    SetAnnotation(v1, kBehaviorAnnotation, spec["behavior"]);
  }
  v1["spec"] = s;
  if (v2.contains("status") && v2["status"].is_object()) {
    const json& st = v2["status"];
    json o = json::object();
    for (const char* k : {"observedGeneration", "lastScaleTime"}) {
      if (st.contains(k)) {
        o[k] = st[k];
      }
    }
    o["currentReplicas"] = st.value("currentReplicas", 0);
    o["desiredReplicas"] = st.value("desiredReplicas", 0);
    json current_others = json::array();
    for (const auto& m : st.value("currentMetrics", json::array())) {
      if (IsCpuUtilization(m, "resource.current.averageUtilization") &&
          !o.contains("currentCPUUtilizationPercentage")) {
        o["currentCPUUtilizationPercentage"] = *Find(m, "resource.current.averageUtilization");
      } else {
        current_others.push_back(m);
      }
    }
    if (!current_others.empty()) {
      SetAnnotation(v1, kCurrentMetricsAnnotation, current_others);
    }
    if (st.contains("conditions") && !st["conditions"].empty()) {
      SetAnnotation(v1, kConditionsAnnotation, st["conditions"]);
    }
    v1["status"] = o;
  }
  return v1;
}

json V1ToV2(const json& v1_in) {
  json v1 = v1_in;
  json metrics = TakeAnnotation(v1, kMetricsAnnotation);
  json current = TakeAnnotation(v1, kCurrentMetricsAnnotation);
  json conditions = TakeAnnotation(v1, kConditionsAnnotation);
  json behavior = TakeAnnotation(v1, kBehaviorAnnotation);
  json v2 = {{"metadata", v1.value("metadata", json::object())}};
  const json spec = v1.value("spec", json::object());
  json s = json::object();
  for (const char* k : {"scaleTargetRef", "minReplicas", "maxReplicas"}) {
    if (spec.contains(k)) {
      s[k] = spec[k];
    }
  }
  json ms = json::array();
  if (spec.contains("targetCPUUtilizationPercentage") &&
      !spec["targetCPUUtilizationPercentage"].is_null()) {
    ms.push_back({{"type", "Resource"},
                  {"resource",
                   {{"name", "cpu"},
                    {"target",
                     {{"type", "Utilization"},
                      {"averageUtilization", spec["targetCPUUtilizationPercentage"]}}}}}});
  }
  if (metrics.is_array()) {
    for (const auto& m : metrics) {
      ms.push_back(m);
    }
  }
  if (!ms.empty()) {
    s["metrics"] = ms;
  }
  if (behavior.is_object()) {
    s["behavior"] = behavior;
  }
  v2["spec"] = s;
  if (v1.contains("status") && v1["status"].is_object()) {
    const json& st = v1["status"];
    json o = json::object();
    for (const char* k :
         {"observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"}) {
      if (st.contains(k)) {
        o[k] = st[k];
      }
    }
    json cm = json::array();
    if (st.contains("currentCPUUtilizationPercentage")) {
      cm.push_back(
          {{"type", "Resource"},
           {"resource",
            {{"name", "cpu"},
             {"current", {{"averageUtilization", st["currentCPUUtilizationPercentage"]}}}}}});
    }
    if (current.is_array()) {
      for (const auto& m : current) {
        cm.push_back(m);
      }
    }
    if (!cm.empty()) {
      o["currentMetrics"] = cm;
    }
    if (conditions.is_array()) {
      o["conditions"] = conditions;
    }
    v2["status"] = o;
  }
  return v2;
}

// The TARGETS column as kubectl prints it: "cpu: 12%/80%", "<unknown>" until measured.
std::string Targets(const json& hpa) {
  const json& metrics = At(hpa, "spec.metrics");
  const json& current = At(hpa, "status.currentMetrics");
  std::string out;
  size_t i = 0;
  for (const auto& m : metrics.is_array() ? metrics : json::array()) {
    std::string type = m.value("type", "");
    std::string key = type == "Resource"            ? "resource"
                      : type == "ContainerResource" ? "containerResource"
                      : type == "Pods"              ? "pods"
                      : type == "Object"            ? "object"
                                                    : "external";
    static const json kNone = json::object();
    auto found = m.find(key);
    const json& src = found != m.end() && found->is_object() ? *found : kNone;
    const json target = src.value("target", json::object());
    std::string name = key == "resource" || key == "containerResource"
                           ? src.value("name", "")
                           : GetString(src, "metric.name");
    std::string cur = "<unknown>";
    std::string tgt;
    json cur_m = current.is_array() && i < current.size() ? current[i] : json();
    const json* cv =
        cur_m.is_object() && cur_m.contains(key) ? Find(cur_m[key], "current") : nullptr;
    if (target.contains("averageUtilization")) {
      tgt = target["averageUtilization"].dump() + "%";
      if (cv && cv->contains("averageUtilization")) {
        cur = (*cv)["averageUtilization"].dump() + "%";
      }
    } else {
      const char* vk = target.contains("averageValue") ? "averageValue" : "value";
      tgt = target.contains(vk)
                ? (target[vk].is_string() ? target[vk].get<std::string>() : target[vk].dump())
                : "";
      if (cv && cv->contains(vk)) {
        cur = (*cv)[vk].is_string() ? (*cv)[vk].get<std::string>() : (*cv)[vk].dump();
      }
      if (vk == std::string("averageValue") && type != "Pods") {
        tgt += " (avg)";
      }
    }
    out += (out.empty() ? "" : ", ") + name + ": " + cur + "/" + tgt;
    ++i;
  }
  return out.empty() ? "<none>" : out;
}

ResourceInfo Hpa(const std::string& version) {
  auto r = R("autoscaling", version, "HorizontalPodAutoscaler", "horizontalpodautoscalers", true);
  r.short_names = {"hpa"};
  r.categories = {"all"};
  r.subresources = {"status"};
  r.reset_status_on_create = true;
  r.columns =
      Cols({NameCol(),
            Col("Reference", "string", 0,
                "reference to scaled resource; horizontal pod autoscaler will learn the current "
                "resource consumption and will set the desired number of pods by using its Scale "
                "subresource."),
            Col("Targets", "string", 0,
                "metrics contains the specifications for which to use to calculate the desired "
                "replica count (the maximum replica count across all metrics will be used)."),
            Col("MinPods", "string", 0,
                "minReplicas is the lower limit for the number of replicas to which the autoscaler "
                "can scale down."),
            Col("MaxPods", "integer", 0,
                "maxReplicas is the upper limit for the number of replicas to which the autoscaler "
                "can scale up."),
            Col("Replicas", "integer", 0,
                "currentReplicas is current number of replicas of pods managed by this autoscaler, "
                "as last seen by the autoscaler."),
            AgeCol()});
  return r;
}

}  // namespace

void RegisterAutoscaling(ResourceRegistry& reg) {
  // v2 first: it is the preferred (and stored) version.
  {
    auto r = Hpa("v2");
    r.tracks_generation = true;
    r.defaults = DefaultHorizontalPodAutoscaler;
    r.validate = ValidateHorizontalPodAutoscaler;
    r.cells = [](const json& h) {
      const json& min = At(h, "spec.minReplicas");
      return json{Name(h),
                  S(h, "spec.scaleTargetRef.kind") + "/" + S(h, "spec.scaleTargetRef.name"),
                  Targets(h),
                  min.is_number_integer() ? min.dump() : "<unset>",
                  Int(h, "spec.maxReplicas"),
                  Int(h, "status.currentReplicas"),
                  AgeOf(h)};
    };
    reg.Add(std::move(r));
  }
  {
    auto r = Hpa("v1");
    r.storage_api_version = "autoscaling/v2";
    r.to_storage = V1ToV2;
    r.from_storage = V2ToV1;
    r.cells = [](const json& h) {
      json v2 = V1ToV2(h);
      const json& min = At(h, "spec.minReplicas");
      v2["metadata"] = h.value("metadata", json::object());
      return json{Name(h),
                  S(h, "spec.scaleTargetRef.kind") + "/" + S(h, "spec.scaleTargetRef.name"),
                  Targets(v2),
                  min.is_number_integer() ? min.dump() : "<unset>",
                  Int(h, "spec.maxReplicas"),
                  Int(h, "status.currentReplicas"),
                  AgeOf(h)};
    };
    reg.Add(std::move(r));
  }
}

}  // namespace minik::api
