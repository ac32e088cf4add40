#include "controllers/util.h"

#include <cmath>

namespace minik::controllers {

const json* ControllerRef(const json& obj) {
  const json* refs = Find(obj, "metadata.ownerReferences");
  if (!refs || !refs->is_array()) {
    return nullptr;
  }
  for (const auto& r : *refs) {
    if (r.value("controller", false)) {
      return &r;
    }
  }
  return nullptr;
}

json NewControllerRef(const json& owner) {
  return {{"apiVersion", owner.value("apiVersion", "")},
          {"kind", owner.value("kind", "")},
          {"name", GetString(owner, "metadata.name")},
          {"uid", GetString(owner, "metadata.uid")},
          {"controller", true},
          {"blockOwnerDeletion", true}};
}

bool IsControlledBy(const json& obj, const std::string& owner_uid) {
  const json* r = ControllerRef(obj);
  return r && r->value("uid", "") == owner_uid;
}

bool IsPodTerminating(const json& pod) {
  const json* d = Find(pod, "metadata.deletionTimestamp");
  return d && d->is_string();
}

bool IsPodActive(const json& pod) {
  std::string phase = GetString(pod, "status.phase");
  return phase != "Succeeded" && phase != "Failed" && !IsPodTerminating(pod);
}

const json* GetCondition(const json& obj, const std::string& type) {
  const json* conds = Find(obj, "status.conditions");
  if (!conds || !conds->is_array()) {
    return nullptr;
  }
  for (const auto& c : *conds) {
    if (c.value("type", "") == type) {
      return &c;
    }
  }
  return nullptr;
}

bool IsPodReady(const json& pod) {
  const json* c = GetCondition(pod, "Ready");
  return c && c->value("status", "") == "True";
}

bool PodReadySince(const json& pod, SystemTime* since) {
  const json* c = GetCondition(pod, "Ready");
  if (!c || c->value("status", "") != "True") {
    return false;
  }
  if (!ParseTime(c->value("lastTransitionTime", ""), since)) {
    *since = SystemTime{};
  }
  return true;
}

bool IsPodAvailable(const json& pod, int64_t min_ready_seconds, SystemTime now) {
  SystemTime since;
  if (!PodReadySince(pod, &since)) {
    return false;
  }
  return min_ready_seconds <= 0 || since + std::chrono::seconds(min_ready_seconds) <= now;
}

std::string ResolveControllerRef(const json& obj, const std::string& kind,
                                 const client::Informer& owners) {
  const json* ref = ControllerRef(obj);
  if (!ref || ref->value("kind", "") != kind) {
    return "";
  }
  std::string key = GetString(obj, "metadata.namespace") + "/" + ref->value("name", "");
  client::Object owner = owners.Get(key);
  if (!owner || GetString(*owner, "metadata.uid") != ref->value("uid", "")) {
    return "";
  }
  return key;
}

bool Replaced(const json& old_obj, const json& obj) {
  return GetString(old_obj, "metadata.uid") != GetString(obj, "metadata.uid");
}

json PodFromTemplate(const json& template_, const json& owner, const std::string& generate_name) {
  json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}};
  json meta = template_.value("metadata", json::object());
  meta.erase("name");
  meta.erase("namespace");
  meta.erase("resourceVersion");
  meta.erase("uid");
  meta.erase("creationTimestamp");
  meta["generateName"] = generate_name;
  meta["namespace"] = GetString(owner, "metadata.namespace");
  meta["ownerReferences"] = json::array({NewControllerRef(owner)});
  pod["metadata"] = meta;
  pod["spec"] = template_.value("spec", json::object());
  return pod;
}

std::string TemplateHash(const json& template_, int64_t collision_count) {
  std::string text = template_.dump();
  uint32_t h = 2166136261u;
  for (unsigned char c : text) {
    h ^= c;
    h *= 16777619u;
  }
  if (collision_count > 0) {
    for (int i = 0; i < 8; ++i) {
      h ^= static_cast<uint32_t>((collision_count >> (i * 8)) & 0xff);
      h *= 16777619u;
    }
  }
  static const char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string decimal = std::to_string(h);
  std::string out;
  for (char c : decimal) {
    out += kAlphabet[static_cast<unsigned char>(c) % (sizeof(kAlphabet) - 1)];
  }
  return out;
}

bool SetCondition(json& obj, const std::string& type, const std::string& status,
                  const std::string& reason, const std::string& message, bool with_update_time) {
  json& st = obj["status"];
  if (!st.is_object()) {
    st = json::object();
  }
  json& conds = st["conditions"];
  if (!conds.is_array()) {
    conds = json::array();
  }
  std::string now = FormatTime(Now());
  for (auto& c : conds) {
    if (c.value("type", "") == type) {
      if (c.value("status", "") == status && c.value("reason", "") == reason &&
          c.value("message", "") == message) {
        return false;
      }
      if (c.value("status", "") != status) {
        c["lastTransitionTime"] = now;
      }
      c["status"] = status;
      c["reason"] = reason;
      c["message"] = message;
      if (with_update_time) {
        c["lastUpdateTime"] = now;
      }
      return true;
    }
  }
  json c = {{"type", type},
            {"status", status},
            {"reason", reason},
            {"message", message},
            {"lastTransitionTime", now}};
  if (with_update_time) {
    c["lastUpdateTime"] = now;
  }
  conds.push_back(c);
  return true;
}

int64_t IntAt(const json& obj, const char* path, int64_t def) {
  const json* v = Find(obj, path);
  return v && v->is_number_integer() ? v->get<int64_t>() : def;
}

int64_t ScaledValue(const json& v, int64_t total, bool round_up) {
  if (v.is_number_integer()) {
    return v.get<int64_t>();
  }
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (!s.empty() && s.back() == '%') {
      double pct = std::atof(s.substr(0, s.size() - 1).c_str());
      double x = pct * static_cast<double>(total) / 100.0;
      return static_cast<int64_t>(round_up ? std::ceil(x) : std::floor(x));
    }
    return std::atoll(s.c_str());
  }
  return 0;
}

}  // namespace minik::controllers
