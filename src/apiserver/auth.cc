#include "apiserver/auth.h"

#include <chrono>

#include "api/status.h"
#include "common/clock.h"

namespace minik::apiserver {
namespace {

using api::StatusError;

constexpr int64_t kDefaultExpirationSeconds = 3600;
constexpr int64_t kMinExpirationSeconds = 600;
constexpr int64_t kMaxExpirationSeconds = int64_t{1} << 32;
constexpr char kMountPath[] = "/var/run/secrets/kubernetes.io/serviceaccount";
// Clocks of the node and the API server may differ a little.
constexpr int64_t kLeewaySeconds = 60;

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(Now().time_since_epoch()).count();
}

std::string Str(const json& obj, const char* path) {
  const json* v = Find(obj, path);
  return v && v->is_string() ? v->get<std::string>() : "";
}

}  // namespace

ServiceAccountTokens::ServiceAccountTokens(jwt::Key key, Lookup lookup)
    : key_(std::move(key)), lookup_(std::move(lookup)) {}

json ServiceAccountTokens::Issue(const std::string& ns, const std::string& name,
                                 const json& request) const {
  json sa = lookup_("serviceaccounts", ns, name);
  if (sa.is_null()) {
    throw api::NotFound("", "serviceaccounts", name);
  }
  if (!request.is_object()) {
    throw api::BadRequest("the body of a TokenRequest must be a JSON object");
  }
  json spec = request.value("spec", json::object());
  if (!spec.is_object()) {
    throw api::BadRequest("spec: must be an object");
  }
  std::vector<api::Cause> causes;
  json audiences = spec.value("audiences", json::array());
  if (!audiences.is_array()) {
    causes.push_back(
        {"FieldValueInvalid", "Invalid value: must be a list of strings", "spec.audiences"});
    audiences = json::array();
  }
  for (const auto& a : audiences) {
    if (!a.is_string()) {
      causes.push_back({"FieldValueInvalid", "Invalid value: must be a string", "spec.audiences"});
    }
  }
  if (audiences.empty()) {
    audiences = json::array({kServiceAccountIssuer});
  }
  const json& exp_in = spec.contains("expirationSeconds") && !spec["expirationSeconds"].is_null()
                           ? spec["expirationSeconds"]
                           : json(kDefaultExpirationSeconds);
  int64_t exp_seconds = exp_in.is_number_integer() ? exp_in.get<int64_t>() : -1;
  if (exp_seconds < kMinExpirationSeconds) {
    causes.push_back(
        {"FieldValueInvalid",
         "Invalid value: " + exp_in.dump() + ": may not specify a duration less than 10 minutes",
         "spec.expirationSeconds"});
  } else if (exp_seconds > kMaxExpirationSeconds) {
    causes.push_back({"FieldValueInvalid",
                      "Invalid value: " + exp_in.dump() +
                          ": may not specify a duration larger than 2^32 seconds",
                      "spec.expirationSeconds"});
  }
  json bound = spec.value("boundObjectRef", json());
  json bound_obj;
  std::string bound_kind;
  if (!bound.is_null()) {
    bound_kind = bound.is_object() ? bound.value("kind", "") : "";
    std::string api_version = bound.is_object() ? bound.value("apiVersion", "v1") : "";
    if ((bound_kind != "Pod" && bound_kind != "Secret") || api_version != "v1") {
      causes.push_back({"FieldValueNotSupported",
                        "Unsupported value: \"" + api_version + ", Kind=" + bound_kind +
                            "\": supported values: \"v1, Kind=Pod\", \"v1, Kind=Secret\"",
                        "spec.boundObjectRef"});
    }
  }
  if (!causes.empty()) {
    throw api::Invalid("authentication.k8s.io", "TokenRequest", name, causes);
  }
  if (!bound.is_null()) {
    std::string bname = bound.value("name", "");
    std::string plural = bound_kind == "Pod" ? "pods" : "secrets";
    bound_obj = lookup_(plural, ns, bname);
    if (bound_obj.is_null()) {
      throw api::NotFound("", plural, bname);
    }
    std::string want_uid = bound.value("uid", "");
    if (!want_uid.empty() && want_uid != Str(bound_obj, "metadata.uid")) {
      throw api::Conflict("", plural, bname,
                          "the UID in the bound object reference (" + want_uid +
                              ") does not match the UID in record. The object might have been "
                              "deleted and then recreated");
    }
    bound["uid"] = Str(bound_obj, "metadata.uid");
  }

  int64_t now = UnixNow();
  int64_t exp = now + exp_seconds;
  json k8s = {{"namespace", ns},
              {"serviceaccount", {{"name", name}, {"uid", Str(sa, "metadata.uid")}}}};
  if (bound_kind == "Pod") {
    k8s["pod"] = {{"name", Str(bound_obj, "metadata.name")},
                  {"uid", Str(bound_obj, "metadata.uid")}};
    if (std::string node = Str(bound_obj, "spec.nodeName"); !node.empty()) {
      json n = lookup_("nodes", "", node);
      k8s["node"] = {{"name", node}, {"uid", n.is_null() ? "" : Str(n, "metadata.uid")}};
    }
  } else if (bound_kind == "Secret") {
    k8s["secret"] = {{"name", Str(bound_obj, "metadata.name")},
                     {"uid", Str(bound_obj, "metadata.uid")}};
  }
  json claims = {{"iss", kServiceAccountIssuer},
                 {"sub", "system:serviceaccount:" + ns + ":" + name},
                 {"aud", audiences},
                 {"exp", exp},
                 {"iat", now},
                 {"nbf", now},
                 {"jti", NewUid()},
                 {"kubernetes.io", k8s}};
  json out = {
      {"kind", "TokenRequest"},
      {"apiVersion", "authentication.k8s.io/v1"},
      {"metadata", {{"name", name}, {"namespace", ns}, {"creationTimestamp", FormatTime(Now())}}},
      {"spec", {{"audiences", audiences}, {"expirationSeconds", exp_seconds}}},
      {"status",
       {{"token", key_.Sign(claims)},
        {"expirationTimestamp", FormatTime(SystemTime(std::chrono::seconds(exp)))}}}};
  if (!bound.is_null()) {
    out["spec"]["boundObjectRef"] = bound;
  }
  return out;
}

std::optional<Identity> ServiceAccountTokens::Authenticate(const std::string& token,
                                                           std::string* why) const {
  auto fail = [&](const std::string& reason) -> std::optional<Identity> {
    if (why) {
      *why = reason;
    }
    return std::nullopt;
  };
  std::optional<json> claims = key_.Verify(token, why);
  if (!claims) {
    return std::nullopt;
  }
  if (claims->value("iss", "") != kServiceAccountIssuer) {
    return fail("token issued by someone else");
  }
  bool audience = false;
  const json aud = claims->value("aud", json());
  for (const auto& a : aud.is_array() ? aud : json::array({aud})) {
    audience = audience || (a.is_string() && a.get<std::string>() == kServiceAccountIssuer);
  }
  if (!audience) {
    return fail("token audiences do not include " + std::string(kServiceAccountIssuer));
  }
  int64_t now = UnixNow();
  const json exp = claims->value("exp", json());
  if (!exp.is_number_integer() || exp.get<int64_t>() + kLeewaySeconds < now) {
    return fail("token has expired");
  }
  const json nbf = claims->value("nbf", json());
  if (nbf.is_number_integer() && nbf.get<int64_t>() - kLeewaySeconds > now) {
    return fail("token is not valid yet");
  }
  const json k8s = claims->value("kubernetes.io", json::object());
  std::string ns = k8s.is_object() ? k8s.value("namespace", "") : "";
  std::string sa_name = Str(k8s, "serviceaccount.name");
  std::string sa_uid = Str(k8s, "serviceaccount.uid");
  if (ns.empty() || sa_name.empty() ||
      claims->value("sub", "") != "system:serviceaccount:" + ns + ":" + sa_name) {
    return fail("token has no service account claims");
  }
  json sa = lookup_("serviceaccounts", ns, sa_name);
  if (sa.is_null() || Str(sa, "metadata.uid") != sa_uid) {
    return fail("service account " + ns + "/" + sa_name + " has been deleted");
  }
  Identity id;
  id.user = "system:serviceaccount:" + ns + ":" + sa_name;
  id.uid = sa_uid;
  id.groups = {"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"};
  for (const char* kind : {"pod", "secret"}) {
    std::string bname = Str(k8s, (std::string(kind) + ".name").c_str());
    if (bname.empty()) {
      continue;
    }
    json obj = lookup_(kind == std::string("pod") ? "pods" : "secrets", ns, bname);
    if (obj.is_null() ||
        Str(obj, "metadata.uid") != Str(k8s, (std::string(kind) + ".uid").c_str())) {
      return fail(std::string(kind) + " " + ns + "/" + bname + " the token is bound to is gone");
    }
    if (kind == std::string("pod")) {
      id.extra["authentication.kubernetes.io/pod-name"] = json::array({bname});
      id.extra["authentication.kubernetes.io/pod-uid"] = json::array({Str(obj, "metadata.uid")});
    }
  }
  if (std::string jti = claims->value("jti", ""); !jti.empty()) {
    id.extra["authentication.kubernetes.io/credential-id"] = json::array({"JTI=" + jti});
  }
  return id;
}

void AddServiceAccountVolume(json& pod, const json& sa) {
  json& spec = pod["spec"];
  if (!spec.is_object()) {
    return;
  }
  const json* pod_opt = Find(pod, "spec.automountServiceAccountToken");
  const json* sa_opt = sa.is_null() ? nullptr : Find(sa, "automountServiceAccountToken");
  if ((pod_opt && pod_opt->is_boolean() && !pod_opt->get<bool>()) ||
      (!pod_opt && sa_opt && sa_opt->is_boolean() && !sa_opt->get<bool>())) {
    return;
  }
  auto mounted = [](const json& c) {
    for (const auto& m : c.value("volumeMounts", json::array())) {
      if (m.is_object() && m.value("mountPath", "") == kMountPath) {
        return true;
      }
    }
    return false;
  };
  std::string volume = "kube-api-access-" + RandomSuffix(5);
  bool used = false;
  for (const char* list : {"initContainers", "containers"}) {
    if (!spec.contains(list) || !spec[list].is_array()) {
      continue;
    }
    for (auto& c : spec[list]) {
      if (!c.is_object() || mounted(c)) {
        continue;
      }
      if (!c.contains("volumeMounts") || !c["volumeMounts"].is_array()) {
        c["volumeMounts"] = json::array();
      }
      c["volumeMounts"].push_back(
          {{"name", volume}, {"readOnly", true}, {"mountPath", kMountPath}});
      used = true;
    }
  }
  if (!used) {
    return;
  }
  if (!spec.contains("volumes") || !spec["volumes"].is_array()) {
    spec["volumes"] = json::array();
  }
  spec["volumes"].push_back(
      {{"name", volume},
       {"projected",
        {{"defaultMode", 420},
         {"sources",
          {{{"serviceAccountToken", {{"expirationSeconds", 3607}, {"path", "token"}}}},
           {{"configMap",
             {{"name", "kube-root-ca.crt"}, {"items", {{{"key", "ca.crt"}, {"path", "ca.crt"}}}}}}},
           {{"downwardAPI",
             {{"items",
               {{{"fieldRef", {{"apiVersion", "v1"}, {"fieldPath", "metadata.namespace"}}},
                 {"path", "namespace"}}}}}}}}}}}});
}

}  // namespace minik::apiserver
