#include "store/mvcc.h"

#include <algorithm>
#include <chrono>
#include <unordered_map>

namespace minik::store {
namespace {

bool HasPrefix(const std::string& key, const std::string& prefix) {
  return key.compare(0, prefix.size(), prefix) == 0;
}

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

class MvccStore::WatchHandle : public Watch {
 public:
  WatchHandle(MvccStore* store, uint64_t id) : store_(store), id_(id) {}
  ~WatchHandle() override { store_->RemoveWatcher(id_); }

 private:
  MvccStore* store_;
  uint64_t id_;
};

int64_t MvccStore::EntryBytes(const Journal::HistoryEntry& h) {
  // The value, the key, and what holds them.
  return static_cast<int64_t>((h.event.kv.value ? h.event.kv.value->size() : 0) +
                              h.event.kv.key.size() + 128);
}

MvccStore::MvccStore(std::unique_ptr<Journal> journal, StoreOptions opts)
    : journal_(std::move(journal)), opts_(std::move(opts)) {
  if (journal_) {
    Journal::State s = journal_->Load();
    current_ = std::move(s.current);
    history_.assign(std::make_move_iterator(s.history.begin()),
                    std::make_move_iterator(s.history.end()));
    for (const auto& h : history_) {
      history_bytes_ += EntryBytes(h);
    }
    revision_ = s.revision;
    compacted_ =
        std::max(s.compacted_revision,
                 history_.empty() ? revision_ : history_.front().event.kv.mod_revision - 1);
    journal_compacted_ = compacted_;
  }
  writer_ = std::thread([this] { WriterLoop(); });
}

MvccStore::~MvccStore() {
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  writer_.join();
}

int64_t MvccStore::Revision() const {
  std::shared_lock lock(state_mu_);
  return revision_;
}

int64_t MvccStore::CompactedRevision() const {
  std::shared_lock lock(state_mu_);
  return compacted_;
}

KeyValue MvccStore::Get(const std::string& key) const {
  std::shared_lock lock(state_mu_);
  auto it = current_.find(key);
  if (it == current_.end()) {
    throw NotFound(key);
  }
  return it->second;
}

ListResult MvccStore::List(const std::string& prefix, const ListOptions& opts) const {
  ListResult r;
  std::shared_lock lock(state_mu_);
  int64_t at = opts.revision == 0 ? revision_ : opts.revision;
  if (at < compacted_) {
    throw Expired("revision " + std::to_string(at) +
                  " has been compacted (oldest kept: " + std::to_string(compacted_) + ")");
  }
  r.revision = std::min(at, revision_);
  // Keys changed after `at`, with the state each had at `at` (nullopt: absent).
  std::map<std::string, std::optional<KeyValue>> past;
  for (auto it = history_.rbegin(); it != history_.rend() && it->event.kv.mod_revision > at; ++it) {
    const Event& e = it->event;
    if (HasPrefix(e.kv.key, prefix)) {
      past[e.kv.key] = e.prev;
    }
  }
  auto emit = [&](const KeyValue& kv) -> bool {
    if (kv.key <= opts.start_after && !opts.start_after.empty()) {
      return true;
    }
    if (opts.filter && !opts.filter(kv)) {
      return true;
    }
    if (opts.limit && r.items.size() >= opts.limit) {
      r.more = true;
      return false;
    }
    r.items.push_back(kv);
    return true;
  };
  auto cur = current_.lower_bound(std::max(prefix, opts.start_after));
  auto old = past.begin();
  while (true) {
    bool cur_ok = cur != current_.end() && HasPrefix(cur->first, prefix);
    bool old_ok = old != past.end();
    if (!cur_ok && !old_ok) {
      break;
    }
    bool keep_going = true;
    if (cur_ok && (!old_ok || cur->first < old->first)) {
      keep_going = emit(cur->second);
      ++cur;
    } else {
      if (cur_ok && cur->first == old->first) {
        ++cur;
      }
      if (old->second) {
        keep_going = emit(*old->second);
      }
      ++old;
    }
    if (!keep_going) {
      // Count what is left, for `remainingItemCount`.
      size_t n = 1;
      for (; cur != current_.end() && HasPrefix(cur->first, prefix); ++cur) {
        ++n;
      }
      r.remaining = n;
      break;
    }
  }
  return r;
}

KeyValue MvccStore::Create(const std::string& key, std::string value) {
  return Submit(Op::kCreate, key, std::move(value), 0);
}

KeyValue MvccStore::Update(const std::string& key, std::string value, int64_t expected) {
  return Submit(Op::kUpdate, key, std::move(value), expected);
}

KeyValue MvccStore::Delete(const std::string& key, int64_t expected) {
  return Submit(Op::kDelete, key, "", expected);
}

KeyValue MvccStore::Submit(Op op, const std::string& key, std::string value, int64_t expected) {
  auto req = std::make_unique<WriteRequest>();
  req->op = op;
  req->key = key;
  req->value = std::make_shared<const std::string>(std::move(value));
  req->expected = expected;
  auto fut = req->done.get_future();
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_) {
      throw StorageError("the store is shutting down");
    }
    queue_.push_back(std::move(req));
  }
  queue_cv_.notify_one();
  return fut.get();
}

void MvccStore::WriterLoop() {
  for (;;) {
    std::vector<std::unique_ptr<WriteRequest>> batch;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) {
        return;
      }
      batch.swap(queue_);
    }
    ProcessBatch(batch);
  }
}

void MvccStore::ProcessBatch(std::vector<std::unique_ptr<WriteRequest>>& batch) {
  // Validate in arrival order against the current state plus this batch's
  // earlier writes; failures are answered at once and take no revision.
  std::unordered_map<std::string, std::optional<KeyValue>> overlay;
  std::vector<Journal::HistoryEntry> events;
  std::vector<WriteRequest*> accepted;
  int64_t rev;
  {
    std::shared_lock lock(state_mu_);
    rev = revision_;
    int64_t now = UnixNow();
    for (auto& req : batch) {
      std::optional<KeyValue> existing;
      if (auto o = overlay.find(req->key); o != overlay.end()) {
        existing = o->second;
      } else if (auto c = current_.find(req->key); c != current_.end()) {
        existing = c->second;
      }
      try {
        if (req->op == Op::kCreate && existing) {
          throw AlreadyExists(req->key);
        }
        if (req->op != Op::kCreate && !existing) {
          throw NotFound(req->key);
        }
        if (req->op != Op::kCreate && req->expected != 0 &&
            existing->mod_revision != req->expected) {
          throw Conflict(req->key, existing->mod_revision);
        }
      } catch (...) {
        req->done.set_exception(std::current_exception());
        continue;
      }
      Journal::HistoryEntry h;
      h.unix_seconds = now;
      h.event.prev = existing;
      h.event.kv.key = req->key;
      h.event.kv.mod_revision = ++rev;
      if (req->op == Op::kDelete) {
        h.event.type = Event::Type::kDelete;
        h.event.kv.value = existing->value;
        h.event.kv.create_revision = existing->create_revision;
        overlay[req->key] = std::nullopt;
      } else {
        h.event.kv.value = req->value;
        h.event.kv.create_revision = existing ? existing->create_revision : rev;
        overlay[req->key] = h.event.kv;
      }
      events.push_back(std::move(h));
      accepted.push_back(req.get());
    }
  }
  if (events.empty()) {
    return;
  }
  if (journal_) {
    try {
      journal_->Append(events, rev);
    } catch (const std::exception& e) {
      for (auto* req : accepted) {
        req->done.set_exception(std::make_exception_ptr(StorageError(e.what())));
      }
      return;
    }
  }
  std::vector<Event> delivered;
  {
    std::lock_guard wlock(watch_mu_);
    {
      std::unique_lock lock(state_mu_);
      for (auto& h : events) {
        if (h.event.type == Event::Type::kDelete) {
          current_.erase(h.event.kv.key);
        } else {
          current_[h.event.kv.key] = h.event.kv;
        }
        history_.push_back(h);
        history_bytes_ += EntryBytes(h);
      }
      revision_ = rev;
      // Drop history older than the window, or beyond its size.
      int64_t cutoff = UnixNow() - opts_.history_seconds;
      int64_t compact_to = compacted_;
      int64_t bytes = history_bytes_;
      for (auto& h : history_) {
        if (h.unix_seconds >= cutoff && bytes <= opts_.history_bytes) {
          break;
        }
        compact_to = h.event.kv.mod_revision;
        bytes -= EntryBytes(h);
      }
      if (compact_to > compacted_) {
        CompactLocked(compact_to);
      }
    }
    for (auto& w : watchers_) {
      std::vector<Event> mine;
      for (auto& h : events) {
        if (HasPrefix(h.event.kv.key, w.prefix)) {
          mine.push_back(h.event);
        }
      }
      if (!mine.empty()) {
        w.sink->OnEvents(mine);
      }
    }
  }
  for (size_t i = 0; i < accepted.size(); ++i) {
    accepted[i]->done.set_value(events[i].event.kv);
  }
  if (journal_ && compacted_ > journal_compacted_ + 1000) {
    try {
      journal_->Compact(compacted_);
      journal_compacted_ = compacted_;
    } catch (const std::exception&) {
      // History rows left behind are harmless; the next compaction retries.
    }
  }
}

void MvccStore::CompactLocked(int64_t revision) {
  while (!history_.empty() && history_.front().event.kv.mod_revision <= revision) {
    history_bytes_ -= EntryBytes(history_.front());
    history_.pop_front();
  }
  compacted_ = std::max(compacted_, std::min(revision, revision_));
}

void MvccStore::Compact(int64_t revision) {
  std::lock_guard wlock(watch_mu_);
  std::unique_lock lock(state_mu_);
  CompactLocked(revision);
}

std::unique_ptr<Watch> MvccStore::WatchPrefix(const std::string& prefix, int64_t after_revision,
                                              std::shared_ptr<WatchSink> sink) {
  std::lock_guard wlock(watch_mu_);
  std::vector<Event> backlog;
  {
    std::shared_lock lock(state_mu_);
    if (after_revision < compacted_) {
      throw Expired("too old resource version: " + std::to_string(after_revision) + " (" +
                    std::to_string(compacted_) + ")");
    }
    auto it = std::upper_bound(
        history_.begin(), history_.end(), after_revision,
        [](int64_t rev, const Journal::HistoryEntry& h) { return rev < h.event.kv.mod_revision; });
    for (; it != history_.end(); ++it) {
      if (HasPrefix(it->event.kv.key, prefix)) {
        backlog.push_back(it->event);
      }
    }
  }
  if (!backlog.empty()) {
    sink->OnEvents(backlog);
  }
  uint64_t id = next_watcher_++;
  watchers_.push_back(Watcher{id, prefix, std::move(sink)});
  return std::make_unique<WatchHandle>(this, id);
}

void MvccStore::RemoveWatcher(uint64_t id) {
  std::lock_guard wlock(watch_mu_);
  watchers_.erase(std::remove_if(watchers_.begin(), watchers_.end(),
                                 [&](const Watcher& w) { return w.id == id; }),
                  watchers_.end());
}

}  // namespace minik::store
