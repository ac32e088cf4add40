// One suite for every Store implementation: each TEST_CASE runs against the
// `memory` and `sqlite` backends.

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <mutex>
#include <thread>

#include "store/registry.h"
#include "testing.h"

using namespace minik::store;

namespace {

struct Collect : WatchSink {
  std::mutex mu;
  std::vector<Event> events;
  void OnEvents(const std::vector<Event>& e) override {
    std::lock_guard lock(mu);
    events.insert(events.end(), e.begin(), e.end());
  }
  size_t size() {
    std::lock_guard lock(mu);
    return events.size();
  }
};

std::unique_ptr<Store> Open(const std::string& backend, const std::string& dir, int history = 300,
                            int64_t history_bytes = 256LL << 20) {
  RegisterBuiltins();
  StoreOptions o;
  o.data_dir = dir;
  o.history_seconds = history;
  o.history_bytes = history_bytes;
  return Create(backend, o);
}

}  // namespace

TEST_CASE("store basics", "[store]") {
  auto backend = GENERATE(as<std::string>{}, "memory", "sqlite");
  minik::testing::TempDir tmp;
  auto s = Open(backend, tmp.path());
  INFO(backend);

  SECTION("create, get, update with compare-and-swap, delete") {
    auto a = s->Create("/registry/pods/ns/a", "A1");
    CHECK(a.mod_revision == 1);
    CHECK(a.create_revision == 1);
    CHECK_THROWS_AS(s->Create("/registry/pods/ns/a", "again"), AlreadyExists);
    CHECK(*s->Get("/registry/pods/ns/a").value == "A1");
    auto b = s->Update("/registry/pods/ns/a", "A2", a.mod_revision);
    CHECK(b.mod_revision == 2);
    CHECK(b.create_revision == 1);
    try {
      s->Update("/registry/pods/ns/a", "stale", a.mod_revision);
      FAIL("a stale update must conflict");
    } catch (const Conflict& c) {
      CHECK(c.current_revision == 2);
    }
    CHECK(*s->Get("/registry/pods/ns/a").value == "A2");
    CHECK_THROWS_AS(s->Update("/registry/pods/ns/missing", "x", 0), NotFound);
    CHECK_THROWS_AS(s->Delete("/registry/pods/ns/a", 1), Conflict);
    auto d = s->Delete("/registry/pods/ns/a", 2);
    CHECK(d.mod_revision == 3);
    CHECK(*d.value == "A2");
    CHECK_THROWS_AS(s->Get("/registry/pods/ns/a"), NotFound);
    CHECK(s->Revision() == 3);
  }

  SECTION("list by prefix, paging, and at a past revision") {
    s->Create("/registry/pods/a/1", "a1");
    s->Create("/registry/pods/a/2", "a2");
    s->Create("/registry/pods/b/1", "b1");
    s->Create("/registry/podsx/a/1", "not a pod");
    int64_t rev = s->Revision();
    s->Update("/registry/pods/a/1", "a1-v2", 0);
    s->Delete("/registry/pods/a/2", 0);
    s->Create("/registry/pods/c/1", "c1");

    auto now = s->List("/registry/pods/");
    REQUIRE(now.items.size() == 3);
    CHECK(*now.items[0].value == "a1-v2");
    CHECK(now.items[2].key == "/registry/pods/c/1");

    ListOptions past;
    past.revision = rev;
    auto then = s->List("/registry/pods/", past);
    REQUIRE(then.items.size() == 3);
    CHECK(*then.items[0].value == "a1");
    CHECK(*then.items[1].value == "a2");
    CHECK(*then.items[2].value == "b1");
    CHECK(then.revision == rev);

    ListOptions page;
    page.limit = 2;
    auto p1 = s->List("/registry/pods/", page);
    REQUIRE(p1.items.size() == 2);
    CHECK(p1.more);
    page.start_after = p1.items.back().key;
    page.revision = p1.revision;
    auto p2 = s->List("/registry/pods/", page);
    REQUIRE(p2.items.size() == 1);
    CHECK_FALSE(p2.more);
    CHECK(p2.items[0].key == "/registry/pods/c/1");
  }

  SECTION("watch delivers every change after a revision, in order") {
    s->Create("/registry/cm/ns/x", "x1");
    int64_t from = s->Revision();
    s->Update("/registry/cm/ns/x", "x2", 0);
    auto sink = std::make_shared<Collect>();
    auto w = s->WatchPrefix("/registry/cm/", from, sink);
    REQUIRE(sink->size() == 1);  // the backlog
    s->Create("/registry/other/y", "ignored");
    s->Delete("/registry/cm/ns/x", 0);
    REQUIRE(sink->size() == 2);
    CHECK(sink->events[0].type == Event::Type::kPut);
    CHECK(*sink->events[0].prev->value == "x1");
    CHECK(sink->events[1].type == Event::Type::kDelete);
    CHECK(*sink->events[1].kv.value == "x2");
    CHECK(sink->events[1].kv.mod_revision == s->Revision());
    w.reset();
    s->Create("/registry/cm/ns/z", "after cancel");
    CHECK(sink->size() == 2);
  }

  SECTION("compaction: watches and lists from before it are Expired") {
    s->Create("/k/1", "1");
    s->Create("/k/2", "2");
    s->Create("/k/3", "3");
    s->Compact(2);
    CHECK(s->CompactedRevision() == 2);
    auto sink = std::make_shared<Collect>();
    CHECK_THROWS_AS(s->WatchPrefix("/k/", 1, sink), Expired);
    ListOptions o;
    o.revision = 1;
    CHECK_THROWS_AS(s->List("/k/", o), Expired);
    auto w = s->WatchPrefix("/k/", 2, sink);
    CHECK(sink->size() == 1);
  }

  SECTION("concurrent writers all get distinct, increasing revisions") {
    constexpr int kThreads = 8, kEach = 50;
    std::vector<std::thread> ts;
    std::mutex mu;
    std::vector<int64_t> revs;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          auto kv = s->Create("/c/" + std::to_string(t) + "/" + std::to_string(i), "v");
          std::lock_guard lock(mu);
          revs.push_back(kv.mod_revision);
        }
      });
    }
    for (auto& t : ts) {
      t.join();
    }
    std::sort(revs.begin(), revs.end());
    CHECK(std::adjacent_find(revs.begin(), revs.end()) == revs.end());
    CHECK(revs.back() == kThreads * kEach);
    CHECK(s->List("/c/").items.size() == kThreads * kEach);
  }
}

TEST_CASE("sqlite keeps state and history across a reopen", "[store][sqlite]") {
  minik::testing::TempDir tmp;
  int64_t watch_from;
  {
    auto s = Open("sqlite", tmp.path());
    s->Create("/r/a", "a1");
    watch_from = s->Revision();
    s->Update("/r/a", "a2", 0);
    s->Create("/r/b", "b1");
    s->Delete("/r/b", 0);
  }
  auto s = Open("sqlite", tmp.path());
  CHECK(s->Revision() == 4);
  CHECK(*s->Get("/r/a").value == "a2");
  CHECK_THROWS_AS(s->Get("/r/b"), NotFound);
  auto sink = std::make_shared<Collect>();
  auto w = s->WatchPrefix("/r/", watch_from, sink);
  REQUIRE(sink->size() == 3);
  CHECK(*sink->events[0].prev->value == "a1");
  CHECK(sink->events[2].type == Event::Type::kDelete);
  CHECK(*sink->events[2].kv.value == "b1");
  auto next = s->Create("/r/c", "c");
  CHECK(next.mod_revision == 5);
}

TEST_CASE("history older than the window is compacted", "[store]") {
  auto backend = GENERATE(as<std::string>{}, "memory", "sqlite");
  minik::testing::TempDir tmp;
  auto s = Open(backend, tmp.path(), /*history=*/0);
  s->Create("/h/1", "1");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  s->Create("/h/2", "2");
  CHECK(s->CompactedRevision() >= 1);
  auto sink = std::make_shared<Collect>();
  CHECK_THROWS_AS(s->WatchPrefix("/h/", 0, sink), Expired);
}

TEST_CASE("history beyond its size is compacted, the newest kept", "[store]") {
  auto backend = GENERATE(as<std::string>{}, "memory", "sqlite");
  minik::testing::TempDir tmp;
  auto s = Open(backend, tmp.path(), /*history=*/300, /*history_bytes=*/20 * 1024);
  std::string value(1000, 'x');
  auto kv = s->Create("/b/k", value);
  for (int i = 0; i < 100; ++i) {
    kv = s->Update("/b/k", value, kv.mod_revision);
  }
  // About 1 KB per revision: the first ~80 of 101 are gone, the last ones kept.
  CHECK(s->CompactedRevision() > 60);
  CHECK(s->CompactedRevision() < kv.mod_revision - 5);
  auto sink = std::make_shared<Collect>();
  CHECK_THROWS_AS(s->WatchPrefix("/b/", 1, sink), Expired);
  auto w = s->WatchPrefix("/b/", kv.mod_revision - 5, sink);
  CHECK(sink->size() == 5);
  CHECK(*s->Get("/b/k").value == value);  // current values never go
}
