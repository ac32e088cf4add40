#pragma once
// What every controller shares: its context (client, informers, event
// recorder), a work queue of object keys with per-key retry backoff, and
// workers that call Sync one key at a time.

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"
#include "client/events.h"
#include "client/workqueue.h"
#include "controllers/controller_manager.h"

namespace minik::controllers {

struct Context {
  std::shared_ptr<client::Client> client;
  std::shared_ptr<client::InformerFactory> informers;
  std::shared_ptr<client::EventRecorder> events;
  std::string node_data_dir;  // where hostPath volumes of the storage provisioner live
  std::string root_ca_pem;    // the cluster CA, published as kube-root-ca.crt
};

class QueueController : public Controller {
 public:
  QueueController(std::string name, Context ctx, int workers = 1);
  ~QueueController() override;
  std::string name() const override { return name_; }
  void Start() override;
  void Stop() override;

 protected:
  // Brings the object `key` to its desired state. Throwing retries the key
  // with backoff (100 ms doubling to 30 s); returning normally forgets failures.
  virtual void Sync(const std::string& key) = 0;
  void Enqueue(const std::string& key) { queue_.Add(key); }
  void EnqueueAfter(const std::string& key, std::chrono::milliseconds d) {
    queue_.AddAfter(key, d);
  }
  void EnqueueObject(const client::Object& obj) { Enqueue(client::KeyOf(*obj)); }

  Context ctx_;

 private:
  void Work();
  std::string name_;
  int workers_;
  client::WorkQueue queue_;
  std::vector<std::thread> threads_;
  std::mutex failures_mu_;
  std::map<std::string, int> failures_;
};

// Tracks creations and deletions a controller asked for until its informer has
// seen them, so a lagging cache does not make it ask twice (client-go's
// ControllerExpectations).
class Expectations {
 public:
  void Expect(const std::string& key, int adds, int deletes);
  void CreationObserved(const std::string& key);
  void DeletionObserved(const std::string& key);
  // True when nothing is pending, or what is pending is older than 5 minutes.
  bool Satisfied(const std::string& key);
  void Forget(const std::string& key);

 private:
  struct Pending {
    int adds = 0, deletes = 0;
    std::chrono::steady_clock::time_point at;
  };
  std::mutex mu_;
  std::map<std::string, Pending> pending_;
};

// Deletes everything in a namespace that is being deleted, then removes the
// `kubernetes` finalizer so the namespace itself goes.
std::unique_ptr<Controller> NewNamespaceController(Context ctx);

}  // namespace minik::controllers
