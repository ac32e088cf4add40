// The protobuf form of the OpenAPI v2 document, which kubectl asks for
// (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`): the
// messages of gnostic's `openapi.v2` package (OpenAPIv2.proto), written from
// the JSON document field by field. Only what minik's document holds is
// encoded: paths, operations, parameters, responses, definitions, security.
// Vendor extensions travel as `NamedAny{name, Any{yaml}}`, the value as
// JSON text (which is YAML).

#include <string>

#include "apiserver/apiserver.h"

namespace minik::apiserver {
namespace {

class Writer {
 public:
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_ += static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    out_ += static_cast<char>(v);
  }
  void Tag(int field, int wire) { Varint((static_cast<uint64_t>(field) << 3) | wire); }
  void Bytes(int field, const std::string& s) {
    Tag(field, 2);
    Varint(s.size());
    out_ += s;
  }
  // A string field, left out when empty (proto3).
  void String(int field, const std::string& s) {
    if (!s.empty()) {
      Bytes(field, s);
    }
  }
  void Bool(int field, bool b) {
    if (b) {
      Tag(field, 0);
      Varint(1);
    }
  }
  void Strings(int field, const json& list) {
    for (const auto& s : list.is_array() ? list : json::array()) {
      if (s.is_string()) {
        Bytes(field, s.get<std::string>());
      }
    }
  }
  // A map entry (`Named*` message): name = 1, value = 2, as field `field`.
  void Named(int field, const std::string& name, const std::string& value) {
    Writer entry;
    entry.String(1, name);
    entry.Bytes(2, value);
    Bytes(field, entry.str());
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

std::string Str(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

bool Flag(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_boolean() && it->get<bool>();
}

// vendor_extension entries: NamedAny{name=1, value=2 Any{yaml=2}}.
void Extensions(Writer& w, int field, const json& o) {
  for (auto it = o.begin(); it != o.end(); ++it) {
    if (it.key().rfind("x-", 0) != 0) {
      continue;
    }
    Writer any;
    any.String(2, it.value().dump() + "\n");
    w.Named(field, it.key(), any.str());
  }
}

std::string Schema(const json& s);

// NamedSchema{name=1, value=2}, for definitions and properties.
std::string NamedSchemas(const json& m) {
  Writer w;
  for (auto it = m.begin(); it != m.end(); ++it) {
    w.Named(1, it.key(), Schema(it.value()));
  }
  return w.str();
}

std::string Schema(const json& s) {
  Writer w;
  w.String(1, Str(s, "$ref"));
  w.String(2, Str(s, "format"));
  w.String(4, Str(s, "description"));
  w.Strings(19, s.value("required", json::array()));
  if (auto ap = s.find("additionalProperties"); ap != s.end()) {
    Writer item;
    if (ap->is_boolean()) {
      item.Tag(2, 0);
      item.Varint(ap->get<bool>() ? 1 : 0);
    } else {
      item.Bytes(1, Schema(*ap));
    }
    w.Bytes(21, item.str());
  }
  if (auto t = s.find("type"); t != s.end() && t->is_string()) {
    Writer type;
    type.Bytes(1, t->get<std::string>());
    w.Bytes(22, type.str());
  }
  if (auto items = s.find("items"); items != s.end()) {
    Writer it;
    it.Bytes(1, Schema(*items));
    w.Bytes(23, it.str());
  }
  if (auto props = s.find("properties"); props != s.end() && props->is_object()) {
    w.Bytes(25, NamedSchemas(*props));
  }
  Extensions(w, 31, s);
  return w.str();
}

// ParametersItem{parameter=1 Parameter{body_parameter=1 | non_body_parameter=2}}.
std::string ParametersItem(const json& p) {
  Writer param;
  std::string in = Str(p, "in");
  if (in == "body") {
    Writer body;
    body.String(1, Str(p, "description"));
    body.String(2, Str(p, "name"));
    body.String(3, in);
    body.Bool(4, Flag(p, "required"));
    if (p.contains("schema")) {
      body.Bytes(5, Schema(p["schema"]));
    }
    param.Bytes(1, body.str());
  } else {
    // Query and path sub-schemas number their fields differently (query
    // has allowEmptyValue at 5).
    bool query = in == "query";
    Writer sub;
    sub.Bool(1, Flag(p, "required"));
    sub.String(2, in);
    sub.String(3, Str(p, "description"));
    sub.String(4, Str(p, "name"));
    sub.String(query ? 6 : 5, Str(p, "type"));
    sub.Bool(query ? 20 : 19, Flag(p, "uniqueItems"));
    Writer non_body;
    non_body.Bytes(query ? 3 : (in == "header" ? 1 : 4), sub.str());
    param.Bytes(2, non_body.str());
  }
  Writer item;
  item.Bytes(1, param.str());
  return item.str();
}

std::string Operation(const json& op) {
  Writer w;
  w.Strings(1, op.value("tags", json::array()));
  w.String(3, Str(op, "description"));
  w.String(5, Str(op, "operationId"));
  w.Strings(6, op.value("produces", json::array()));
  w.Strings(7, op.value("consumes", json::array()));
  for (const auto& p : op.value("parameters", json::array())) {
    w.Bytes(8, ParametersItem(p));
  }
  Writer responses;
  const json all_responses = op.value("responses", json::object());
  for (const auto& [code, r] : all_responses.items()) {
    Writer response;
    response.String(1, Str(r, "description"));
    if (r.contains("schema")) {
      Writer item;
      item.Bytes(1, Schema(r["schema"]));
      response.Bytes(2, item.str());
    }
    Writer value;
    value.Bytes(1, response.str());
    responses.Named(1, code, value.str());
  }
  w.Bytes(9, responses.str());
  w.Strings(10, op.value("schemes", json::array()));
  Extensions(w, 13, op);
  return w.str();
}

std::string PathItem(const json& item) {
  Writer w;
  static const std::pair<const char*, int> kOps[] = {{"get", 2},    {"put", 3},     {"post", 4},
                                                     {"delete", 5}, {"options", 6}, {"head", 7},
                                                     {"patch", 8}};
  for (const auto& [name, field] : kOps) {
    if (auto it = item.find(name); it != item.end()) {
      w.Bytes(field, Operation(*it));
    }
  }
  for (const auto& p : item.value("parameters", json::array())) {
    w.Bytes(9, ParametersItem(p));
  }
  Extensions(w, 10, item);
  return w.str();
}

}  // namespace

std::string OpenApiV2Protobuf(const json& doc) {
  Writer w;
  w.String(1, Str(doc, "swagger"));
  Writer info;
  info.String(1, GetString(doc, "info.title"));
  info.String(2, GetString(doc, "info.version"));
  w.Bytes(2, info.str());
  w.Strings(6, doc.value("consumes", json::array()));
  w.Strings(7, doc.value("produces", json::array()));
  Writer paths;
  const json all_paths = doc.value("paths", json::object());
  for (const auto& [path, item] : all_paths.items()) {
    paths.Named(2, path, PathItem(item));
  }
  w.Bytes(8, paths.str());
  w.Bytes(9, NamedSchemas(doc.value("definitions", json::object())));
  for (const auto& req : doc.value("security", json::array())) {
    Writer sr;
    for (const auto& [name, scopes] : req.items()) {
      Writer arr;
      arr.Strings(1, scopes);
      sr.Named(1, name, arr.str());
    }
    w.Bytes(12, sr.str());
  }
  Writer defs;
  const json security_definitions = doc.value("securityDefinitions", json::object());
  for (const auto& [name, d] : security_definitions.items()) {
    Writer key;
    key.String(1, Str(d, "type"));
    key.String(2, Str(d, "name"));
    key.String(3, Str(d, "in"));
    key.String(4, Str(d, "description"));
    Writer item;
    item.Bytes(2, key.str());
    defs.Named(1, name, item.str());
  }
  w.Bytes(13, defs.str());
  return w.str();
}

}  // namespace minik::apiserver
