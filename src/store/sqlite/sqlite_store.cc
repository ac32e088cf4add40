// The `sqlite` store: the shared MVCC state machine with a SQLite journal in
// WAL mode and synchronous=FULL. Each batch of writes is one transaction, so
// one fsync acknowledges every write that arrived while the last one ran.
//
// Tables: `kv` holds the current value of every key; `log` holds the history
// window (what watches and lists at past revisions need after a restart);
// `meta` holds the revision counter and the compacted revision.

#include <sqlite3.h>

#include <unordered_map>

#include "common/fs.h"
#include "store/mvcc.h"

namespace minik::store {
namespace {

class Db {
 public:
  explicit Db(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw StorageError("open '" + path + "': " + msg);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~Db() { sqlite3_close_v2(db_); }
  sqlite3* get() { return db_; }
  void Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      throw StorageError("sqlite: " + msg + " (in: " + sql.substr(0, 60) + ")");
    }
  }
  [[noreturn]] void Fail(const std::string& what) {
    throw StorageError("sqlite " + what + ": " + sqlite3_errmsg(db_));
  }

 private:
  sqlite3* db_ = nullptr;
};

class Stmt {
 public:
  Stmt(Db& db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v3(db.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr) !=
        SQLITE_OK) {
      db.Fail(std::string("prepare ") + sql);
    }
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Stmt& BindBlob(int i, const std::string& v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Stmt& BindNull(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  bool Step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) {
      return true;
    }
    if (rc != SQLITE_DONE) {
      db_.Fail("step");
    }
    return false;
  }
  void Run() {
    Step();
    Reset();
  }
  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  int64_t Int(int col) { return sqlite3_column_int64(s_, col); }
  bool IsNull(int col) { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string Text(int col) {
    const void* p = sqlite3_column_blob(s_, col);
    int n = sqlite3_column_bytes(s_, col);
    return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
  }

 private:
  Db& db_;
  sqlite3_stmt* s_ = nullptr;
};

class SqliteJournal : public Journal {
 public:
  explicit SqliteJournal(const std::string& dir)
      : db_((fs::MakeDirs(dir, 0700), dir + "/state.db")) {
    db_.Exec("PRAGMA journal_mode=WAL");
    db_.Exec("PRAGMA synchronous=FULL");
    db_.Exec(
        "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL,"
        " create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS log (rev INTEGER PRIMARY KEY, key TEXT NOT NULL,"
        " deleted INTEGER NOT NULL, value BLOB, create_rev INTEGER NOT NULL,"
        " prev_rev INTEGER NOT NULL, ts INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);");
    put_ = std::make_unique<Stmt>(
        db_, "INSERT OR REPLACE INTO kv (key, value, create_rev, mod_rev) VALUES (?1, ?2, ?3, ?4)");
    del_ = std::make_unique<Stmt>(db_, "DELETE FROM kv WHERE key = ?1");
    log_ = std::make_unique<Stmt>(
        db_,
        "INSERT INTO log (rev, key, deleted, value, create_rev, prev_rev, ts)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    meta_ =
        std::make_unique<Stmt>(db_, "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)");
  }

  State Load() override {
    State s;
    {
      Stmt q(db_, "SELECT key, value, create_rev, mod_rev FROM kv");
      while (q.Step()) {
        KeyValue kv;
        kv.key = q.Text(0);
        kv.value = std::make_shared<const std::string>(q.Text(1));
        kv.create_revision = q.Int(2);
        kv.mod_revision = q.Int(3);
        s.current.emplace(kv.key, std::move(kv));
      }
    }
    {
      Stmt q(db_, "SELECT name, value FROM meta");
      while (q.Step()) {
        if (q.Text(0) == "revision") {
          s.revision = q.Int(1);
        } else if (q.Text(0) == "compacted") {
          s.compacted_revision = q.Int(1);
        }
      }
    }
    // Rebuild history with the previous value of each event: the previous log
    // row of the same key. Where that row is gone, history cannot go further back.
    std::unordered_map<std::string, KeyValue> last;
    Stmt q(db_,
           "SELECT rev, key, deleted, value, create_rev, prev_rev, ts FROM log WHERE rev > ?1"
           " ORDER BY rev");
    q.Bind(1, s.compacted_revision);
    while (q.Step()) {
      HistoryEntry h;
      int64_t rev = q.Int(0);
      std::string key = q.Text(1);
      bool deleted = q.Int(2) != 0;
      int64_t prev_rev = q.Int(5);
      h.unix_seconds = q.Int(6);
      std::optional<KeyValue> prev;
      bool known = true;
      if (prev_rev != 0) {
        auto it = last.find(key);
        if (it != last.end() && it->second.mod_revision == prev_rev) {
          prev = it->second;
        } else {
          known = false;
        }
      }
      h.event.type = deleted ? Event::Type::kDelete : Event::Type::kPut;
      h.event.prev = prev;
      h.event.kv.key = key;
      h.event.kv.mod_revision = rev;
      h.event.kv.create_revision = q.Int(4);
      if (deleted) {
        h.event.kv.value = prev ? prev->value : std::make_shared<const std::string>();
        last.erase(key);
      } else {
        h.event.kv.value = std::make_shared<const std::string>(q.Text(3));
        last[key] = h.event.kv;
      }
      if (!known) {
        s.history.clear();
        s.compacted_revision = rev;
        continue;
      }
      s.history.push_back(std::move(h));
    }
    if (s.revision == 0 && !s.current.empty()) {
      for (auto& [_, kv] : s.current) {
        s.revision = std::max(s.revision, kv.mod_revision);
      }
    }
    return s;
  }

  void Append(const std::vector<HistoryEntry>& events, int64_t revision) override {
    db_.Exec("BEGIN IMMEDIATE");
    try {
      for (const auto& h : events) {
        const Event& e = h.event;
        if (e.type == Event::Type::kDelete) {
          del_->Bind(1, e.kv.key).Run();
        } else {
          put_->Bind(1, e.kv.key)
              .BindBlob(2, *e.kv.value)
              .Bind(3, e.kv.create_revision)
              .Bind(4, e.kv.mod_revision)
              .Run();
        }
        log_->Bind(1, e.kv.mod_revision).Bind(2, e.kv.key).Bind(3, e.type == Event::Type::kDelete);
        if (e.type == Event::Type::kDelete) {
          log_->BindNull(4);
        } else {
          log_->BindBlob(4, *e.kv.value);
        }
        log_->Bind(5, e.kv.create_revision)
            .Bind(6, e.prev ? e.prev->mod_revision : 0)
            .Bind(7, h.unix_seconds)
            .Run();
      }
      meta_->Bind(1, std::string("revision")).Bind(2, revision).Run();
      db_.Exec("COMMIT");
    } catch (...) {
      put_->Reset();
      del_->Reset();
      log_->Reset();
      meta_->Reset();
      try {
        db_.Exec("ROLLBACK");
      } catch (const StorageError&) {
        // The transaction is gone already; the original error is what matters.
      }
      throw;
    }
  }

  void Compact(int64_t revision) override {
    db_.Exec("BEGIN IMMEDIATE");
    try {
      Stmt d(db_, "DELETE FROM log WHERE rev <= ?1");
      d.Bind(1, revision).Run();
      meta_->Bind(1, std::string("compacted")).Bind(2, revision).Run();
      db_.Exec("COMMIT");
    } catch (...) {
      db_.Exec("ROLLBACK");
      throw;
    }
  }

 private:
  Db db_;
  std::unique_ptr<Stmt> put_, del_, log_, meta_;
};

}  // namespace

std::unique_ptr<Store> NewSqliteStore(const StoreOptions& opts) {
  return std::make_unique<MvccStore>(std::make_unique<SqliteJournal>(opts.data_dir), opts);
}

}  // namespace minik::store
