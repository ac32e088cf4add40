// The namespace controller: when a namespace is deleted (phase Terminating),
// delete every namespaced object in it, and when nothing is left, finalize
// the namespace (remove `kubernetes` from spec.finalizers) so the API server
// removes it.

#include <atomic>
#include <thread>

#include "common/http.h"
#include "common/log.h"
#include "controllers/controller_manager.h"
#include "controllers/workqueue.h"

namespace minik::controllers {
namespace {

class NamespaceController : public Controller {
 public:
  explicit NamespaceController(std::shared_ptr<client::Client> c)
      : client_(std::move(c)),
        informer_(client_, client::ResourcePath{"/api/v1", "namespaces", false},
                  client::Informer::Handlers{[this](const json& o) { Enqueue(o); },
                                             [this](const json&, const json& o) { Enqueue(o); },
                                             nullptr}) {}

  std::string name() const override { return "namespace"; }

  void Start() override {
    informer_.Start();
    worker_ = std::thread([this] { Work(); });
  }

  void Stop() override {
    queue_.ShutDown();
    informer_.Stop();
    if (worker_.joinable()) {
      worker_.join();
    }
  }

 private:
  void Enqueue(const json& ns) {
    if (Find(ns, "metadata.deletionTimestamp") &&
        Find(ns, "metadata.deletionTimestamp")->is_string()) {
      // Give clients that delete a namespace and its content together (`kubectl
      // delete -f` of a file holding both) time to finish their own deletes,
      // which would otherwise race the controller and fail with NotFound.
      queue_.AddAfter(GetString(ns, "metadata.name"), std::chrono::seconds(2));
    }
  }

  void Work() {
    while (auto key = queue_.Get()) {
      try {
        if (!Sync(*key)) {
          queue_.AddAfter(*key, std::chrono::milliseconds(500));
        }
      } catch (const std::exception& e) {
        log::Warn("namespace {}: {}; retrying", *key, e.what());
        queue_.AddAfter(*key, std::chrono::seconds(2));
      }
      queue_.Done(*key);
    }
  }

  // The namespaced resources that can be listed and deleted, from discovery.
  std::vector<client::ResourcePath> NamespacedResources() {
    std::vector<client::ResourcePath> out;
    std::vector<std::string> gvs = {"/api/v1"};
    json groups = client_->Get("/apis");
    for (const auto& g : groups.value("groups", json::array())) {
      std::string gv = GetString(g, "preferredVersion.groupVersion");
      if (!gv.empty()) {
        gvs.push_back("/apis/" + gv);
      }
    }
    for (const auto& gv : gvs) {
      json list = client_->Get(gv);
      for (const auto& r : list.value("resources", json::array())) {
        std::string name = r.value("name", "");
        if (!r.value("namespaced", false) || name.find('/') != std::string::npos) {
          continue;
        }
        const json verbs = r.value("verbs", json::array());
        if (std::find(verbs.begin(), verbs.end(), "deletecollection") == verbs.end() ||
            std::find(verbs.begin(), verbs.end(), "list") == verbs.end()) {
          continue;
        }
        out.push_back(client::ResourcePath{gv, name, true});
      }
    }
    return out;
  }

  // Returns true when the namespace is done (finalized or gone).
  bool Sync(const std::string& name) {
    json ns = informer_.Get(name);
    if (ns.is_null() || !Find(ns, "metadata.deletionTimestamp")) {
      return true;
    }
    const json* fins = Find(ns, "spec.finalizers");
    bool ours = fins && fins->is_array() &&
                std::find(fins->begin(), fins->end(), "kubernetes") != fins->end();
    if (!ours) {
      return true;
    }
    size_t remaining = 0;
    for (const auto& r : NamespacedResources()) {
      try {
        client_->Delete(r.Collection(name), {{"propagationPolicy", "Background"}});
        json left = client_->Get(r.Collection(name));
        remaining += left.value("items", json::array()).size();
      } catch (const client::ApiError& e) {
        if (e.code != 404 && e.code != 405) {
          throw;
        }
      }
    }
    if (remaining > 0) {
      log::Info("namespace {}: waiting for {} objects to go", name, remaining);
      return false;
    }
    json fin = ns;
    json kept = json::array();
    for (const auto& f : *fins) {
      if (f != "kubernetes") {
        kept.push_back(f);
      }
    }
    fin["spec"]["finalizers"] = kept;
    try {
      client_->Put("/api/v1/namespaces/" + name + "/finalize", fin);
    } catch (const client::ApiError& e) {
      if (e.code == 404) {
        return true;
      }
      if (e.code == 409) {
        return false;
      }
      throw;
    }
    log::Info("namespace {}: finalized", name);
    return true;
  }

  std::shared_ptr<client::Client> client_;
  client::Informer informer_;
  WorkQueue queue_;
  std::thread worker_;
};

}  // namespace

std::unique_ptr<Controller> NewNamespaceController(std::shared_ptr<client::Client> client) {
  return std::make_unique<NamespaceController>(std::move(client));
}

}  // namespace minik::controllers
