#pragma once
// How components talk to the API server: a small Kubernetes REST client
// (HTTPS with a client certificate) and informers (list, then watch, with a
// shared cache and handlers), as client-go provides them.

#include <atomic>
#include <chrono>
#include <condition_variable>
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
  // Sent with every request; the API server records writes under its product
  // name ("kube-controller-manager/v1.32.0 (linux/amd64) minik").
  std::string user_agent;
  // Reads a directory with ca.crt and NAME.crt / NAME.key; the user agent is
  // the component's upstream name.
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
  // Streams watch events to `on_event` (which may take them apart) until the
  // stream ends, `on_event` returns false or `stop` is set. Throws ApiError
  // when the request fails.
  void Watch(const std::string& path, const std::function<bool(json&)>& on_event,
             const std::atomic<bool>& stop);
  const Config& config() const { return config_; }

 private:
  json Do(const std::string& method, const std::string& path, const std::string& body,
          const std::string& content_type);
  http::ClientOptions Options(long timeout_ms) const;
  Config config_;
  // Idle connections, reused by whichever thread asks next (shared, hence the mutex).
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<http::Client>> pool_;
};

using Object = std::shared_ptr<const json>;

// The cache key of an object: "namespace/name", or "name" when cluster-scoped.
std::string KeyOf(const json& obj);

// Keeps a cache of one resource up to date with list + watch, shared by every
// controller that needs the resource, and calls their handlers from its own
// thread, one event at a time, in order. Handlers must not block: they queue.
class Informer {
 public:
  struct Handlers {
    std::function<void(const Object& obj)> on_add;
    std::function<void(const Object& old_obj, const Object& obj)> on_update;
    std::function<void(const Object& obj)> on_delete;
  };
  Informer(std::shared_ptr<Client> client, ResourcePath resource, std::string label_selector = "",
           std::string field_selector = "");
  ~Informer();
  // Handlers added after the start see the current objects as adds first.
  void AddHandlers(Handlers handlers);
  void Start();
  void Stop();
  // Asks the watch to end without waiting for it (Stop waits).
  void RequestStop();
  // Waits until the first list has filled the cache; false on timeout or stop.
  bool WaitForSync(std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
  Object Get(const std::string& key) const;
  std::vector<Object> List() const;
  std::vector<Object> ListNamespace(const std::string& ns) const;
  bool synced() const { return synced_; }
  const ResourcePath& resource() const { return resource_; }

 private:
  void Run();
  void Dispatch(const std::function<void(const Handlers&)>& call);

  std::shared_ptr<Client> client_;
  ResourcePath resource_;
  std::string label_selector_, field_selector_;
  mutable std::mutex mu_;
  mutable std::condition_variable synced_cv_;
  std::map<std::string, Object> cache_;
  std::vector<Handlers> handlers_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> synced_{false};
  std::thread thread_;
};

// One informer per resource, shared by every controller of a process.
class InformerFactory {
 public:
  explicit InformerFactory(std::shared_ptr<Client> client) : client_(std::move(client)) {}
  ~InformerFactory() { Stop(); }
  std::shared_ptr<Informer> For(const ResourcePath& resource);
  void Start();
  void Stop();
  bool WaitForSync(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  std::shared_ptr<Client> client() const { return client_; }

 private:
  std::shared_ptr<Client> client_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Informer>> informers_;
  bool started_ = false;
};

// Resources the controllers use, by their REST paths.
namespace resources {
inline const ResourcePath kPods{"/api/v1", "pods", true};
inline const ResourcePath kNodes{"/api/v1", "nodes", false};
inline const ResourcePath kNamespaces{"/api/v1", "namespaces", false};
inline const ResourcePath kServices{"/api/v1", "services", true};
inline const ResourcePath kEndpoints{"/api/v1", "endpoints", true};
inline const ResourcePath kEvents{"/api/v1", "events", true};
inline const ResourcePath kServiceAccounts{"/api/v1", "serviceaccounts", true};
inline const ResourcePath kPersistentVolumes{"/api/v1", "persistentvolumes", false};
inline const ResourcePath kPersistentVolumeClaims{"/api/v1", "persistentvolumeclaims", true};
inline const ResourcePath kDeployments{"/apis/apps/v1", "deployments", true};
inline const ResourcePath kReplicaSets{"/apis/apps/v1", "replicasets", true};
inline const ResourcePath kStatefulSets{"/apis/apps/v1", "statefulsets", true};
inline const ResourcePath kDaemonSets{"/apis/apps/v1", "daemonsets", true};
inline const ResourcePath kControllerRevisions{"/apis/apps/v1", "controllerrevisions", true};
inline const ResourcePath kJobs{"/apis/batch/v1", "jobs", true};
inline const ResourcePath kCronJobs{"/apis/batch/v1", "cronjobs", true};
inline const ResourcePath kLeases{"/apis/coordination.k8s.io/v1", "leases", true};
inline const ResourcePath kEndpointSlices{"/apis/discovery.k8s.io/v1", "endpointslices", true};
inline const ResourcePath kStorageClasses{"/apis/storage.k8s.io/v1", "storageclasses", false};
}  // namespace resources

}  // namespace minik::client
