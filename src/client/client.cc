#include "client/client.h"

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

void Client::Watch(const std::string& path, const std::function<bool(const json&)>& on_event,
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
        size_t nl;
        while (keep && (nl = buffer.find('\n')) != std::string::npos) {
          std::string line = buffer.substr(0, nl);
          buffer.erase(0, nl + 1);
          if (line.empty()) {
            continue;
          }
          try {
            keep = on_event(json::parse(line));
          } catch (const json::exception& e) {
            log::Warn("watch {}: bad event: {}", path, e.what());
            keep = false;
          }
        }
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

Informer::Informer(std::shared_ptr<Client> client, ResourcePath resource, Handlers handlers,
                   std::string label_selector)
    : client_(std::move(client)),
      resource_(std::move(resource)),
      handlers_(std::move(handlers)),
      selector_(std::move(label_selector)) {}

Informer::~Informer() {
  Stop();
}

void Informer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Informer::Stop() {
  stop_ = true;
  if (thread_.joinable()) {
    thread_.join();
  }
}

std::string Informer::KeyOf(const json& obj) {
  std::string ns = GetString(obj, "metadata.namespace");
  std::string name = GetString(obj, "metadata.name");
  return ns.empty() ? name : ns + "/" + name;
}

json Informer::Get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = cache_.find(key);
  return it == cache_.end() ? json() : it->second;
}

std::vector<json> Informer::List() const {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  for (const auto& [_, v] : cache_) {
    out.push_back(v);
  }
  return out;
}

void Informer::Run() {
  std::string base = resource_.Collection("");
  std::string sel = selector_.empty() ? "" : "labelSelector=" + http::PercentEncode(selector_);
  auto backoff = std::chrono::milliseconds(200);
  while (!stop_) {
    try {
      // List, replace the cache (telling handlers what changed), then watch from there.
      json list = client_->Get(base + (sel.empty() ? "" : "?" + sel));
      std::string rv = GetString(list, "metadata.resourceVersion");
      std::map<std::string, json> fresh;
      for (auto& item : list["items"]) {
        fresh[KeyOf(item)] = item;
      }
      std::map<std::string, json> old;
      {
        std::lock_guard lock(mu_);
        old.swap(cache_);
        cache_ = fresh;
      }
      for (auto& [k, v] : fresh) {
        auto it = old.find(k);
        if (it == old.end()) {
          if (handlers_.on_add)
            handlers_.on_add(v);
        } else if (it->second != v && handlers_.on_update) {
          handlers_.on_update(it->second, v);
        }
      }
      for (auto& [k, v] : old) {
        if (!fresh.count(k) && handlers_.on_delete) {
          handlers_.on_delete(v);
        }
      }
      synced_ = true;
      backoff = std::chrono::milliseconds(200);
      bool expired = false;
      while (!stop_ && !expired) {
        std::string path =
            base + "?watch=true&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion=" + rv +
            (sel.empty() ? "" : "&" + sel);
        client_->Watch(
            path,
            [&](const json& ev) {
              std::string type = ev.value("type", "");
              const json& obj = ev["object"];
              if (type == "ERROR") {
                expired = true;
                return false;
              }
              std::string orv = GetString(obj, "metadata.resourceVersion");
              if (!orv.empty()) {
                rv = orv;
              }
              if (type == "BOOKMARK") {
                return true;
              }
              std::string key = KeyOf(obj);
              json prev;
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
              if (type == "DELETED") {
                if (handlers_.on_delete)
                  handlers_.on_delete(obj);
              } else if (prev.is_null()) {
                if (handlers_.on_add)
                  handlers_.on_add(obj);
              } else if (handlers_.on_update) {
                handlers_.on_update(prev, obj);
              }
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

}  // namespace minik::client
