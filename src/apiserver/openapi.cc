// OpenAPI v3 documents (one per group-version) and the v2 document (one for
// all) derived from the registry and the type table: a PATCH
// operation per resource carrying its group-version-kind and the
// `fieldValidation` parameter (so kubectl leaves validation to the server),
// and component schemas for `kubectl explain`.

#include <functional>
#include <set>

#include <openssl/sha.h>

#include "apiserver/apiserver.h"

namespace minik::apiserver {
namespace {

std::string SchemaName(const std::string& message) {
  auto starts = [&](const char* p) { return message.rfind(p, 0) == 0; };
  if (starts("meta.v1.")) {
    return "io.k8s.apimachinery.pkg.apis.meta.v1." + message.substr(8);
  }
  if (message == "resource.Quantity") {
    return "io.k8s.apimachinery.pkg.api.resource.Quantity";
  }
  if (message == "intstr.IntOrString") {
    return "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
  }
  if (starts("runtime.")) {
    return "io.k8s.apimachinery.pkg.runtime." + message.substr(8);
  }
  return "io.k8s.api." + message;
}

std::string GroupPath(const std::string& group, const std::string& version) {
  return group.empty() ? "api/" + version : "apis/" + group + "/" + version;
}

json Ref(const std::string& message) {
  return {{"$ref", "#/components/schemas/" + SchemaName(message)}};
}

json ScalarSchema(const std::string& type) {
  if (type == "string") {
    return {{"type", "string"}};
  }
  if (type == "bytes") {
    return {{"type", "string"}, {"format", "byte"}};
  }
  if (type == "int32" || type == "int64") {
    return {{"type", "integer"}, {"format", type}};
  }
  if (type == "bool") {
    return {{"type", "boolean"}};
  }
  if (type == "double") {
    return {{"type", "number"}, {"format", "double"}};
  }
  return nullptr;
}

// The schema of a top-level kind has apiVersion and kind (TypeMeta).
void AddTypeMeta(json& s) {
  s["properties"]["apiVersion"] = {
      {"type", "string"},
      {"description",
       "APIVersion defines the versioned schema of this representation of an object."}};
  s["properties"]["kind"] = {
      {"type", "string"},
      {"description",
       "Kind is a string value representing the REST resource this object represents."}};
}

json PatchSchema() {
  return {{"type", "object"},
          {"description",
           "Patch is provided to give a concrete name and type to the Kubernetes PATCH request "
           "body."}};
}

// The schemas of the messages with a JSON form of their own (null for others).
json SpecialSchema(const std::string& name) {
  if (name == "resource.Quantity") {
    return {{"type", "string"},
            {"description", "Quantity is a fixed-point representation of a number."}};
  }
  if (name == "intstr.IntOrString") {
    return {{"type", "string"}, {"format", "int-or-string"}};
  }
  if (name == "meta.v1.Time" || name == "meta.v1.MicroTime") {
    return {{"type", "string"}, {"format", "date-time"}};
  }
  if (name == "meta.v1.Duration") {
    return {{"type", "string"}};
  }
  if (name == "runtime.RawExtension" || name == "meta.v1.FieldsV1") {
    return {{"type", "object"}};
  }
  return nullptr;
}

json MessageSchema(const api::TypeTable& types, const api::MessageDef& m) {
  if (json special = SpecialSchema(m.name); !special.is_null()) {
    return special;
  }
  json props = json::object();
  for (const auto& [name, f] : m.by_json) {
    json item = ScalarSchema(f->type);
    if (item.is_null()) {
      item = {{"allOf", {Ref(f->type)}}};
    }
    json p;
    if (f->is_map) {
      p = {{"type", "object"}, {"additionalProperties", item}};
    } else if (f->repeated && f->type != "bytes") {
      p = {{"type", "array"}, {"items", item}};
    } else {
      p = item;
    }
    if (!f->merge_key.empty()) {
      p["x-kubernetes-patch-merge-key"] = f->merge_key;
    }
    if (!f->patch_strategy.empty()) {
      std::string s = f->patch_strategy;
      std::replace(s.begin(), s.end(), '+', ',');
      p["x-kubernetes-patch-strategy"] = s;
    }
    props[name] = p;
  }
  return {{"type", "object"}, {"properties", props}};
}

void Reachable(const api::TypeTable& types, const std::string& message,
               std::set<std::string>& out) {
  std::vector<std::string> todo{message};
  while (!todo.empty()) {
    std::string m = todo.back();
    todo.pop_back();
    if (!out.insert(m).second) {
      continue;
    }
    const api::MessageDef* def = types.Find(m);
    if (!def) {
      continue;
    }
    for (const auto& f : def->fields) {
      if (types.Find(f.type)) {
        todo.push_back(f.type);
      }
    }
  }
}

json Param(const std::string& name, const std::string& in, const std::string& description,
           bool required = false) {
  json p = {{"name", name},
            {"in", in},
            {"description", description},
            {"schema", {{"type", "string"}, {"uniqueItems", true}}}};
  if (required) {
    p["required"] = true;
  }
  return p;
}

json Operation(const api::ResourceInfo& r, const std::string& action, const std::string& op_id,
               const json& response_schema, bool write) {
  json op = {{"operationId", op_id},
             {"tags", {r.group.empty() ? "core_" + r.version : r.group + "_" + r.version}},
             {"responses",
              {{"200",
                {{"description", "OK"},
                 {"content", {{"application/json", {{"schema", response_schema}}}}}}},
               {"401", {{"description", "Unauthorized"}}}}},
             {"x-kubernetes-action", action},
             {"x-kubernetes-group-version-kind",
              {{"group", r.group}, {"version", r.version}, {"kind", r.kind}}}};
  json params = json::array();
  if (write) {
    params.push_back(Param("dryRun", "query",
                           "When present, indicates that modifications should not be persisted."));
    params.push_back(Param("fieldManager", "query",
                           "fieldManager is a name associated with the actor or entity that is "
                           "making these changes."));
    params.push_back(Param("fieldValidation", "query",
                           "fieldValidation instructs the server on how to handle objects in the "
                           "request containing unknown or duplicate fields. Valid values are: "
                           "Ignore, Warn, Strict."));
  }
  if (action == "patch") {
    params.push_back(Param("force", "query", "Force is going to \"force\" Apply requests."));
    json schema = {{"$ref", "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}};
    // Strategic merge patch is accepted but not advertised, so kubectl computes
    // patches from the types compiled into it rather than from this document.
    op["requestBody"] = {{"content",
                          {{"application/apply-patch+yaml", {{"schema", schema}}},
                           {"application/json-patch+json", {{"schema", schema}}},
                           {"application/merge-patch+json", {{"schema", schema}}}}},
                         {"required", true}};
  } else if (action == "post" || action == "put") {
    op["requestBody"] = {{"content", {{"*/*", {{"schema", response_schema}}}}}, {"required", true}};
  }
  if (!params.empty()) {
    op["parameters"] = params;
  }
  return op;
}

std::string OpName(const api::ResourceInfo& r, const std::string& verb, bool namespaced) {
  std::string g = r.group.empty() ? "Core" : r.group.substr(0, r.group.find('.'));
  g[0] = static_cast<char>(std::toupper(g[0]));
  std::string v = r.version;
  v[0] = static_cast<char>(std::toupper(v[0]));
  return verb + g + v + (namespaced ? "Namespaced" : "") + r.kind;
}

// ---- OpenAPI v2 (Swagger 2.0): one document for every group-version ----

std::string DefRef(const std::string& message) {
  return "#/definitions/" + SchemaName(message);
}

json V2ValueSchema(const std::string& type) {
  json s = ScalarSchema(type);
  return s.is_null() ? json{{"$ref", DefRef(type)}} : s;
}

// A message as a Swagger 2.0 definition: `$ref`s stand alone (v2 allows
// nothing beside them), lists and maps carry their patch extensions.
json V2MessageSchema(const api::MessageDef& m) {
  if (json special = SpecialSchema(m.name); !special.is_null()) {
    return special;
  }
  json props = json::object();
  for (const auto& [name, f] : m.by_json) {
    json item = V2ValueSchema(f->type);
    json p;
    if (f->is_map) {
      p = {{"type", "object"}, {"additionalProperties", item}};
    } else if (f->repeated && f->type != "bytes") {
      p = {{"type", "array"}, {"items", item}};
      if (!f->merge_key.empty()) {
        p["x-kubernetes-patch-merge-key"] = f->merge_key;
      }
      if (!f->patch_strategy.empty()) {
        std::string st = f->patch_strategy;
        std::replace(st.begin(), st.end(), '+', ',');
        p["x-kubernetes-patch-strategy"] = st;
      }
      if (!f->list_map_keys.empty()) {
        p["x-kubernetes-list-type"] = "map";
        p["x-kubernetes-list-map-keys"] = f->list_map_keys;
      }
    } else {
      p = item;
    }
    props[name] = p;
  }
  return {{"type", "object"}, {"properties", props}};
}

json V2Param(const std::string& name, const std::string& in, const std::string& description,
             bool required = false) {
  json p = {{"name", name},
            {"in", in},
            {"description", description},
            {"type", "string"},
            {"uniqueItems", true}};
  if (required) {
    p["required"] = true;
  }
  return p;
}

json V2Operation(const api::ResourceInfo& r, const std::string& action, const std::string& op_id,
                 const std::string& response_ref, bool body) {
  json op = {
      {"operationId", op_id},
      {"tags", {r.group.empty() ? "core_" + r.version : r.group + "_" + r.version}},
      {"description", action + " " + r.kind},
      {"consumes", {"*/*"}},
      {"produces", {"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}},
      {"schemes", {"https"}},
      {"responses",
       {{"200", {{"description", "OK"}, {"schema", {{"$ref", response_ref}}}}},
        {"401", {{"description", "Unauthorized"}}}}},
      {"x-kubernetes-action", action},
      {"x-kubernetes-group-version-kind",
       {{"group", r.group}, {"version", r.version}, {"kind", r.kind}}}};
  json params = json::array();
  if (body) {
    params.push_back(
        {{"name", "body"},
         {"in", "body"},
         {"required", true},
         {"schema",
          {{"$ref", action == "patch" ? "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
                                      : response_ref}}}});
    for (const auto& [n, d] : std::vector<std::pair<std::string, std::string>>{
             {"dryRun", "When present, indicates that modifications should not be persisted."},
             {"fieldManager",
              "fieldManager is a name associated with the actor or entity that is making these "
              "changes."},
             {"fieldValidation",
              "fieldValidation instructs the server on how to handle objects in the request "
              "containing unknown or duplicate fields. Valid values are: Ignore, Warn, "
              "Strict."}}) {
      params.push_back(V2Param(n, "query", d));
    }
  }
  if (action == "patch") {
    params.push_back(V2Param("force", "query", "Force is going to \"force\" Apply requests."));
    // As in v3, strategic merge patch is served but not advertised.
    op["consumes"] = {"application/json-patch+json", "application/merge-patch+json",
                      "application/apply-patch+yaml"};
  }
  if (!params.empty()) {
    op["parameters"] = params;
  }
  return op;
}

}  // namespace

json OpenApiV2(const api::ResourceRegistry& reg, const api::TypeTable& types) {
  json paths = json::object();
  std::set<std::string> messages;
  for (const auto& r : reg.all()) {
    Reachable(types, r.type_name, messages);
    std::string ref = DefRef(r.type_name);
    std::string base = "/" + GroupPath(r.group, r.version);
    json name_param = V2Param("name", "path", "name of the " + r.kind, true);
    json ns_param = V2Param("namespace", "path",
                            "object name and auth scope, such as for teams and projects", true);
    std::string coll =
        r.namespaced ? base + "/namespaces/{namespace}/" + r.plural : base + "/" + r.plural;
    json collection = json::object();
    if (r.has_verb("list")) {
      collection["get"] = V2Operation(r, "list", OpName(r, "list", r.namespaced), ref, false);
    }
    if (r.has_verb("create")) {
      collection["post"] = V2Operation(r, "post", OpName(r, "create", r.namespaced), ref, true);
    }
    if (r.has_verb("deletecollection")) {
      collection["delete"] = V2Operation(r, "deletecollection",
                                         OpName(r, "deleteCollection", r.namespaced), ref, false);
    }
    json item = json::object();
    if (r.has_verb("get")) {
      item["get"] = V2Operation(r, "get", OpName(r, "read", r.namespaced), ref, false);
    }
    if (r.has_verb("update")) {
      item["put"] = V2Operation(r, "put", OpName(r, "replace", r.namespaced), ref, true);
    }
    if (r.has_verb("patch")) {
      item["patch"] = V2Operation(r, "patch", OpName(r, "patch", r.namespaced), ref, true);
    }
    if (r.has_verb("delete")) {
      item["delete"] = V2Operation(r, "delete", OpName(r, "delete", r.namespaced), ref, false);
    }
    if (r.namespaced) {
      collection["parameters"] = json::array({ns_param});
    }
    if (collection.size() > (r.namespaced ? 1u : 0u)) {
      paths[coll] = collection;
    }
    if (!item.empty()) {
      item["parameters"] =
          r.namespaced ? json::array({name_param, ns_param}) : json::array({name_param});
      paths[coll + "/{name}"] = item;
    }
  }
  json definitions = json::object();
  for (const auto& m : messages) {
    const api::MessageDef* def = types.Find(m);
    if (!def) {
      continue;
    }
    json s = V2MessageSchema(*def);
    json gvks = json::array();
    for (const auto& r : reg.all()) {
      if (r.type_name == m) {
        gvks.push_back({{"group", r.group}, {"version", r.version}, {"kind", r.kind}});
      }
    }
    if (!gvks.empty()) {
      AddTypeMeta(s);
      s["x-kubernetes-group-version-kind"] = gvks;
    }
    definitions[SchemaName(m)] = s;
  }
  definitions["io.k8s.apimachinery.pkg.apis.meta.v1.Patch"] = PatchSchema();
  return {{"swagger", "2.0"},
          {"info", {{"title", "Kubernetes"}, {"version", "v1.32.0"}}},
          {"paths", paths},
          {"definitions", definitions},
          {"securityDefinitions",
           {{"BearerToken",
             {{"type", "apiKey"},
              {"name", "authorization"},
              {"in", "header"},
              {"description", "Bearer Token authentication"}}}}},
          {"security", json::array({{{"BearerToken", json::array()}}})}};
}

json OpenApiIndex(const api::ResourceRegistry& reg) {
  json paths = json::object();
  std::set<std::string> seen;
  for (const auto& r : reg.all()) {
    std::string p = GroupPath(r.group, r.version);
    if (!seen.insert(p).second) {
      continue;
    }
    // The hash changes when the document would, so clients may cache by URL.
    std::string h;
    for (const auto& x : reg.all()) {
      if (GroupPath(x.group, x.version) == p) {
        h += x.plural + ":" + x.kind + ";";
      }
    }
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(h.data()), h.size(), digest);
    std::string hex;
    for (int i = 0; i < 16; ++i) {
      char buf[3];
      snprintf(buf, sizeof(buf), "%02X", digest[i]);
      hex += buf;
    }
    paths[p] = {{"serverRelativeURL", "/openapi/v3/" + p + "?hash=" + hex}};
  }
  return {{"paths", paths}};
}

json OpenApiDocument(const api::ResourceRegistry& reg, const api::TypeTable& types,
                     const std::string& gv_path) {
  json paths = json::object();
  std::set<std::string> messages;
  bool found = false;
  for (const auto& r : reg.all()) {
    if (GroupPath(r.group, r.version) != gv_path) {
      continue;
    }
    found = true;
    Reachable(types, r.type_name, messages);
    json obj = Ref(r.type_name);
    json list_schema = {{"type", "object"}};
    std::string base = "/" + gv_path;
    json name_param = Param("name", "path", "name of the " + r.kind, true);
    json ns_param = Param("namespace", "path",
                          "object name and auth scope, such as for teams and projects", true);
    std::string coll =
        r.namespaced ? base + "/namespaces/{namespace}/" + r.plural : base + "/" + r.plural;
    json collection = {
        {"get", Operation(r, "list", OpName(r, "list", r.namespaced), list_schema, false)},
        {"post", Operation(r, "post", OpName(r, "create", r.namespaced), obj, true)},
        {"delete", Operation(r, "deletecollection", OpName(r, "deleteCollection", r.namespaced),
                             obj, false)}};
    json item = {{"get", Operation(r, "get", OpName(r, "read", r.namespaced), obj, false)},
                 {"put", Operation(r, "put", OpName(r, "replace", r.namespaced), obj, true)},
                 {"patch", Operation(r, "patch", OpName(r, "patch", r.namespaced), obj, true)},
                 {"delete", Operation(r, "delete", OpName(r, "delete", r.namespaced), obj, false)}};
    json item_params = json::array({name_param});
    if (r.namespaced) {
      collection["parameters"] = json::array({ns_param});
      item_params.push_back(ns_param);
      paths[base + "/" + r.plural] = {
          {"get", Operation(r, "list", OpName(r, "list", false) + "ForAllNamespaces", list_schema,
                            false)}};
    }
    item["parameters"] = item_params;
    paths[coll] = collection;
    paths[coll + "/{name}"] = item;
    for (const auto& sub : r.subresources) {
      if (sub != "status") {
        continue;
      }
      json s = {
          {"get", Operation(r, "get", OpName(r, "read", r.namespaced) + "Status", obj, false)},
          {"put", Operation(r, "put", OpName(r, "replace", r.namespaced) + "Status", obj, true)},
          {"patch", Operation(r, "patch", OpName(r, "patch", r.namespaced) + "Status", obj, true)},
          {"parameters", item_params}};
      paths[coll + "/{name}/status"] = s;
    }
  }
  if (!found) {
    return nullptr;
  }
  json schemas = json::object();
  for (const auto& m : messages) {
    const api::MessageDef* def = types.Find(m);
    if (!def) {
      continue;
    }
    json s = MessageSchema(types, *def);
    for (const auto& r : reg.all()) {
      if (r.type_name == m) {
        AddTypeMeta(s);
        s["x-kubernetes-group-version-kind"] = {
            {{"group", r.group}, {"version", r.version}, {"kind", r.kind}}};
      }
    }
    schemas[SchemaName(m)] = s;
  }
  schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Patch"] = PatchSchema();
  return {{"openapi", "3.0.0"},
          {"info", {{"title", "Kubernetes"}, {"version", "v1.32.0"}}},
          {"paths", paths},
          {"components", {{"schemas", schemas}}}};
}

}  // namespace minik::apiserver
