#include "client/client.h"

#include <map>

#include <chrono>

#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"

namespace minik::client {

Config Config::FromCertDir(const std::string& server, const std::string& dir,
                           const std::string& name) {
  Config c;
  c.server = server;
  c.ca_pem = fs::ReadFile(dir + "/ca.crt");
  c.cert_pem = fs::ReadFile(dir + "/" + name + ".crt");
  c.key_pem = fs::ReadFile(dir + "/" + name + ".key");
  static const std::map<std::string, std::string> kUpstream = {
      {"controller-manager", "kube-controller-manager"},
      {"scheduler", "kube-scheduler"},
      {"proxy", "kube-proxy"},
      {"dns", "coredns"},
  };
  auto it = kUpstream.find(name);
  c.user_agent = (it == kUpstream.end() ? name : it->second) + "/v1.32.0 (linux/amd64) minik";
  return c;
}

std::string ResourcePath::Collection(const std::string& ns) const {
  if (namespaced && !ns.empty()) {
    return group_version_path + "/namespaces/" + ns + "/" + plural;
  }
  return group_version_path + "/" + plural;
}

std::string ResourcePath::Item(const std::string& ns, const std::string& name) const {
  return Collection(ns) + "/" + name;
}

Client::Client(Config config) : config_(std::move(config)) {}

http::ClientOptions Client::Options(long timeout_ms) const {
  http::ClientOptions o;
  o.ca_pem = config_.ca_pem;
  o.cert_pem = config_.cert_pem;
  o.key_pem = config_.key_pem;
  o.timeout_ms = timeout_ms;
  o.user_agent = config_.user_agent;
  return o;
}

json Client::Do(const std::string& method, const std::string& path, const std::string& body,
                const std::string& content_type) {
  std::unique_ptr<http::Client> c;
  {
    std::lock_guard lock(pool_mu_);
    if (!pool_.empty()) {
      c = std::move(pool_.back());
      pool_.pop_back();
    }
  }
  if (!c) {
    c = std::make_unique<http::Client>(config_.server, Options(30000));
  }
  http::ClientResponse r = c->Do(method, path, body, content_type);
  {
    std::lock_guard lock(pool_mu_);
    pool_.push_back(std::move(c));
  }
  if (r.status == 0) {
    throw ApiError(0, method + " " + path + ": " + r.error);
  }
  json j;
  try {
    j = json::parse(r.body);
  } catch (const json::exception&) {
    j = json::object();
  }
  if (r.status >= 300) {
    throw ApiError(r.status, method + " " + path + ": " + std::to_string(r.status) + " " +
                                 j.value("message", r.body));
  }
  return j;
}

json Client::Get(const std::string& path) {
  return Do("GET", path, "", "application/json");
}
json Client::Post(const std::string& path, const json& body) {
  return Do("POST", path, body.dump(), "application/json");
}
json Client::Put(const std::string& path, const json& body) {
  return Do("PUT", path, body.dump(), "application/json");
}
json Client::Patch(const std::string& path, const json& patch, const std::string& type) {
  return Do("PATCH", path, patch.dump(), type);
}
json Client::Delete(const std::string& path, const json& options) {
  return Do("DELETE", path, options.dump(), "application/json");
}

void Client::Watch(const std::string& path, const std::function<bool(json&)>& on_event,
                   const std::atomic<bool>& stop) {
  http::Client c(config_.server, Options(0));
  std::string buffer;
  bool keep = true;
  http::ClientResponse r = c.Stream(
      path,
      [&](std::string_view data) {
        if (stop) {
          return false;
        }
        buffer.append(data);
        // Every whole line of what arrived, then what is left moved once
        // (not once per line: a chunk can hold thousands of events).
        size_t start = 0, nl;
        while (keep && (nl = buffer.find('\n', start)) != std::string::npos) {
          std::string_view line(buffer.data() + start, nl - start);
          start = nl + 1;
          if (line.empty()) {
            continue;
          }
          try {
            json ev = json::parse(line);
            keep = on_event(ev);
          } catch (const json::exception& e) {
            log::Warn("watch {}: bad event: {}", path, e.what());
            keep = false;
          }
        }
        buffer.erase(0, start);
        return keep && !stop;
      },
      &stop);
  if (r.status >= 300) {
    throw ApiError(r.status, "watch " + path + ": " + std::to_string(r.status) + " " + r.body);
  }
  if (r.status == 0 && keep && !stop) {
    throw ApiError(0, "watch " + path + ": " + r.error);
  }
}

std::string KeyOf(const json& obj) {
  std::string ns = GetString(obj, "metadata.namespace");
  std::string name = GetString(obj, "metadata.name");
  return ns.empty() ? name : ns + "/" + name;
}

Informer::Informer(std::shared_ptr<Client> client, ResourcePath resource,
                   std::string label_selector, std::string field_selector)
    : client_(std::move(client)),
      resource_(std::move(resource)),
      label_selector_(std::move(label_selector)),
      field_selector_(std::move(field_selector)) {}

Informer::~Informer() {
  Stop();
}

void Informer::AddHandlers(Handlers handlers) {
  std::vector<Object> existing;
  {
    std::lock_guard lock(mu_);
    handlers_.push_back(handlers);
    for (const auto& [_, v] : cache_) {
      existing.push_back(v);
    }
  }
  if (handlers.on_add) {
    for (const auto& o : existing) {
      handlers.on_add(o);
    }
  }
}

void Informer::Start() {
  if (!thread_.joinable()) {
    thread_ = std::thread([this] { Run(); });
  }
}

void Informer::Stop() {
  RequestStop();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Informer::RequestStop() {
  stop_ = true;
  synced_cv_.notify_all();
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return synced_cv_.wait_for(lock, timeout, [&] { return synced_.load() || stop_.load(); }) &&
         synced_;
}

Object Informer::Get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = cache_.find(key);
  return it == cache_.end() ? nullptr : it->second;
}

std::vector<Object> Informer::List() const {
  std::lock_guard lock(mu_);
  std::vector<Object> out;
  out.reserve(cache_.size());
  for (const auto& [_, v] : cache_) {
    out.push_back(v);
  }
  return out;
}

std::vector<Object> Informer::ListNamespace(const std::string& ns) const {
  std::lock_guard lock(mu_);
  std::vector<Object> out;
  std::string prefix = ns + "/";
  for (auto it = cache_.lower_bound(prefix); it != cache_.end() && it->first.rfind(prefix, 0) == 0;
       ++it) {
    out.push_back(it->second);
  }
  return out;
}

void Informer::Dispatch(const std::function<void(const Handlers&)>& call) {
  std::vector<Handlers> hs;
  {
    std::lock_guard lock(mu_);
    hs = handlers_;
  }
  for (const auto& h : hs) {
    call(h);
  }
}

void Informer::Run() {
  std::string base = resource_.Collection("");
  std::string sel;
  if (!label_selector_.empty()) {
    sel += "&labelSelector=" + http::PercentEncode(label_selector_);
  }
  if (!field_selector_.empty()) {
    sel += "&fieldSelector=" + http::PercentEncode(field_selector_);
  }
  auto backoff = std::chrono::milliseconds(200);
  while (!stop_) {
    try {
      // List, replace the cache (telling handlers what changed), then watch from there.
      json list = client_->Get(base + (sel.empty() ? "" : "?" + sel.substr(1)));
      std::string rv = GetString(list, "metadata.resourceVersion");
      std::map<std::string, Object> fresh;
      for (auto& item : list["items"]) {
        if (!item.contains("kind")) {
          item["kind"] = list.value("kind", "").substr(0, list.value("kind", "").size() - 4);
          item["apiVersion"] = list.value("apiVersion", "");
        }
        // The key first: the right side of an assignment is evaluated before the left.
        std::string key = KeyOf(item);
        fresh[key] = std::make_shared<const json>(std::move(item));
      }
      std::map<std::string, Object> old;
      {
        std::lock_guard lock(mu_);
        old.swap(cache_);
        cache_ = fresh;
      }
      for (auto& [k, v] : fresh) {
        auto it = old.find(k);
        if (it == old.end()) {
          Dispatch([&](const Handlers& h) {
            if (h.on_add)
              h.on_add(v);
          });
        } else if (*it->second != *v) {
          Dispatch([&](const Handlers& h) {
            if (h.on_update)
              h.on_update(it->second, v);
          });
        }
      }
      for (auto& [k, v] : old) {
        if (!fresh.count(k)) {
          Dispatch([&](const Handlers& h) {
            if (h.on_delete)
              h.on_delete(v);
          });
        }
      }
      {
        std::lock_guard lock(mu_);
        synced_ = true;
      }
      synced_cv_.notify_all();
      backoff = std::chrono::milliseconds(200);
      bool expired = false;
      while (!stop_ && !expired) {
        std::string path = base + "?watch=true&allowWatchBookmarks=true&timeoutSeconds=300" +
                           "&resourceVersion=" + rv + sel;
        client_->Watch(
            path,
            [&](json& ev) {
              std::string type = ev.value("type", "");
              if (type == "ERROR") {
                expired = true;
                return false;
              }
              auto obj = std::make_shared<const json>(std::move(ev["object"]));
              std::string orv = GetString(*obj, "metadata.resourceVersion");
              if (!orv.empty()) {
                rv = orv;
              }
              if (type == "BOOKMARK") {
                return true;
              }
              std::string key = KeyOf(*obj);
              Object prev;
              {
                std::lock_guard lock(mu_);
                auto it = cache_.find(key);
                if (it != cache_.end()) {
                  prev = it->second;
                }
                if (type == "DELETED") {
                  cache_.erase(key);
                } else {
                  cache_[key] = obj;
                }
              }
              Dispatch([&](const Handlers& h) {
                if (type == "DELETED") {
                  if (h.on_delete)
                    h.on_delete(obj);
                } else if (!prev) {
                  if (h.on_add)
                    h.on_add(obj);
                } else if (h.on_update) {
                  h.on_update(prev, obj);
                }
              });
              return !stop_;
            },
            stop_);
      }
    } catch (const std::exception& e) {
      if (!stop_) {
        log::Debug("informer {}: {}; retrying", base, e.what());
        for (auto waited = std::chrono::milliseconds(0); waited < backoff && !stop_;
             waited += std::chrono::milliseconds(50)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      }
    }
  }
}

std::shared_ptr<Informer> InformerFactory::For(const ResourcePath& resource) {
  std::lock_guard lock(mu_);
  std::string key = resource.Collection("");
  auto it = informers_.find(key);
  if (it != informers_.end()) {
    return it->second;
  }
  auto inf = std::make_shared<Informer>(client_, resource);
  informers_[key] = inf;
  if (started_) {
    inf->Start();
  }
  return inf;
}

void InformerFactory::Start() {
  std::lock_guard lock(mu_);
  started_ = true;
  for (auto& [_, inf] : informers_) {
    inf->Start();
  }
}

void InformerFactory::Stop() {
  std::map<std::string, std::shared_ptr<Informer>> all;
  {
    std::lock_guard lock(mu_);
    all = informers_;
  }
  // All at once: an idle watch notices within about a second, and forty of
  // them one after the other would hold a shutdown for half a minute.
  for (auto& [_, inf] : all) {
    inf->RequestStop();
  }
  for (auto& [_, inf] : all) {
    inf->Stop();
  }
}

bool InformerFactory::WaitForSync(std::chrono::milliseconds timeout) {
  std::map<std::string, std::shared_ptr<Informer>> all;
  {
    std::lock_guard lock(mu_);
    all = informers_;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto& [_, inf] : all) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !inf->WaitForSync(left)) {
      return false;
    }
  }
  return true;
}

}  // namespace minik::client
