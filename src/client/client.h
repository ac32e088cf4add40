#pragma once
// How components talk to the API server: a small Kubernetes REST client
// (HTTPS with a client certificate) and informers (list, then watch, with a
// shared cache and handlers), as client-go provides them.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/http_client.h"
#include "common/json.h"

namespace minik::client {

struct Config {
  std::string server;  // https://127.0.0.1:8443
  std::string ca_pem, cert_pem, key_pem;
  // Reads a directory with ca.crt and NAME.crt / NAME.key.
  static Config FromCertDir(const std::string& server, const std::string& dir,
                            const std::string& name);
};

// A failed request: the HTTP status (0 when no answer arrived) and the Status message.
class ApiError : public std::runtime_error {
 public:
  ApiError(int code, const std::string& what) : std::runtime_error(what), code(code) {}
  int code;
};

// Paths of a resource: "/api/v1" or "/apis/apps/v1", plural, namespace.
struct ResourcePath {
  std::string group_version_path;
  std::string plural;
  bool namespaced = true;
  std::string Collection(const std::string& ns) const;
  std::string Item(const std::string& ns, const std::string& name) const;
};

class Client {
 public:
  explicit Client(Config config);
  json Get(const std::string& path);
  json Post(const std::string& path, const json& body);
  json Put(const std::string& path, const json& body);
  json Patch(const std::string& path, const json& patch,
             const std::string& type = "application/merge-patch+json");
  json Delete(const std::string& path, const json& options = json::object());
  // Streams watch events to `on_event` until the stream ends, `on_event`
  // returns false or `stop` is set. Throws ApiError when the request fails.
  void Watch(const std::string& path, const std::function<bool(const json&)>& on_event,
             const std::atomic<bool>& stop);

 private:
  json Do(const std::string& method, const std::string& path, const std::string& body,
          const std::string& content_type);
  http::ClientOptions Options(long timeout_ms) const;
  Config config_;
  // Idle connections, reused by whichever thread asks next (shared, hence the mutex).
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<http::Client>> pool_;
};

// Keeps a cache of one resource up to date with list + watch and calls the
// handlers from its own thread, one event at a time.
class Informer {
 public:
  struct Handlers {
    std::function<void(const json& obj)> on_add;
    std::function<void(const json& old_obj, const json& obj)> on_update;
    std::function<void(const json& obj)> on_delete;
  };
  Informer(std::shared_ptr<Client> client, ResourcePath resource, Handlers handlers,
           std::string label_selector = "");
  ~Informer();
  void Start();
  void Stop();
  // A copy of the cached object "ns/name" (or "name"); null when absent.
  json Get(const std::string& key) const;
  std::vector<json> List() const;
  bool synced() const { return synced_; }

 private:
  void Run();
  static std::string KeyOf(const json& obj);

  std::shared_ptr<Client> client_;
  ResourcePath resource_;
  Handlers handlers_;
  std::string selector_;
  mutable std::mutex mu_;
  std::map<std::string, json> cache_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> synced_{false};
  std::thread thread_;
};

}  // namespace minik::client
