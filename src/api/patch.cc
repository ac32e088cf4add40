#include "api/patch.h"

#include <algorithm>

namespace minik::api {
namespace {

constexpr const char* kSetElementOrder = "$setElementOrder/";
constexpr const char* kDeleteFromPrimitiveList = "$deleteFromPrimitiveList/";

bool StartsWith(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

class Smp {
 public:
  explicit Smp(const TypeTable& t) : t_(t) {}

  json Map(const MessageDef* m, const json& original, const json& patch, int depth) {
    if (depth > 100) {
      throw PatchError("the patch is nested too deeply");
    }
    if (!patch.is_object()) {
      return patch;
    }
    json result = original.is_object() ? original : json::object();
    if (auto d = patch.find("$patch"); d != patch.end()) {
      std::string directive = d->is_string() ? d->get<std::string>() : "";
      if (directive == "replace") {
        json r = patch;
        r.erase("$patch");
        return r;
      }
      if (directive == "delete") {
        return json::object();
      }
      if (directive != "merge") {
        throw PatchError("unknown patch directive \"" + directive + "\" in a map");
      }
    }
    std::vector<std::string> retain;
    bool has_retain = false;
    for (auto it = patch.begin(); it != patch.end(); ++it) {
      const std::string& k = it.key();
      const json& pv = it.value();
      if (k == "$patch") {
        continue;
      }
      if (k == "$retainKeys") {
        has_retain = true;
        if (!pv.is_array()) {
          throw PatchError("$retainKeys must be a list");
        }
        for (const auto& x : pv) {
          if (x.is_string()) {
            retain.push_back(x.get<std::string>());
          }
        }
        continue;
      }
      if (StartsWith(k, kSetElementOrder)) {
        continue;  // applied after the list it orders is merged
      }
      if (StartsWith(k, kDeleteFromPrimitiveList)) {
        std::string field = k.substr(std::strlen(kDeleteFromPrimitiveList));
        if (result.contains(field) && result[field].is_array() && pv.is_array()) {
          json kept = json::array();
          for (const auto& x : result[field]) {
            if (std::find(pv.begin(), pv.end(), x) == pv.end()) {
              kept.push_back(x);
            }
          }
          result[field] = kept;
        }
        continue;
      }
      if (pv.is_null()) {
        result.erase(k);
        continue;
      }
      const FieldDef* f = nullptr;
      if (m) {
        auto fi = m->by_json.find(k);
        f = fi == m->by_json.end() ? nullptr : fi->second;
      }
      const json* ov = result.contains(k) ? &result[k] : nullptr;
      if (pv.is_array()) {
        json merged = List(f, ov ? *ov : json(), pv, depth);
        result[k] = std::move(merged);
      } else if (pv.is_object()) {
        const MessageDef* sub = nullptr;
        bool is_map = f && f->is_map;
        if (f && !is_map) {
          sub = t_.Find(f->type);
        }
        if (is_map) {
          // map<string, X>: merge keys; values of message type merge further.
          json r = ov && ov->is_object() ? *ov : json::object();
          const MessageDef* vm = t_.Find(f->type);
          for (auto e = pv.begin(); e != pv.end(); ++e) {
            if (e.value().is_null()) {
              r.erase(e.key());
            } else if (vm && e.value().is_object() && !t_.IsScalar(f->type)) {
              r[e.key()] = Map(vm, r.contains(e.key()) ? r[e.key()] : json(), e.value(), depth + 1);
            } else {
              r[e.key()] = e.value();
            }
          }
          result[k] = r;
        } else if (f && t_.IsScalar(f->type)) {
          result[k] = pv;  // e.g. a RawExtension or FieldsV1: replaced whole
        } else {
          bool replace = f && f->patch_strategy == "replace";
          result[k] = replace ? pv : Map(sub, ov ? *ov : json(), pv, depth + 1);
        }
      } else {
        result[k] = pv;
      }
    }
    // Order lists as the client asked.
    for (auto it = patch.begin(); it != patch.end(); ++it) {
      if (!StartsWith(it.key(), kSetElementOrder)) {
        continue;
      }
      std::string field = it.key().substr(std::strlen(kSetElementOrder));
      if (!result.contains(field) || !result[field].is_array() || !it.value().is_array()) {
        continue;
      }
      const FieldDef* f = nullptr;
      if (m) {
        auto fi = m->by_json.find(field);
        f = fi == m->by_json.end() ? nullptr : fi->second;
      }
      result[field] = Order(result[field], it.value(), f ? f->merge_key : "");
    }
    if (has_retain) {
      for (auto it = result.begin(); it != result.end();) {
        if (std::find(retain.begin(), retain.end(), it.key()) == retain.end()) {
          it = result.erase(it);
        } else {
          ++it;
        }
      }
    }
    return result;
  }

 private:
  json List(const FieldDef* f, const json& original, const json& patch, int depth) {
    if (!f || !f->merges() || !f->repeated) {
      // Replace, except that directives must not leak into the object.
      json r = json::array();
      for (const auto& e : patch) {
        if (e.is_object() && e.contains("$patch")) {
          continue;
        }
        r.push_back(e);
      }
      return r;
    }
    json result = original.is_array() ? original : json::array();
    if (f->merge_key.empty() || t_.IsScalar(f->type)) {
      // A set of primitives: add what is missing.
      for (const auto& e : patch) {
        if (e.is_object() && e.value("$patch", "") == "replace") {
          return json::array();
        }
        if (std::find(result.begin(), result.end(), e) == result.end()) {
          result.push_back(e);
        }
      }
      return result;
    }
    const std::string& key = f->merge_key;
    const MessageDef* elem = t_.Find(f->type);
    for (const auto& e : patch) {
      if (!e.is_object()) {
        throw PatchError("the elements of list field \"" + f->json_name + "\" must be objects");
      }
      std::string directive = e.value("$patch", "");
      if (directive == "replace") {
        json r = json::array();
        for (const auto& x : patch) {
          if (!(x.is_object() && x.contains("$patch"))) {
            r.push_back(x);
          }
        }
        return r;
      }
      if (!e.contains(key)) {
        throw PatchError("map: " + e.dump() + " does not contain declared merge key: " + key);
      }
      auto match = std::find_if(result.begin(), result.end(), [&](const json& x) {
        return x.is_object() && x.contains(key) && x[key] == e[key];
      });
      if (directive == "delete") {
        result.erase(std::remove_if(result.begin(), result.end(),
                                    [&](const json& x) {
                                      return x.is_object() && x.contains(key) && x[key] == e[key];
                                    }),
                     result.end());
        continue;
      }
      if (match != result.end()) {
        *match = Map(elem, *match, e, depth + 1);
      } else {
        json fresh = Map(elem, json::object(), e, depth + 1);
        result.push_back(fresh);
      }
    }
    return result;
  }

  static json Order(const json& list, const json& order, const std::string& key) {
    auto matches = [&](const json& item, const json& o) {
      if (key.empty() || !o.is_object()) {
        return item == o;
      }
      return item.is_object() && item.contains(key) && o.contains(key) && item[key] == o[key];
    };
    json sorted = json::array();
    std::vector<bool> used(list.size(), false);
    for (const auto& o : order) {
      for (size_t i = 0; i < list.size(); ++i) {
        if (!used[i] && matches(list[i], o)) {
          sorted.push_back(list[i]);
          used[i] = true;
          break;
        }
      }
    }
    for (size_t i = 0; i < list.size(); ++i) {
      if (!used[i]) {
        sorted.push_back(list[i]);
      }
    }
    return sorted;
  }

  const TypeTable& t_;
};

}  // namespace

json ApplyMergePatch(const json& original, const json& patch) {
  json r = original;
  r.merge_patch(patch);
  return r;
}

json ApplyJsonPatch(const json& original, const json& patch) {
  if (!patch.is_array()) {
    throw PatchError("a JSON patch must be a list of operations");
  }
  try {
    return original.patch(patch);
  } catch (const json::exception& e) {
    std::string what = e.what();
    auto p = what.find("] ");
    throw PatchError(p == std::string::npos ? what : what.substr(p + 2));
  }
}

json ApplyStrategicMergePatch(const TypeTable& table, const std::string& type, const json& original,
                              const json& patch) {
  if (!patch.is_object()) {
    throw PatchError("a strategic merge patch must be an object");
  }
  return Smp(table).Map(table.Find(type), original, patch, 0);
}

}  // namespace minik::api
