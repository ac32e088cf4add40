#pragma once
// Field management (`metadata.managedFields`), as kube-apiserver's
// structured-merge-diff does it: which manager owns which fields of an
// object, recorded on every write, and server-side apply with its conflicts.
//
// - A FieldSet is the trie of `fieldsV1`: `f:<field>` for struct and map
//   fields, `k:{"key":value}` for items of associative lists (patch merge
//   keys, +listType=map), `v:<value>` for items of sets, and `.` for a node
//   that is itself owned as well as having owned children.
// - The list semantics come from the type table: a list with merge keys is
//   associative, a merged list of scalars is a set, any other list is atomic
//   (owned whole); Quantity, IntOrString, times, selectors and references are
//   atomic values.
// - An Update (create, update, patch) gives its manager the fields it changed
//   and takes them from the others; an Apply gives its manager exactly the
//   fields of its configuration, removes what it applied before and no
//   longer applies (unless someone else owns it), and conflicts with other
//   managers whose fields it changes (409, unless forced).

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/types.h"
#include "common/json.h"

namespace minik::api {

class FieldSet {
 public:
  bool empty() const { return !member_ && children_.empty(); }
  bool member() const { return member_; }
  void set_member(bool m) { member_ = m; }
  FieldSet& Child(const std::string& element) { return children_[element]; }
  const std::map<std::string, FieldSet>& children() const { return children_; }

  void Union(const FieldSet& other);
  // Removes every member of `other` from this set.
  void Subtract(const FieldSet& other);
  // The members that are in both.
  FieldSet Intersect(const FieldSet& other) const;
  // Removes whole subtrees: every path that is a member of `prefixes`, and
  // everything below it.
  void RemovePrefixes(const FieldSet& prefixes);
  // Drops nodes that own nothing.
  void Prune();

  // `fieldsV1` JSON: children by element, then `"."` last when a node with
  // children is owned itself. Throws ParseError when `v` is not one.
  json ToJson() const;
  static FieldSet FromJson(const json& v);
  // The paths of the members, as kube-apiserver prints them in conflicts:
  // `.spec.replicas`, `.spec.containers[name="web"].image`.
  std::vector<std::string> Paths() const;

 private:
  void CollectPaths(const std::string& prefix, std::vector<std::string>& out) const;
  bool member_ = false;
  std::map<std::string, FieldSet> children_;
};

struct ManagedFieldsEntry {
  std::string manager;
  std::string operation;  // "Apply" or "Update"
  std::string api_version;
  std::string time;  // RFC 3339, seconds; "" when unset
  std::string subresource;
  FieldSet fields;
};

// Parses `metadata.managedFields`; nullopt when it is not a valid list of
// entries (as kube-apiserver, the caller then keeps what is stored).
std::optional<std::vector<ManagedFieldsEntry>> ParseManagedFields(const json& list);
// The list sorted as kube-apiserver keeps it (Apply first, then oldest first).
json EncodeManagedFields(std::vector<ManagedFieldsEntry> entries);

// One field-managed write.
struct FieldManagerRequest {
  std::string manager;
  std::string api_version;  // of the object as written
  std::string subresource;  // "", "status", "scale"
  std::string now;          // RFC 3339 time of the write
  bool force = false;       // apply only: take conflicting fields over
};

// A server-side apply that would change fields other managers own.
struct ApplyConflict {
  std::string manager;  // as printed: "\"kubectl-create\" using apps/v1"
  std::string path;     // .spec.replicas
};

class ApplyConflictError : public std::runtime_error {
 public:
  ApplyConflictError(std::vector<ApplyConflict> conflicts, FieldSet fields);
  const std::vector<ApplyConflict>& conflicts() const { return conflicts_; }
  // Every conflicting field, whoever owns it.
  const FieldSet& fields() const { return fields_; }

 private:
  std::vector<ApplyConflict> conflicts_;
  FieldSet fields_;
};

class FieldManager {
 public:
  // `type` is the object's message in the table; `status_subresource` tells
  // whether `status` belongs to the status subresource (then writes to the
  // main resource never own it, and writes to /status own only it).
  FieldManager(const TypeTable& types, std::string type, bool status_subresource);

  // The fields of `obj` as an applied configuration owns them.
  FieldSet ToSet(const json& obj) const;
  // What changed from `old` to `obj` (added or modified) and what was removed.
  void Compare(const json& old, const json& obj, FieldSet* changed, FieldSet* removed) const;
  // Removes the owned values in `set` from `obj`.
  void Remove(json& obj, const FieldSet& set) const;
  // The fields of a last-applied configuration that still hold the values
  // it applied in `live` (client-side apply's fields, for kubectl's move to
  // server-side apply).
  FieldSet StillApplied(const json& last_applied, const json& live) const;
  // The object Go's zero value of the kind encodes to, which a create is
  // compared against (so `spec` and the pod template are not new, but
  // labels are).
  const json& Empty() const;

  // Records an update (create, update, patch) from `old` to `obj` in
  // `managers`. `old` is null for a create. Returns false, leaving
  // `managers` alone, when the write changed nothing it tracks.
  bool Update(std::vector<ManagedFieldsEntry>& managers, const json& old, const json& obj,
              const FieldManagerRequest& req) const;
  // Server-side apply of `config` over `live` (with `live_managers`): returns
  // the object to store and sets `managers`. Throws ApplyConflictError.
  json Apply(const json& live, std::vector<ManagedFieldsEntry> live_managers, const json& config,
             const json& merged, const FieldManagerRequest& req,
             std::vector<ManagedFieldsEntry>* managers) const;

 private:
  FieldSet Ignored(const std::string& subresource) const;

  const TypeTable& types_;
  std::string type_;
  bool status_subresource_;
};

// The manager kube-apiserver takes from a User-Agent: the text before the
// first '/', printable characters only, at most 128 bytes ("kubectl",
// "OpenAPI-Generator"); "unknown" when nothing is left.
std::string ManagerFromUserAgent(const std::string& user_agent);

}  // namespace minik::api
