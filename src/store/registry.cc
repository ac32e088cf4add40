#include "store/registry.h"

#include <map>
#include <mutex>

#include "common/error.h"

namespace minik::store {

std::unique_ptr<Store> NewMemoryStore(const StoreOptions& opts);
std::unique_ptr<Store> NewSqliteStore(const StoreOptions& opts);

namespace {

std::mutex mu;
std::map<std::string, Factory>& Factories() {
  static std::map<std::string, Factory> f;
  return f;
}

}  // namespace

void Register(const std::string& name, Factory factory) {
  std::lock_guard lock(mu);
  if (!Factories().emplace(name, std::move(factory)).second) {
    throw Error("store '" + name + "' is registered twice");
  }
}

std::unique_ptr<Store> Create(const std::string& name, const StoreOptions& opts) {
  Factory f;
  {
    std::lock_guard lock(mu);
    auto it = Factories().find(name);
    if (it == Factories().end()) {
      std::string known;
      for (auto& [n, _] : Factories()) {
        known += (known.empty() ? "" : ", ") + n;
      }
      throw Error("unknown store '" + name + "' (known: " + known + ")");
    }
    f = it->second;
  }
  return f(opts);
}

std::vector<std::string> Names() {
  std::lock_guard lock(mu);
  std::vector<std::string> names;
  for (auto& [n, _] : Factories()) {
    names.push_back(n);
  }
  return names;
}

void RegisterBuiltins() {
  static std::once_flag once;
  std::call_once(once, [] {
    Register("memory", NewMemoryStore);
    Register("sqlite", NewSqliteStore);
  });
}

}  // namespace minik::store
