#include "api/managed_fields.h"

#include <algorithm>
#include <functional>
#include <mutex>
#include <set>

namespace minik::api {
namespace {

// Structs and maps that are owned whole (+structType=atomic, +mapType=atomic).
const std::set<std::string>& AtomicMessages() {
  static const std::set<std::string> s = {
      "meta.v1.LabelSelector",
      "meta.v1.OwnerReference",
      "core.v1.ObjectReference",
      "core.v1.LocalObjectReference",
      "core.v1.TypedLocalObjectReference",
      "core.v1.TypedObjectReference",
      "core.v1.NodeSelector",
      "core.v1.TopologySelectorTerm",
      "core.v1.SecretKeySelector",
      "core.v1.ConfigMapKeySelector",
      "core.v1.ObjectFieldSelector",
      "core.v1.ResourceFieldSelector",
  };
  return s;
}

// Key fields of associative lists that have a default (`protocol` of ports):
// an applied item without it is the same item as the stored, defaulted one.
const std::map<std::pair<std::string, std::string>, json>& KeyDefaults() {
  static const std::map<std::pair<std::string, std::string>, json> d = {
      {{"core.v1.ContainerPort", "protocol"}, "TCP"},
      {{"core.v1.ServicePort", "protocol"}, "TCP"},
      {{"core.v1.EndpointPort", "protocol"}, "TCP"},
      {{"discovery.v1.EndpointPort", "protocol"}, "TCP"},
  };
  return d;
}
const std::set<std::string>& AtomicMapFields() {
  static const std::set<std::string> s = {"core.v1.ServiceSpec.selector",
                                          "core.v1.PodSpec.nodeSelector"};
  return s;
}

// What a node of an object is, for field management.
struct Node {
  enum Kind { kLeaf, kStruct, kMap, kAssociative, kSet, kAtomicList } kind = kLeaf;
  const MessageDef* message = nullptr;  // kStruct, and the items of kAssociative
  std::string value_type;               // kMap values, list items
  std::vector<std::string> keys;        // kAssociative
};

class Walker {
 public:
  Walker(const TypeTable& t) : t_(t) {}

  static Node MapNode() {
    Node n;
    n.kind = Node::kMap;
    return n;
  }

  Node OfType(const std::string& type) const {
    Node n;
    if (t_.IsScalar(type) || AtomicMessages().count(type)) {
      return n;
    }
    n.message = t_.Find(type);
    // A kind the table does not describe (a custom resource's) is a map.
    n.kind = n.message ? Node::kStruct : Node::kMap;
    return n;
  }

  Node OfField(const FieldDef& f, const std::string& parent) const {
    Node n;
    if (f.is_map) {
      if (AtomicMapFields().count(parent + "." + f.json_name)) {
        return n;
      }
      n.kind = Node::kMap;
      n.value_type = f.type;
      return n;
    }
    if (f.repeated && f.type != "bytes") {
      n.value_type = f.type;
      if (!f.list_map_keys.empty()) {
        n.kind = Node::kAssociative;
        n.keys = f.list_map_keys;
      } else if (!f.merge_key.empty()) {
        n.kind = Node::kAssociative;
        n.keys = {f.merge_key};
      } else if (f.merges() && t_.IsScalar(f.type)) {
        n.kind = Node::kSet;
      } else {
        n.kind = Node::kAtomicList;
      }
      n.message = t_.Find(f.type);
      return n;
    }
    return OfType(f.type);
  }

  // The node of `key` inside a struct or map node.
  Node Child(const Node& n, const std::string& key) const {
    if (n.kind == Node::kMap) {
      return n.value_type.empty() ? MapNode() : OfType(n.value_type);
    }
    if (n.message) {
      auto it = n.message->by_json.find(key);
      if (it != n.message->by_json.end()) {
        // by_json lifts inline members; the owner is needed for atomic maps.
        return OfField(*it->second, n.message->name);
      }
    }
    return MapNode();  // unknown fields keep their content
  }

  Node Item(const Node& list) const {
    if (list.message && !AtomicMessages().count(list.value_type)) {
      Node n;
      n.kind = Node::kStruct;
      n.message = list.message;
      return n;
    }
    return OfType(list.value_type);
  }

  // `k:{...}` of an associative list item (keys sorted, as JSON).
  static std::string ItemKey(const Node& list, const json& item) {
    json k = json::object();
    if (item.is_object()) {
      for (const auto& name : list.keys) {
        if (auto it = item.find(name); it != item.end() && !it->is_null()) {
          k[name] = *it;
        } else if (list.message) {
          auto d = KeyDefaults().find({list.message->name, name});
          if (d != KeyDefaults().end()) {
            k[name] = d->second;
          }
        }
      }
    }
    return "k:" + k.dump();
  }

  // Marks `v` and everything in it as owned (an added or applied node).
  void MarkAll(const json& v, const Node& n, FieldSet& s) const {
    s.set_member(true);
    if (v.is_object() && (n.kind == Node::kStruct || n.kind == Node::kMap)) {
      for (auto it = v.begin(); it != v.end(); ++it) {
        MarkAll(it.value(), Child(n, it.key()), s.Child("f:" + it.key()));
      }
    } else if (v.is_array() && n.kind == Node::kAssociative) {
      Node item = Item(n);
      for (const auto& e : v) {
        MarkAll(e, item, s.Child(ItemKey(n, e)));
      }
    } else if (v.is_array() && n.kind == Node::kSet) {
      for (const auto& e : v) {
        s.Child("v:" + e.dump()).set_member(true);
      }
    }
  }

  // `skel` is the node in the kind's zero value (null when absent there): a
  // node that is absent from an object but there in Go's zero value counts
  // as present, as it would in the decoded Go struct.
  void Diff(const json* o, const json* v, const Node& n, FieldSet& changed, FieldSet& removed,
            const json* skel = nullptr) const {
    static const json kNull;
    static const json kEmptyObject = json::object();
    if (!o && skel) {
      o = skel->is_object() ? &kEmptyObject : &kNull;
    }
    if (!v && skel && skel->is_object()) {
      v = &kEmptyObject;
    }
    if (!v) {
      if (o) {
        removed.set_member(true);
      }
      return;
    }
    if (!o) {
      MarkAll(*v, n, changed);
      return;
    }
    bool container = n.kind == Node::kStruct || n.kind == Node::kMap        ? v->is_object()
                     : n.kind == Node::kAssociative || n.kind == Node::kSet ? v->is_array()
                                                                            : false;
    if (!container) {
      if (*o != *v) {
        changed.set_member(true);
      }
      return;
    }
    // A null that was there counts as present: the node is not new, only
    // what is inside it.
    if (n.kind == Node::kStruct || n.kind == Node::kMap) {
      const json& oo = o->is_object() ? *o : kEmptyObject;
      auto skel_child = [&](const std::string& key) -> const json* {
        if (!skel || !skel->is_object()) {
          return nullptr;
        }
        auto it = skel->find(key);
        return it == skel->end() ? nullptr : &*it;
      };
      bool meta = n.message && n.message->name == "meta.v1.ObjectMeta";
      for (auto it = v->begin(); it != v->end(); ++it) {
        if (meta && it.key() == "managedFields") {
          continue;  // never owned, and large
        }
        auto ot = oo.find(it.key());
        Diff(ot == oo.end() ? nullptr : &*ot, &it.value(), Child(n, it.key()),
             changed.Child("f:" + it.key()), removed.Child("f:" + it.key()), skel_child(it.key()));
      }
      for (auto it = oo.begin(); it != oo.end(); ++it) {
        if (!v->contains(it.key()) && !(meta && it.key() == "managedFields")) {
          Diff(&it.value(), nullptr, Child(n, it.key()), changed.Child("f:" + it.key()),
               removed.Child("f:" + it.key()), skel_child(it.key()));
        }
      }
    } else if (n.kind == Node::kAssociative) {
      Node item = Item(n);
      std::map<std::string, const json*> before;
      if (o->is_array()) {
        for (const auto& e : *o) {
          before[ItemKey(n, e)] = &e;
        }
      }
      std::set<std::string> seen;
      for (const auto& e : *v) {
        std::string k = ItemKey(n, e);
        seen.insert(k);
        auto b = before.find(k);
        Diff(b == before.end() ? nullptr : b->second, &e, item, changed.Child(k), removed.Child(k));
      }
      for (const auto& [k, _] : before) {
        if (!seen.count(k)) {
          removed.Child(k).set_member(true);
        }
      }
    } else {
      std::set<std::string> before, after;
      if (o->is_array()) {
        for (const auto& e : *o) {
          before.insert(e.dump());
        }
      }
      for (const auto& e : *v) {
        after.insert(e.dump());
      }
      for (const auto& a : after) {
        if (!before.count(a)) {
          changed.Child("v:" + a).set_member(true);
        }
      }
      for (const auto& b : before) {
        if (!after.count(b)) {
          removed.Child("v:" + b).set_member(true);
        }
      }
    }
  }

  void ToSet(const json& v, const Node& n, FieldSet& s) const {
    if ((n.kind == Node::kStruct || n.kind == Node::kMap) && v.is_object()) {
      if (v.empty()) {
        s.set_member(true);
      }
      for (auto it = v.begin(); it != v.end(); ++it) {
        ToSet(it.value(), Child(n, it.key()), s.Child("f:" + it.key()));
      }
    } else if (n.kind == Node::kAssociative && v.is_array() && !v.empty()) {
      Node item = Item(n);
      for (const auto& e : v) {
        FieldSet& c = s.Child(ItemKey(n, e));
        c.set_member(true);
        if (e.is_object()) {
          for (auto it = e.begin(); it != e.end(); ++it) {
            ToSet(it.value(), Child(item, it.key()), c.Child("f:" + it.key()));
          }
        }
      }
    } else if (n.kind == Node::kSet && v.is_array() && !v.empty()) {
      for (const auto& e : v) {
        s.Child("v:" + e.dump()).set_member(true);
      }
    } else {
      s.set_member(true);
    }
  }

  // Removes the members of `s` from `v`, except nodes that `keep` still owns
  // something inside (those lose only their own pruned members).
  void Remove(json& v, const Node& n, const FieldSet& s, const FieldSet* keep) const {
    static const FieldSet kNothing;
    for (const auto& [pe, child] : s.children()) {
      const FieldSet* k = nullptr;
      if (keep) {
        auto kc = keep->children().find(pe);
        k = kc == keep->children().end() ? nullptr : &kc->second;
      }
      bool whole = child.member() && (!k || k->empty());
      if (pe.rfind("f:", 0) == 0 && v.is_object()) {
        std::string key = pe.substr(2);
        auto it = v.find(key);
        if (it == v.end()) {
          continue;
        }
        if (whole) {
          v.erase(it);
        } else {
          Remove(*it, Child(n, key), child, k);
        }
      } else if (pe.rfind("k:", 0) == 0 && v.is_array()) {
        Node item = Item(n);
        for (auto it = v.begin(); it != v.end(); ++it) {
          if (ItemKey(n, *it) == pe) {
            if (whole) {
              v.erase(it);
            } else {
              Remove(*it, item, child, k);
            }
            break;
          }
        }
      } else if (pe.rfind("v:", 0) == 0 && v.is_array() && child.member()) {
        for (auto it = v.begin(); it != v.end(); ++it) {
          if (it->dump() == pe.substr(2)) {
            v.erase(it);
            break;
          }
        }
      }
    }
  }

  // Go's zero value of a message as encoding/json writes it: fields without
  // omitempty appear (null for pointers, lists and maps), and embedded structs
  // always appear.
  json Empty(const MessageDef* m, int depth) const {
    json out = json::object();
    if (!m || depth > 8) {
      return out;
    }
    for (const auto& f : m->fields) {
      if (f.is_inline()) {
        json in = Empty(t_.Find(f.type), depth + 1);
        for (auto it = in.begin(); it != in.end(); ++it) {
          out[it.key()] = it.value();
        }
        continue;
      }
      bool plain = !f.is_map && !f.repeated && !f.ptr;
      if (plain && !t_.IsScalar(f.type) && t_.Find(f.type)) {
        out[f.json_name] = Empty(t_.Find(f.type), depth + 1);  // a struct is always written
      } else if (plain && (f.type == "meta.v1.Time" || f.type == "meta.v1.MicroTime")) {
        out[f.json_name] = nullptr;  // a zero time is written as null
      } else if (!f.omitempty) {
        if (!plain || f.type.find('.') != std::string::npos) {
          out[f.json_name] = nullptr;
        } else if (f.type == "string" || f.type == "bytes") {
          out[f.json_name] = "";
        } else if (f.type == "bool") {
          out[f.json_name] = false;
        } else {
          out[f.json_name] = 0;
        }
      }
    }
    return out;
  }

 private:
  const TypeTable& t_;
};

// `obj` as Go would decode it into its type: structs it lacks are there,
// empty (the zero value `skeleton` fills in what is missing).
json Overlay(const json& skeleton, const json& obj) {
  if (!skeleton.is_object() || !obj.is_object()) {
    return obj;
  }
  json out = obj;
  for (auto it = skeleton.begin(); it != skeleton.end(); ++it) {
    auto o = out.find(it.key());
    if (o == out.end()) {
      if (it.value().is_object()) {
        out[it.key()] = it.value();
      }
    } else if (it.value().is_object() && o->is_object()) {
      *o = Overlay(it.value(), *o);
    }
  }
  return out;
}

// Printed as kube-apiserver prints a path element.
std::string PathElement(const std::string& pe) {
  if (pe.rfind("f:", 0) == 0) {
    return "." + pe.substr(2);
  }
  if (pe.rfind("k:", 0) == 0) {
    std::string out = "[";
    try {
      json k = json::parse(pe.substr(2));
      bool first = true;
      for (auto it = k.begin(); it != k.end(); ++it) {
        out += (first ? "" : ",") + it.key() + "=" + it.value().dump();
        first = false;
      }
    } catch (const json::exception&) {
      out += pe.substr(2);
    }
    return out + "]";
  }
  if (pe.rfind("v:", 0) == 0) {
    return "[=" + pe.substr(2) + "]";
  }
  if (pe.rfind("i:", 0) == 0) {
    return "[" + pe.substr(2) + "]";
  }
  return pe;
}

// Fields that no manager ever owns (stripmeta).
FieldSet Stripped() {
  FieldSet s;
  s.Child("f:apiVersion").set_member(true);
  s.Child("f:kind").set_member(true);
  FieldSet& m = s.Child("f:metadata");
  for (const char* f :
       {"name", "namespace", "creationTimestamp", "selfLink", "uid", "generation", "managedFields",
        "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"}) {
    m.Child(std::string("f:") + f).set_member(true);
  }
  return s;
}

void Clean(FieldSet& s, const FieldSet& ignored) {
  s.RemovePrefixes(Stripped());
  s.RemovePrefixes(ignored);
  // `metadata` itself is never owned, only what is in it.
  if (s.children().count("f:metadata")) {
    s.Child("f:metadata").set_member(false);
  }
  s.set_member(false);
  s.Prune();
}

std::string Identity(const ManagedFieldsEntry& e) {
  std::string id = "\"" + e.manager + "\"";
  if (!e.subresource.empty()) {
    id += " with subresource \"" + e.subresource + "\"";
  }
  if (e.operation == "Update") {
    id += " using " + e.api_version;
  }
  return id;
}

bool SameManager(const ManagedFieldsEntry& e, const std::string& manager,
                 const std::string& operation, const std::string& api_version,
                 const std::string& subresource) {
  // Apply entries are one per manager, whatever the version it applied.
  return e.manager == manager && e.operation == operation && e.subresource == subresource &&
         (operation == "Apply" || e.api_version == api_version);
}

// More than 10 Update entries: the oldest of a version fold into "ancient-changes".
void CapUpdateManagers(std::vector<ManagedFieldsEntry>& managers) {
  constexpr size_t kMax = 10;
  auto updates = [&] {
    return static_cast<size_t>(std::count_if(
        managers.begin(), managers.end(), [](const auto& e) { return e.operation == "Update"; }));
  };
  while (updates() > kMax) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < managers.size(); ++i) {
      if (managers[i].operation == "Update" && managers[i].manager != "ancient-changes") {
        idx.push_back(i);
      }
    }
    if (idx.empty()) {
      return;
    }
    std::stable_sort(idx.begin(), idx.end(),
                     [&](size_t a, size_t b) { return managers[a].time < managers[b].time; });
    ManagedFieldsEntry oldest = managers[idx[0]];
    managers.erase(managers.begin() + static_cast<long>(idx[0]));
    auto bucket = std::find_if(managers.begin(), managers.end(), [&](const auto& e) {
      return e.manager == "ancient-changes" && e.api_version == oldest.api_version;
    });
    if (bucket == managers.end()) {
      oldest.manager = "ancient-changes";
      oldest.subresource = "";
      managers.push_back(oldest);
    } else {
      bucket->fields.Union(oldest.fields);
      bucket->time = std::max(bucket->time, oldest.time);
    }
  }
}

}  // namespace

// ---- FieldSet ----

void FieldSet::Union(const FieldSet& other) {
  member_ = member_ || other.member_;
  for (const auto& [pe, child] : other.children_) {
    children_[pe].Union(child);
  }
}

void FieldSet::Subtract(const FieldSet& other) {
  if (other.member_) {
    member_ = false;
  }
  for (const auto& [pe, child] : other.children_) {
    auto it = children_.find(pe);
    if (it != children_.end()) {
      it->second.Subtract(child);
    }
  }
  Prune();
}

FieldSet FieldSet::Intersect(const FieldSet& other) const {
  FieldSet out;
  out.member_ = member_ && other.member_;
  for (const auto& [pe, child] : children_) {
    auto it = other.children_.find(pe);
    if (it != other.children_.end()) {
      FieldSet c = child.Intersect(it->second);
      if (!c.empty()) {
        out.children_[pe] = std::move(c);
      }
    }
  }
  return out;
}

void FieldSet::RemovePrefixes(const FieldSet& prefixes) {
  for (const auto& [pe, child] : prefixes.children_) {
    auto it = children_.find(pe);
    if (it == children_.end()) {
      continue;
    }
    if (child.member_) {
      children_.erase(it);
    } else {
      it->second.RemovePrefixes(child);
    }
  }
}

void FieldSet::Prune() {
  for (auto it = children_.begin(); it != children_.end();) {
    it->second.Prune();
    if (it->second.empty()) {
      it = children_.erase(it);
    } else {
      ++it;
    }
  }
}

json FieldSet::ToJson() const {
  json out = json::object();
  for (const auto& [pe, child] : children_) {
    out[pe] = child.ToJson();
  }
  if (member_ && !children_.empty()) {
    out["."] = json::object();
  }
  return out;
}

FieldSet FieldSet::FromJson(const json& v) {
  if (!v.is_object()) {
    throw ParseError("fieldsV1 must be an object");
  }
  FieldSet s;
  if (v.empty()) {
    s.member_ = true;
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string& k = it.key();
    if (k == ".") {
      s.member_ = true;
      continue;
    }
    if (k.size() < 2 || k[1] != ':' || std::string("fkvi").find(k[0]) == std::string::npos) {
      throw ParseError("fieldsV1 has an invalid path element \"" + k + "\"");
    }
    s.children_[k] = FromJson(it.value());
  }
  return s;
}

void FieldSet::CollectPaths(const std::string& prefix, std::vector<std::string>& out) const {
  if (member_) {
    out.push_back(prefix);
  }
  for (const auto& [pe, child] : children_) {
    child.CollectPaths(prefix + PathElement(pe), out);
  }
}

std::vector<std::string> FieldSet::Paths() const {
  std::vector<std::string> out;
  CollectPaths("", out);
  return out;
}

// ---- managedFields ----

std::optional<std::vector<ManagedFieldsEntry>> ParseManagedFields(const json& list) {
  if (!list.is_array()) {
    return std::nullopt;
  }
  std::vector<ManagedFieldsEntry> out;
  try {
    for (const auto& e : list) {
      if (!e.is_object()) {
        return std::nullopt;
      }
      ManagedFieldsEntry m;
      m.manager = e.value("manager", "");
      m.operation = e.value("operation", "");
      m.api_version = e.value("apiVersion", "");
      m.time = e.contains("time") && e["time"].is_string() ? e["time"].get<std::string>() : "";
      m.subresource = e.value("subresource", "");
      if ((m.operation != "Apply" && m.operation != "Update") || m.api_version.empty() ||
          e.value("fieldsType", "") != "FieldsV1") {
        return std::nullopt;
      }
      m.fields = FieldSet::FromJson(e.value("fieldsV1", json::object()));
      out.push_back(std::move(m));
    }
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return out;
}

json EncodeManagedFields(std::vector<ManagedFieldsEntry> entries) {
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return std::tie(a.operation, a.time, a.manager, a.api_version, a.subresource) <
           std::tie(b.operation, b.time, b.manager, b.api_version, b.subresource);
  });
  json out = json::array();
  for (const auto& e : entries) {
    json j = {{"manager", e.manager},
              {"operation", e.operation},
              {"apiVersion", e.api_version},
              {"fieldsType", "FieldsV1"},
              {"fieldsV1", e.fields.ToJson()}};
    if (!e.time.empty()) {
      j["time"] = e.time;
    }
    if (!e.subresource.empty()) {
      j["subresource"] = e.subresource;
    }
    out.push_back(std::move(j));
  }
  return out;
}

ApplyConflictError::ApplyConflictError(std::vector<ApplyConflict> conflicts, FieldSet fields)
    : std::runtime_error([&] {
        std::string msg = "Apply failed with " + std::to_string(conflicts.size()) + " conflict" +
                          (conflicts.size() == 1 ? "" : "s") + ": ";
        if (conflicts.size() == 1) {
          return msg + "conflict with " + conflicts[0].manager + ": " + conflicts[0].path;
        }
        std::map<std::string, std::vector<std::string>> by_manager;
        for (const auto& c : conflicts) {
          by_manager[c.manager].push_back(c.path);
        }
        bool first = true;
        for (const auto& [m, paths] : by_manager) {
          msg += (first ? "" : "\n") + ("conflicts with " + m + ":");
          first = false;
          for (const auto& p : paths) {
            msg += "\n- " + p;
          }
        }
        return msg;
      }()),
      conflicts_(std::move(conflicts)),
      fields_(std::move(fields)) {}

// ---- FieldManager ----

FieldManager::FieldManager(const TypeTable& types, std::string type, bool status_subresource)
    : types_(types), type_(std::move(type)), status_subresource_(status_subresource) {}

FieldSet FieldManager::Ignored(const std::string& subresource) const {
  FieldSet s;
  if (subresource == "status" || subresource == "approval") {
    s.Child("f:spec").set_member(true);
  } else if (status_subresource_) {
    s.Child("f:status").set_member(true);
  }
  return s;
}

FieldSet FieldManager::ToSet(const json& obj) const {
  Walker w(types_);
  FieldSet s;
  w.ToSet(obj, w.OfType(type_), s);
  return s;
}

void FieldManager::Compare(const json& old, const json& obj, FieldSet* changed,
                           FieldSet* removed) const {
  Walker w(types_);
  w.Diff(&old, &obj, w.OfType(type_), *changed, *removed);
}

void FieldManager::Remove(json& obj, const FieldSet& set) const {
  Walker w(types_);
  w.Remove(obj, w.OfType(type_), set, nullptr);
}

FieldSet FieldManager::StillApplied(const json& last_applied, const json& live) const {
  FieldSet s = ToSet(last_applied);
  FieldSet changed, removed;
  Compare(last_applied, live, &changed, &removed);
  s.Subtract(changed);
  s.Subtract(removed);
  Clean(s, Ignored(""));
  return s;
}

const json& FieldManager::Empty() const {
  // The same for every write of a kind: made once per type (shared state,
  // guarded; entries are never removed, so references to them stay valid).
  static std::mutex mu;
  static std::map<std::pair<const TypeTable*, std::string>, json> cache;
  std::lock_guard lock(mu);
  auto [it, added] = cache.try_emplace({&types_, type_});
  if (added) {
    Walker w(types_);
    it->second = w.Empty(types_.Find(type_), 0);
  }
  return it->second;
}

bool FieldManager::Update(std::vector<ManagedFieldsEntry>& managers, const json& old,
                          const json& obj, const FieldManagerRequest& req) const {
  FieldSet changed, removed;
  const json& empty = Empty();
  Walker w(types_);
  w.Diff(old.is_null() ? &empty : &old, &obj, w.OfType(type_), changed, removed, &empty);
  FieldSet ignored = Ignored(req.subresource);
  Clean(changed, ignored);
  Clean(removed, ignored);
  if (changed.empty() && removed.empty()) {
    return false;
  }
  // An update takes the fields it changed from everyone else.
  for (auto& e : managers) {
    if (SameManager(e, req.manager, "Update", req.api_version, req.subresource)) {
      continue;
    }
    e.fields.Subtract(changed);
    e.fields.Subtract(removed);
  }
  auto mine = std::find_if(managers.begin(), managers.end(), [&](const auto& e) {
    return SameManager(e, req.manager, "Update", req.api_version, req.subresource);
  });
  if (mine == managers.end()) {
    managers.push_back(ManagedFieldsEntry{req.manager, "Update", req.api_version, req.now,
                                          req.subresource, FieldSet()});
    mine = managers.end() - 1;
  }
  mine->fields.Union(changed);
  mine->fields.Subtract(removed);
  mine->time = req.now;
  managers.erase(std::remove_if(managers.begin(), managers.end(),
                                [](const auto& e) { return e.fields.empty(); }),
                 managers.end());
  CapUpdateManagers(managers);
  return true;
}

json FieldManager::Apply(const json& live, std::vector<ManagedFieldsEntry> live_managers,
                         const json& config, const json& merged_in, const FieldManagerRequest& req,
                         std::vector<ManagedFieldsEntry>* managers) const {
  FieldSet ignored = Ignored(req.subresource);
  const json& empty = Empty();
  json live_clean = Overlay(empty, live);
  if (live_clean.contains("metadata")) {
    live_clean["metadata"].erase("managedFields");
  }
  // Fields of an object nobody has owned yet belong to "before-first-apply".
  if (live_managers.empty()) {
    FieldSet changed, removed;
    Compare(empty, live_clean, &changed, &removed);
    Clean(changed, ignored);
    if (!changed.empty()) {
      live_managers.push_back(
          ManagedFieldsEntry{"before-first-apply", "Update", req.api_version, "", "", changed});
    }
  }
  FieldSet applied = ToSet(config);
  Clean(applied, ignored);
  auto is_mine = [&](const ManagedFieldsEntry& e) {
    return SameManager(e, req.manager, "Apply", req.api_version, req.subresource);
  };
  FieldSet previous, others;
  std::string previous_time;
  for (const auto& e : live_managers) {
    if (is_mine(e)) {
      previous = e.fields;
      previous_time = e.time;
    } else {
      others.Union(e.fields);
    }
  }
  // What this manager applied before and applies no more goes, unless
  // someone else owns it too.
  json merged = merged_in;
  FieldSet prune = previous;
  prune.Subtract(applied);
  prune.Subtract(others);
  FieldSet owned = applied;
  owned.Union(others);
  Walker w(types_);
  w.Remove(merged, w.OfType(type_), prune, &owned);

  FieldSet changed, removed;
  json merged_clean = Overlay(empty, merged);
  if (merged_clean.contains("metadata")) {
    merged_clean["metadata"].erase("managedFields");
  }
  Compare(live_clean, merged_clean, &changed, &removed);
  Clean(changed, ignored);
  Clean(removed, ignored);

  std::vector<ApplyConflict> conflicts;
  FieldSet conflicting;
  for (auto& e : live_managers) {
    if (is_mine(e)) {
      continue;
    }
    FieldSet c = e.fields.Intersect(changed);
    for (const auto& p : c.Paths()) {
      conflicts.push_back({Identity(e), p});
    }
    conflicting.Union(c);
  }
  if (!conflicts.empty() && !req.force) {
    throw ApplyConflictError(std::move(conflicts), std::move(conflicting));
  }
  std::vector<ManagedFieldsEntry> out;
  for (auto& e : live_managers) {
    if (is_mine(e)) {
      continue;
    }
    e.fields.Subtract(changed);  // forced: the conflicting fields move to the applier
    e.fields.Subtract(removed);
    if (!e.fields.empty()) {
      out.push_back(std::move(e));
    }
  }
  // The time moves only when the apply changed the object.
  bool changed_object = !changed.empty() || !removed.empty();
  out.push_back(ManagedFieldsEntry{req.manager, "Apply", req.api_version,
                                   changed_object ? req.now : previous_time, req.subresource,
                                   applied});
  if (applied.empty()) {
    out.pop_back();
  }
  *managers = std::move(out);
  return merged;
}

std::string ManagerFromUserAgent(const std::string& user_agent) {
  std::string prefix = user_agent.substr(0, user_agent.find('/'));
  // Whole printable characters only, never cut inside one, 128 bytes at most.
  std::string out;
  for (size_t i = 0; i < prefix.size();) {
    unsigned char c = static_cast<unsigned char>(prefix[i]);
    size_t n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    bool valid = n > 0 && i + n <= prefix.size();
    for (size_t k = 1; valid && k < n; ++k) {
      valid = (static_cast<unsigned char>(prefix[i + k]) & 0xc0) == 0x80;
    }
    if (!valid) {
      ++i;
      continue;
    }
    if (n == 1 && (c < 0x20 || c == 0x7f)) {
      ++i;
      continue;
    }
    if (out.size() + n > 128) {
      break;
    }
    out.append(prefix, i, n);
    i += n;
  }
  return out.empty() ? "unknown" : out;
}

}  // namespace minik::api
