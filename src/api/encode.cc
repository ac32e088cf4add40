#include "api/encode.h"

#include "api/registration.h"

#include <algorithm>
#include <map>
#include <vector>

namespace minik::api {
namespace {

// Shapes the API server writes itself that the type table does not describe,
// in the order of their Go structs: key -> the shape or message of its value.
// Shape names start with '#'.
using Shape = std::vector<std::pair<std::string, std::string>>;

const std::map<std::string, Shape>& Shapes() {
  static const std::map<std::string, Shape> shapes = {
      {"#List",
       {{"kind", ""}, {"apiVersion", ""}, {"metadata", "meta.v1.ListMeta"}, {"items", ""}}},
      {"#Table",
       {{"kind", ""},
        {"apiVersion", ""},
        {"metadata", "meta.v1.ListMeta"},
        {"columnDefinitions", "#TableColumnDefinition"},
        {"rows", "#TableRow"}}},
      {"#TableColumnDefinition",
       {{"name", ""}, {"type", ""}, {"format", ""}, {"description", ""}, {"priority", ""}}},
      {"#TableRow", {{"cells", ""}, {"conditions", ""}, {"object", "#Object"}}},
      {"#PartialObjectMetadata",
       {{"kind", ""}, {"apiVersion", ""}, {"metadata", "meta.v1.ObjectMeta"}}},
      {"#WatchEvent", {{"type", ""}, {"object", "#Object"}}},
      {"#APIVersions",
       {{"kind", ""},
        {"apiVersion", ""},
        {"versions", ""},
        {"serverAddressByClientCIDRs", "#ServerAddressByClientCIDR"}}},
      {"#ServerAddressByClientCIDR", {{"clientCIDR", ""}, {"serverAddress", ""}}},
      {"#APIGroupList", {{"kind", ""}, {"apiVersion", ""}, {"groups", "#APIGroup"}}},
      {"#APIGroup",
       {{"kind", ""},
        {"apiVersion", ""},
        {"name", ""},
        {"versions", "#GroupVersionForDiscovery"},
        {"preferredVersion", "#GroupVersionForDiscovery"},
        {"serverAddressByClientCIDRs", "#ServerAddressByClientCIDR"}}},
      {"#GroupVersionForDiscovery", {{"groupVersion", ""}, {"version", ""}}},
      {"#APIResourceList",
       {{"kind", ""}, {"apiVersion", ""}, {"groupVersion", ""}, {"resources", "#APIResource"}}},
      {"#APIResource",
       {{"name", ""},
        {"singularName", ""},
        {"namespaced", ""},
        {"group", ""},
        {"version", ""},
        {"kind", ""},
        {"verbs", ""},
        {"shortNames", ""},
        {"categories", ""},
        {"storageVersionHash", ""}}},
      {"#APIGroupDiscoveryList",
       {{"kind", ""},
        {"apiVersion", ""},
        {"metadata", "meta.v1.ListMeta"},
        {"items", "#APIGroupDiscovery"}}},
      {"#APIGroupDiscovery",
       {{"metadata", "meta.v1.ObjectMeta"}, {"versions", "#APIVersionDiscovery"}}},
      {"#APIVersionDiscovery",
       {{"version", ""}, {"resources", "#APIResourceDiscovery"}, {"freshness", ""}}},
      {"#APIResourceDiscovery",
       {{"resource", ""},
        {"responseKind", "#GroupVersionKind"},
        {"scope", ""},
        {"singularResource", ""},
        {"verbs", ""},
        {"shortNames", ""},
        {"categories", ""},
        {"subresources", "#APISubresourceDiscovery"}}},
      {"#APISubresourceDiscovery",
       {{"subresource", ""},
        {"responseKind", "#GroupVersionKind"},
        {"acceptedTypes", "#GroupVersionKind"},
        {"verbs", ""}}},
      {"#GroupVersionKind", {{"group", ""}, {"version", ""}, {"kind", ""}}},
      {"#Version",
       {{"major", ""},
        {"minor", ""},
        {"emulationMajor", ""},
        {"emulationMinor", ""},
        {"minCompatibilityMajor", ""},
        {"minCompatibilityMinor", ""},
        {"gitVersion", ""},
        {"gitCommit", ""},
        {"gitTreeState", ""},
        {"buildDate", ""},
        {"goVersion", ""},
        {"compiler", ""},
        {"platform", ""}}},
  };
  return shapes;
}

// The kinds the API server writes whose shape is in Shapes().
const std::map<std::string, std::string>& ShapeKinds() {
  static const std::map<std::string, std::string> kinds = {
      {"Table", "#Table"},
      {"PartialObjectMetadata", "#PartialObjectMetadata"},
      {"APIVersions", "#APIVersions"},
      {"APIGroupList", "#APIGroupList"},
      {"APIGroup", "#APIGroup"},
      {"APIResourceList", "#APIResourceList"},
      {"APIGroupDiscoveryList", "#APIGroupDiscoveryList"},
  };
  return kinds;
}

void AppendScalar(const json& v, std::string& out) {
  if (v.is_string()) {
    AppendGoJsonString(v.get_ref<const std::string&>(), out);
  } else {
    out += v.dump();
  }
}

}  // namespace

Encoder::Encoder(const TypeTable& types, KindType kind_type)
    : types_(types), kind_type_(std::move(kind_type)) {}

std::string Encoder::Encode(const json& obj) const {
  std::string out;
  Append(obj, out);
  out += '\n';
  return out;
}

void Encoder::Append(const json& obj, std::string& out) const {
  AppendAs(obj, "#Object", out);
}

void Encoder::AppendAs(const json& obj, const std::string& type, std::string& out) const {
  Value(obj, type, out);
}

std::string Encoder::TopLevelType(const json& obj) const {
  auto k = obj.find("kind");
  auto a = obj.find("apiVersion");
  std::string kind = k != obj.end() && k->is_string() ? k->get<std::string>() : "";
  std::string av = a != obj.end() && a->is_string() ? a->get<std::string>() : "";
  if (kind.empty()) {
    if (obj.contains("major") && obj.contains("gitVersion")) {
      return "#Version";
    }
    return "";
  }
  if (auto s = ShapeKinds().find(kind); s != ShapeKinds().end()) {
    return s->second;
  }
  if (kind == "Status") {
    return "meta.v1.Status";  // served in every group-version, defined in meta
  }
  if (kind_type_) {
    std::string t = kind_type_(av, kind);
    if (!t.empty()) {
      return t;
    }
  }
  std::string group = av.find('/') == std::string::npos ? "" : av.substr(0, av.find('/'));
  std::string version = av.substr(av.find('/') == std::string::npos ? 0 : av.find('/') + 1);
  std::string t = Package(group) + "." + version + "." + kind;
  if (types_.Find(t)) {
    return t;
  }
  if (kind.size() > 4 && kind.compare(kind.size() - 4, 4, "List") == 0 && obj.contains("items")) {
    return "#List";
  }
  return "";
}

void Encoder::Ordered(const json& obj, const std::vector<std::string>& order,
                      const std::function<std::string(const std::string& key)>& type_of,
                      std::string& out) const {
  out += '{';
  bool first = true;
  auto emit = [&](const std::string& key, const json& v) {
    if (!first) {
      out += ',';
    }
    first = false;
    AppendGoJsonString(key, out);
    out += ':';
    Value(v, type_of(key), out);
  };
  for (const auto& key : order) {
    if (auto it = obj.find(key); it != obj.end()) {
      emit(key, *it);
    }
  }
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(order.begin(), order.end(), it.key()) == order.end()) {
      emit(it.key(), it.value());
    }
  }
  out += '}';
}

void Encoder::Value(const json& v, const std::string& type, std::string& out) const {
  if (v.is_array()) {
    out += '[';
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) {
        out += ',';
      }
      Value(v[i], type, out);
    }
    out += ']';
    return;
  }
  if (!v.is_object()) {
    AppendScalar(v, out);
    return;
  }
  // An embedded object (runtime.RawExtension) describes itself as a top-level one does.
  std::string t = type == "#Object" || type == "runtime.RawExtension" ? TopLevelType(v) : type;
  if (t.empty()) {
    Ordered(
        v, {}, [](const std::string&) { return std::string(); }, out);
    return;
  }
  if (t[0] == '#') {
    const Shape& shape = Shapes().at(t);
    std::vector<std::string> order;
    for (const auto& [k, _] : shape) {
      order.push_back(k);
    }
    std::string item_type;
    if (t == "#List") {
      std::string kind = v.value("kind", "");
      json item = {{"apiVersion", v.value("apiVersion", "")},
                   {"kind", kind.substr(0, kind.size() - 4)}};
      item_type = TopLevelType(item);
    }
    Ordered(
        v, order,
        [&](const std::string& key) {
          if (t == "#List" && key == "items") {
            return item_type.empty() ? std::string("#Object") : item_type;
          }
          for (const auto& [k, s] : shape) {
            if (k == key) {
              return s;
            }
          }
          return std::string();
        },
        out);
    return;
  }
  const MessageDef* m = types_.Find(t);
  if (!m) {
    Ordered(
        v, {}, [](const std::string&) { return std::string(); }, out);
    return;
  }
  Message(v, m, out);
}

void Encoder::Message(const json& obj, const MessageDef* m, std::string& out) const {
  out += '{';
  bool first = true;
  auto key = [&](const std::string& k) {
    if (!first) {
      out += ',';
    }
    first = false;
    AppendGoJsonString(k, out);
    out += ':';
  };
  // Top-level kinds embed TypeMeta first.
  for (const char* k : {"kind", "apiVersion"}) {
    if (!m->by_json.count(k)) {
      if (auto it = obj.find(k); it != obj.end()) {
        key(k);
        AppendScalar(*it, out);
      }
    }
  }
  Fields(obj, m, first, out);
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string& k = it.key();
    if (m->by_json.count(k) || k == "kind" || k == "apiVersion") {
      continue;
    }
    key(k);
    Value(it.value(), "", out);
  }
  out += '}';
}

void Encoder::Fields(const json& obj, const MessageDef* m, bool& first, std::string& out) const {
  for (const auto& f : m->fields) {
    if (f.is_inline()) {
      if (const MessageDef* in = types_.Find(f.type)) {
        Fields(obj, in, first, out);
      }
      continue;
    }
    if (auto it = obj.find(f.json_name); it != obj.end()) {
      if (!first) {
        out += ',';
      }
      first = false;
      AppendGoJsonString(f.json_name, out);
      out += ':';
      Field(*it, f, out);
    }
  }
}

void Encoder::Field(const json& v, const FieldDef& f, std::string& out) const {
  if (f.is_map && v.is_object()) {
    out += '{';
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!first) {
        out += ',';
      }
      first = false;
      AppendGoJsonString(it.key(), out);
      out += ':';
      Value(it.value(), f.type, out);
    }
    out += '}';
    return;
  }
  Value(v, f.type, out);
}

}  // namespace minik::api
