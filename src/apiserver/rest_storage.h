#pragma once
// The generic REST storage of the API server (Kubernetes' registry/generic):
// the verbs on one resource, with metadata semantics, defaulting, admission,
// validation and the status subresource, over the Store seam. Objects are
// stored as JSON without resourceVersion, which is the store's revision.

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "api/resources.h"
#include "api/selectors.h"
#include "api/types.h"
#include "common/json.h"
#include "store/store.h"

namespace minik::apiserver {

using api::ResourceInfo;

struct ListRequest {
  api::LabelSelector labels;
  api::FieldSelector fields;
  int64_t limit = 0;
  std::string continue_token;
  std::string resource_version;
  std::string resource_version_match;
};

struct WriteOptions {
  bool dry_run = false;
  // The manager recorded in managedFields (the fieldManager parameter, else
  // the User-Agent's product); "" writes without recording one.
  std::string field_manager;
  // The subresource a write is recorded under when it is not the request's
  // own (a /scale write changes the main resource).
  std::string managed_subresource;
  // The version a write is recorded in, when it is not the stored one (a
  // write through autoscaling/v1 of an HPA stored as v2).
  std::string managed_api_version;
  // managedFields are set on the object already (by server-side apply):
  // stored as they are.
  bool keep_managed_fields = false;
};

// Patch types by their Content-Type.
enum class PatchType { kJson, kMerge, kStrategic, kApply };

class RestStorage {
 public:
  RestStorage(store::Store& store, const api::ResourceRegistry& registry,
              const api::TypeTable& types);

  json Get(const ResourceInfo& r, const std::string& ns, const std::string& name) const;
  json List(const ResourceInfo& r, const std::string& ns, const ListRequest& req) const;
  // Returns the created object; `created` is false only for dry runs.
  json Create(const ResourceInfo& r, const std::string& ns, json obj, const WriteOptions& o);
  // `subresource` is "" or "status". Returns the stored object.
  json Update(const ResourceInfo& r, const std::string& ns, const std::string& name, json obj,
              const std::string& subresource, const WriteOptions& o);
  // `created` is set when a server-side apply made the object.
  json Patch(const ResourceInfo& r, const std::string& ns, const std::string& name, PatchType type,
             const json& patch, const std::string& subresource, const WriteOptions& o, bool force,
             bool* created = nullptr);
  // Returns the object as deleted (or as marked for deletion) and whether it is gone.
  std::pair<json, bool> Delete(const ResourceInfo& r, const std::string& ns,
                               const std::string& name, const json& options, bool dry_run);
  json DeleteCollection(const ResourceInfo& r, const std::string& ns, const ListRequest& req,
                        const json& options, bool dry_run);

  // The object a store value holds, with its resourceVersion.
  static json Decode(const store::KeyValue& kv);
  // A stored object as `r`'s version shows it (converted when `r` is not the
  // version stored).
  static json Present(const ResourceInfo& r, json stored);

  store::Store& store() { return store_; }
  const api::TypeTable& types() const { return types_; }
  const api::ResourceRegistry& registry() const { return registry_; }

 private:
  json Read(const ResourceInfo& r, const std::string& ns, const std::string& name,
            int64_t* revision) const;
  // `obj` (in `r`'s version) as the stored version holds it.
  json ToStorage(const ResourceInfo& r, const json& obj) const;
  // The object a patch makes of `old`; 422 when it cannot be applied, 400 when
  // it leaves fields of the wrong type.
  json ApplyPatch(const ResourceInfo& r, const json& old, PatchType type, const json& patch) const;
  // Everything a create does before the write: metadata, defaults, admission, validation.
  void PrepareCreate(const ResourceInfo& r, const std::string& ns, json& obj, const WriteOptions& o,
                     bool apply);
  // Everything an update does before the write; returns false when nothing changed.
  bool PrepareUpdate(const ResourceInfo& r, const json& old, json& obj,
                     const std::string& subresource, const WriteOptions& o);
  // Server-side apply of `config` over `old`: the merged object with its
  // managedFields. Throws 409 on conflicts with other managers.
  json ApplyConfig(const ResourceInfo& r, const json& old, const json& config,
                   const WriteOptions& o, bool force, const std::string& subresource);
  json CreateObject(const ResourceInfo& r, const std::string& ns, json obj, const WriteOptions& o,
                    bool apply);
  // Writes `obj` over revision `rev`, deleting it when it is being deleted and
  // has no finalizers left. Throws store::Conflict.
  json Commit(const ResourceInfo& r, const std::string& ns, const std::string& name, json obj,
              int64_t rev, bool dry_run);
  void Admit(const ResourceInfo& r, json& obj, const json* old);
  // Admission of a delete: throws when `obj` may not be deleted.
  void AdmitDelete(const ResourceInfo& r, const json& obj);
  void Validate(const ResourceInfo& r, const json& obj, const json* old);
  void AllocateServiceAddresses(json& svc, const json* old);

  store::Store& store_;
  const api::ResourceRegistry& registry_;
  const api::TypeTable& types_;
};

// Stored objects as clients see them (with their resourceVersion), decoded
// and encoded once per revision and shared by every watch that sends them: N
// watchers of pods cost one decode and one encode per change, not N.
class EncodedObjects {
 public:
  // The object as resource version `r` shows it.
  std::shared_ptr<const json> Object(const store::KeyValue& kv, const ResourceInfo& r);
  std::shared_ptr<const std::string> Text(const store::KeyValue& kv, const ResourceInfo& r);

 private:
  struct Entry {
    std::shared_ptr<const json> object;
    std::shared_ptr<const std::string> text;  // made when first asked for
  };
  Entry& Find(const store::KeyValue& kv, const ResourceInfo& r);  // mu_ held
  static constexpr size_t kMax = 4096;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> map_;  // "rev/key"
  std::deque<std::string> order_;               // oldest first
};

// Encodes a continue token for a list at `revision` after `key`.
std::string EncodeContinue(int64_t revision, const std::string& key);
bool DecodeContinue(const std::string& token, int64_t* revision, std::string* key);

}  // namespace minik::apiserver
