#include "api/types.h"

#include <cmath>
#include <functional>
#include <set>

#include "common/error.h"

namespace minik::embedded {
const std::map<std::string, std::string_view>& api_types();
}

namespace minik::api {
namespace {

const std::set<std::string>& Scalars() {
  static const std::set<std::string> s = {"string", "bytes", "int32", "int64", "bool", "double"};
  return s;
}

// Messages that have a JSON form of their own rather than an object of fields.
const std::set<std::string>& SpecialMessages() {
  static const std::set<std::string> s = {
      "resource.Quantity", "intstr.IntOrString",   "meta.v1.Time",    "meta.v1.MicroTime",
      "meta.v1.Duration",  "runtime.RawExtension", "meta.v1.FieldsV1"};
  return s;
}

std::string TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::string:
      return "string";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer";
    case json::value_t::number_float:
      return "number";
    case json::value_t::object:
      return "object";
    case json::value_t::array:
      return "array";
    default:
      return "null";
  }
}

class Checker {
 public:
  Checker(const TypeTable& t, FieldProblems& p) : table_(t), p_(p) {}

  void Message(const std::string& type, json& obj, const std::string& path, bool top) {
    if (obj.is_null()) {
      return;
    }
    const MessageDef* m = table_.Find(type);
    if (!m) {
      return;  // not described: accept as it is
    }
    if (!obj.is_object()) {
      Mismatch(path, "object", obj);
      return;
    }
    for (auto it = obj.begin(); it != obj.end();) {
      const std::string& k = it.key();
      auto f = m->by_json.find(k);
      if (f == m->by_json.end()) {
        if (top && (k == "apiVersion" || k == "kind")) {
          ++it;
          continue;
        }
        p_.unknown.push_back(Join(path, k));
        it = obj.erase(it);
        continue;
      }
      Field(*f->second, it.value(), Join(path, k));
      ++it;
    }
  }

 private:
  static std::string Join(const std::string& path, const std::string& k) {
    return path.empty() ? k : path + "." + k;
  }

  void Mismatch(const std::string& path, const std::string& want, const json& got) {
    p_.errors.push_back(path + ": expected " + want + ", got " + TypeName(got));
  }

  void Field(const FieldDef& f, json& v, const std::string& path) {
    if (v.is_null()) {
      return;
    }
    if (f.is_map) {
      if (!v.is_object()) {
        Mismatch(path, "object", v);
        return;
      }
      for (auto it = v.begin(); it != v.end(); ++it) {
        Value(f.type, it.value(), path + "[" + it.key() + "]");
      }
      return;
    }
    if (f.repeated && f.type != "bytes") {
      if (!v.is_array()) {
        Mismatch(path, "array", v);
        return;
      }
      for (size_t i = 0; i < v.size(); ++i) {
        Value(f.type, v[i], path + "[" + std::to_string(i) + "]");
      }
      return;
    }
    Value(f.type, v, path);
  }

  void Value(const std::string& type, json& v, const std::string& path) {
    if (v.is_null()) {
      return;
    }
    if (type == "string" || type == "bytes") {
      if (!v.is_string()) {
        Mismatch(path, "string", v);
      }
    } else if (type == "int32" || type == "int64") {
      if (v.is_number_float()) {
        double d = v.get<double>();
        if (std::floor(d) == d && std::fabs(d) < 9.2e18) {
          v = static_cast<int64_t>(d);
          return;
        }
      }
      if (!v.is_number_integer()) {
        Mismatch(path, "integer", v);
      } else if (type == "int32" &&
                 (v.get<int64_t>() > INT32_MAX || v.get<int64_t>() < INT32_MIN)) {
        p_.errors.push_back(path + ": value " + v.dump() + " does not fit a 32-bit integer");
      }
    } else if (type == "bool") {
      if (!v.is_boolean()) {
        Mismatch(path, "boolean", v);
      }
    } else if (type == "double") {
      if (!v.is_number()) {
        Mismatch(path, "number", v);
      }
    } else if (type == "resource.Quantity") {
      if (!v.is_string() && !v.is_number()) {
        Mismatch(path, "quantity (string or number)", v);
      }
    } else if (type == "intstr.IntOrString") {
      if (!v.is_string() && !v.is_number_integer()) {
        Mismatch(path, "integer or string", v);
      }
    } else if (type == "meta.v1.Time" || type == "meta.v1.MicroTime" ||
               type == "meta.v1.Duration") {
      if (!v.is_string()) {
        Mismatch(path, "string", v);
      }
    } else if (type == "runtime.RawExtension") {
      // Any embedded object.
    } else if (type == "meta.v1.FieldsV1") {
      if (!v.is_object()) {
        Mismatch(path, "object", v);
      }
    } else {
      Message(type, v, path, false);
    }
  }

  const TypeTable& table_;
  FieldProblems& p_;
};

}  // namespace

const TypeTable& TypeTable::Builtin() {
  static const TypeTable t = [] {
    const auto& files = embedded::api_types();
    auto it = files.find("src/api/types.yaml");
    if (it == files.end()) {
      throw Error("src/api/types.yaml is not embedded in this binary");
    }
    return Parse(it->second);
  }();
  return t;
}

TypeTable TypeTable::Parse(std::string_view yaml) {
  TypeTable t;
  DecodeOptions opts;
  opts.max_nodes = 10'000'000;
  json doc = ParseYaml(yaml, opts).value;
  for (auto& [name, fields] : doc.items()) {
    MessageDef m;
    m.name = name;
    for (const auto& entry : fields) {
      if (!entry.is_array() || entry.size() < 3 || !entry[0].is_number_integer()) {
        throw Error("types.yaml: malformed field " + entry.dump() + " in " + name);
      }
      FieldDef f;
      f.number = entry[0].get<int>();
      f.json_name = entry[1].get<std::string>();
      std::string type = entry[2].get<std::string>();
      if (type.rfind("map<string,", 0) == 0 && type.back() == '>') {
        f.is_map = true;
        type = type.substr(11, type.size() - 12);
      }
      f.type = type;
      for (size_t i = 3; i < entry.size(); ++i) {
        std::string flag = entry[i].get<std::string>();
        if (flag == "repeated") {
          f.repeated = true;
        } else if (flag == "omitempty") {
          f.omitempty = true;
        } else if (flag == "ptr") {
          f.ptr = true;
        } else if (flag.rfind("mergeKey=", 0) == 0) {
          f.merge_key = flag.substr(9);
        } else if (flag.rfind("patch=", 0) == 0) {
          f.patch_strategy = flag.substr(6);
        } else if (flag.rfind("listMapKeys=", 0) == 0) {
          std::string keys = flag.substr(12);
          for (size_t pos = 0; pos <= keys.size();) {
            size_t plus = keys.find('+', pos);
            f.list_map_keys.push_back(
                keys.substr(pos, plus == std::string::npos ? std::string::npos : plus - pos));
            if (plus == std::string::npos) {
              break;
            }
            pos = plus + 1;
          }
        }
      }
      m.fields.push_back(std::move(f));
    }
    t.messages_.emplace(name, std::move(m));
  }
  t.Index();
  return t;
}

void TypeTable::Index() {
  for (auto& [name, m] : messages_) {
    for (const auto& f : m.fields) {
      m.by_number[f.number] = &f;
    }
  }
  // Lift inline members' JSON names into their parents (inline may nest).
  std::function<void(MessageDef&, const MessageDef&, int)> lift =
      [&](MessageDef& into, const MessageDef& from, int depth) {
        for (const auto& f : from.fields) {
          if (f.is_inline()) {
            auto it = messages_.find(f.type);
            if (it != messages_.end() && depth < 8) {
              lift(into, it->second, depth + 1);
            }
          } else {
            into.by_json.emplace(f.json_name, &f);
          }
        }
      };
  for (auto& [name, m] : messages_) {
    lift(m, m, 0);
  }
}

const MessageDef* TypeTable::Find(const std::string& name) const {
  auto it = messages_.find(name);
  return it == messages_.end() ? nullptr : &it->second;
}

bool TypeTable::IsScalar(const std::string& type) const {
  return Scalars().count(type) > 0 || SpecialMessages().count(type) > 0;
}

FieldProblems CheckFields(const TypeTable& table, const std::string& type, json& obj) {
  FieldProblems p;
  Checker(table, p).Message(type, obj, "", true);
  return p;
}

}  // namespace minik::api
