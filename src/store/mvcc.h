#pragma once
// The state machine both built-in stores share: the current keys in memory (so
// reads never touch a disk), a history of events for watches and lists at past
// revisions, and one writer thread that groups concurrent writes into batches.
// A batch is validated, made durable through a Journal in one transaction (one
// fsync), and only then applied and acknowledged, so nobody reads or watches a
// write that a crash could take back.

#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "store/store.h"

namespace minik::store {

// Where a store keeps its writes durable. Called only from the writer thread.
class Journal {
 public:
  struct HistoryEntry {
    Event event;
    int64_t unix_seconds = 0;
  };
  struct State {
    std::map<std::string, KeyValue> current;
    std::vector<HistoryEntry> history;
    int64_t revision = 0;
    int64_t compacted_revision = 0;
  };
  virtual ~Journal() = default;
  virtual State Load() = 0;
  // Makes the events durable, all or none; throws StorageError.
  virtual void Append(const std::vector<HistoryEntry>& events, int64_t revision) = 0;
  // Forgets history up to and including `revision`.
  virtual void Compact(int64_t revision) = 0;
};

class MvccStore : public Store {
 public:
  // `journal` may be null: the memory store.
  MvccStore(std::unique_ptr<Journal> journal, StoreOptions opts);
  ~MvccStore() override;

  int64_t Revision() const override;
  int64_t CompactedRevision() const override;
  KeyValue Get(const std::string& key) const override;
  ListResult List(const std::string& prefix, const ListOptions& opts) const override;
  KeyValue Create(const std::string& key, std::string value) override;
  KeyValue Update(const std::string& key, std::string value, int64_t expected_revision) override;
  KeyValue Delete(const std::string& key, int64_t expected_revision) override;
  std::unique_ptr<Watch> WatchPrefix(const std::string& prefix, int64_t after_revision,
                                     std::shared_ptr<WatchSink> sink) override;
  void Compact(int64_t revision) override;

 private:
  enum class Op { kCreate, kUpdate, kDelete };
  struct WriteRequest {
    Op op;
    std::string key;
    std::shared_ptr<const std::string> value;
    int64_t expected = 0;
    std::promise<KeyValue> done;
  };
  struct Watcher {
    uint64_t id;
    std::string prefix;
    std::shared_ptr<WatchSink> sink;
  };
  class WatchHandle;

  KeyValue Submit(Op op, const std::string& key, std::string value, int64_t expected);
  void WriterLoop();
  void ProcessBatch(std::vector<std::unique_ptr<WriteRequest>>& batch);
  void CompactLocked(int64_t revision);
  void RemoveWatcher(uint64_t id);

  std::unique_ptr<Journal> journal_;
  StoreOptions opts_;

  // Guards current_, history_, revision_, compacted_.
  mutable std::shared_mutex state_mu_;
  std::map<std::string, KeyValue> current_;
  static int64_t EntryBytes(const Journal::HistoryEntry& h);
  std::deque<Journal::HistoryEntry> history_;
  int64_t history_bytes_ = 0;  // EntryBytes of history_
  int64_t revision_ = 0;
  int64_t compacted_ = 0;
  int64_t journal_compacted_ = 0;

  // Held while events are applied and delivered, and while a watch registers,
  // so each watcher sees every event exactly once and in order.
  std::mutex watch_mu_;
  std::vector<Watcher> watchers_;
  uint64_t next_watcher_ = 1;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<std::unique_ptr<WriteRequest>> queue_;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace minik::store
