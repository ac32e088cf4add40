#pragma once
// The table of API types (types.yaml, embedded at build time): for every
// message, its fields with protobuf number, JSON name, type and the patch
// metadata of its Go struct tags. One table drives protobuf decoding, strict
// field validation (unknown and mistyped fields) and strategic merge patch.

#include <map>
#include <string>
#include <vector>

#include "common/json.h"

namespace minik::api {

struct FieldDef {
  int number = 0;
  std::string json_name;  // "inline" for embedded structs
  std::string type;       // scalar name, message name, or map value type when is_map
  bool repeated = false;
  bool omitempty = false;
  bool ptr = false;
  bool is_map = false;
  std::string merge_key;       // patchMergeKey
  std::string patch_strategy;  // "merge", "replace", "retainKeys", "merge+retainKeys"
  // The +listType=map keys (server-side apply's associative lists), in order.
  std::vector<std::string> list_map_keys;
  bool is_inline() const { return json_name == "inline"; }
  bool merges() const { return patch_strategy.find("merge") != std::string::npos; }
  bool retains_keys() const { return patch_strategy.find("retainKeys") != std::string::npos; }
};

struct MessageDef {
  std::string name;
  std::vector<FieldDef> fields;
  std::map<int, const FieldDef*> by_number;
  // By JSON name, with the fields of inline members lifted into this map.
  std::map<std::string, const FieldDef*> by_json;
};

class TypeTable {
 public:
  static const TypeTable& Builtin();
  // Parses a table in the types.yaml format; throws minik::Error naming the entry.
  static TypeTable Parse(std::string_view yaml);

  const MessageDef* Find(const std::string& name) const;
  bool IsScalar(const std::string& type) const;
  const std::map<std::string, MessageDef>& messages() const { return messages_; }

 private:
  void Index();
  std::map<std::string, MessageDef> messages_;
};

// What a structural check found.
struct FieldProblems {
  std::vector<std::string> unknown;  // paths of fields the type does not have
  std::vector<std::string> errors;   // "spec.replicas: expected integer, got string"
};

// Checks `obj` against message `type`: records unknown fields (and removes
// them, as Kubernetes drops fields it does not know) and values of the wrong
// JSON type. Top-level apiVersion and kind are always allowed.
FieldProblems CheckFields(const TypeTable& table, const std::string& type, json& obj);

}  // namespace minik::api
