// The namespace controller: when a namespace is deleted (phase Terminating),
// delete every namespaced object in it, and when nothing is left, finalize
// the namespace (remove `kubernetes` from spec.finalizers) so the API server
// removes it.

#include <atomic>
#include <thread>

#include "common/http.h"
#include "common/log.h"
#include "controllers/controller.h"

namespace minik::controllers {
namespace {

class NamespaceController : public QueueController {
 public:
  explicit NamespaceController(Context ctx) : QueueController("namespace", ctx) {
    informer_ = ctx_.informers->For(client::resources::kNamespaces);
    informer_->AddHandlers({[this](const client::Object& o) { Watch(*o); },
                            [this](const client::Object&, const client::Object& o) { Watch(*o); },
                            nullptr});
  }

 private:
  void Watch(const json& ns) {
    if (Find(ns, "metadata.deletionTimestamp") &&
        Find(ns, "metadata.deletionTimestamp")->is_string()) {
      // Give clients that delete a namespace and its content together (`kubectl
      // delete -f` of a file holding both) time to finish their own deletes,
      // which would otherwise race the controller and fail with NotFound.
      EnqueueAfter(GetString(ns, "metadata.name"), std::chrono::seconds(2));
    }
  }

  void Sync(const std::string& key) override {
    if (!Finalize(key)) {
      EnqueueAfter(key, std::chrono::milliseconds(500));
    }
  }

  // The namespaced resources that can be listed and deleted, from discovery.
  std::vector<client::ResourcePath> NamespacedResources() {
    std::vector<client::ResourcePath> out;
    std::vector<std::string> gvs = {"/api/v1"};
    json groups = ctx_.client->Get("/apis");
    for (const auto& g : groups.value("groups", json::array())) {
      std::string gv = GetString(g, "preferredVersion.groupVersion");
      if (!gv.empty()) {
        gvs.push_back("/apis/" + gv);
      }
    }
    for (const auto& gv : gvs) {
      json list = ctx_.client->Get(gv);
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
  bool Finalize(const std::string& name) {
    client::Object obj = informer_->Get(name);
    if (!obj || !Find(*obj, "metadata.deletionTimestamp")) {
      return true;
    }
    const json& ns = *obj;
    const json* fins = Find(ns, "spec.finalizers");
    bool ours = fins && fins->is_array() &&
                std::find(fins->begin(), fins->end(), "kubernetes") != fins->end();
    if (!ours) {
      return true;
    }
    size_t remaining = 0;
    for (const auto& r : NamespacedResources()) {
      try {
        ctx_.client->Delete(r.Collection(name), {{"propagationPolicy", "Background"}});
        json left = ctx_.client->Get(r.Collection(name));
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
      ctx_.client->Put("/api/v1/namespaces/" + name + "/finalize", fin);
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

  std::shared_ptr<client::Informer> informer_;
};

}  // namespace

std::unique_ptr<Controller> NewNamespaceController(Context ctx) {
  return std::make_unique<NamespaceController>(std::move(ctx));
}

}  // namespace minik::controllers
