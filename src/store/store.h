#pragma once
// The Store seam: cluster state as keys (`/registry/<resource>/<namespace>/<name>`)
// with one global revision counter. An object's resourceVersion is the revision
// of its last write. Writes compare-and-swap on that revision; a watch delivers
// every change after a revision still in history; history older than the
// compaction window is dropped and a watch from there fails with Expired.
//
// Implementations: `sqlite` (durable, the default) and `memory` (tests), both in
// their own folders and registered by name (see store/registry.h).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace minik::store {

struct KeyValue {
  std::string key;
  // The object as stored; shared so that history and readers need no copies.
  std::shared_ptr<const std::string> value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
};

struct Event {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  // For a put: the new value. For a delete: the last value, with mod_revision set
  // to the revision of the delete.
  KeyValue kv;
  // The value before this event, if there was one.
  std::optional<KeyValue> prev;
  bool created() const { return type == Type::kPut && !prev; }
};

// Errors a caller must tell apart.
class NotFound : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class AlreadyExists : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A compare-and-swap found another revision: carries the current one (0 = absent).
class Conflict : public std::runtime_error {
 public:
  Conflict(const std::string& key, int64_t current)
      : std::runtime_error("revision of " + key + " changed"), current_revision(current) {}
  int64_t current_revision;
};
// The requested revision has been compacted away.
class Expired : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The store itself failed (disk, database): the write is not acknowledged.
class StorageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ListOptions {
  // 0: the current revision. Otherwise the state as of that revision (Expired
  // when it is older than history).
  int64_t revision = 0;
  // Only keys strictly greater than this (for paging).
  std::string start_after;
  // At most this many items (0 = all); `more` tells whether more remain.
  size_t limit = 0;
  // Only items for which this returns true count towards `limit`.
  std::function<bool(const KeyValue&)> filter;
};

struct ListResult {
  std::vector<KeyValue> items;
  int64_t revision = 0;  // the revision the list is consistent with
  bool more = false;
  size_t remaining = 0;  // items after the last returned one (before filtering), when `more`
};

// Receives events of one watch. Called from the store's thread after the
// events are durable, in revision order; must not block.
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  virtual void OnEvents(const std::vector<Event>& events) = 0;
};

class Watch {
 public:
  virtual ~Watch() = default;  // destroying the handle cancels the watch
};

class Store {
 public:
  virtual ~Store() = default;

  // The revision of the last write.
  virtual int64_t Revision() const = 0;
  // The oldest revision a list or watch may start from.
  virtual int64_t CompactedRevision() const = 0;

  // Throws NotFound.
  virtual KeyValue Get(const std::string& key) const = 0;
  // Every key with this prefix, in key order.
  virtual ListResult List(const std::string& prefix, const ListOptions& opts = {}) const = 0;

  // Throws AlreadyExists. Returns the stored pair with its new revision.
  virtual KeyValue Create(const std::string& key, std::string value) = 0;
  // Replaces the value when its mod_revision equals `expected_revision`
  // (0: whatever it is). Throws NotFound, Conflict.
  virtual KeyValue Update(const std::string& key, std::string value, int64_t expected_revision) = 0;
  // Deletes when its mod_revision equals `expected_revision` (0: any).
  // Returns the deleted pair with mod_revision = the revision of the delete.
  virtual KeyValue Delete(const std::string& key, int64_t expected_revision) = 0;

  // Delivers every event under `prefix` with revision > `after_revision`, then
  // new ones as they happen. Throws Expired when `after_revision` is compacted.
  virtual std::unique_ptr<Watch> WatchPrefix(const std::string& prefix, int64_t after_revision,
                                             std::shared_ptr<WatchSink> sink) = 0;

  // Drops history up to `revision`. Stores also compact by themselves, keeping
  // at least the compaction window.
  virtual void Compact(int64_t revision) = 0;
};

struct StoreOptions {
  std::string data_dir;  // where a durable store keeps its files
  int history_seconds = 300;
  // And at most this many bytes of values: under heavy churn the oldest
  // history goes sooner (a watch that far behind gets 410 Gone and lists).
  int64_t history_bytes = 256LL << 20;
};

}  // namespace minik::store
