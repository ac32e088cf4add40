// The root CA publisher: every active namespace has the ConfigMap
// `kube-root-ca.crt` holding the cluster CA (`ca.crt`), which the projected
// service account volume of every pod mounts. A changed or deleted copy is
// put back.

#include "controllers/core.h"

namespace minik::controllers {
namespace {

constexpr char kName[] = "kube-root-ca.crt";

class RootCaPublisher : public QueueController {
 public:
  explicit RootCaPublisher(Context ctx) : QueueController("root-ca-cert-publisher", ctx) {
    namespaces_ = ctx_.informers->For(client::resources::kNamespaces);
    namespaces_->AddHandlers(
        {[this](const client::Object& n) { Enqueue(GetString(*n, "metadata.name")); },
         [this](const client::Object&, const client::Object& n) {
           Enqueue(GetString(*n, "metadata.name"));
         },
         nullptr});
    // Only the copies it publishes, not every ConfigMap of the cluster.
    configmaps_ = std::make_shared<client::Informer>(
        ctx_.client, client::ResourcePath{"/api/v1", "configmaps", true}, "",
        std::string("metadata.name=") + kName);
    auto on = [this](const client::Object& cm) { Enqueue(GetString(*cm, "metadata.namespace")); };
    configmaps_->AddHandlers(
        {on, [on](const client::Object&, const client::Object& cm) { on(cm); }, on});
  }

  void Start() override {
    configmaps_->Start();
    configmaps_->WaitForSync(std::chrono::seconds(30));
    QueueController::Start();
  }
  void Stop() override {
    QueueController::Stop();
    configmaps_->Stop();
  }

 private:
  void Sync(const std::string& ns) override {
    client::Object n = namespaces_->Get(ns);
    if (!n || GetString(*n, "status.phase") != "Active" || Find(*n, "metadata.deletionTimestamp")) {
      return;
    }
    json data = {{"ca.crt", ctx_.root_ca_pem}};
    client::Object cur = configmaps_->Get(ns + "/" + kName);
    try {
      if (!cur) {
        ctx_.client->Post("/api/v1/namespaces/" + ns + "/configmaps",
                          {{"apiVersion", "v1"},
                           {"kind", "ConfigMap"},
                           {"metadata",
                            {{"name", kName},
                             {"namespace", ns},
                             {"annotations",
                              {{"kubernetes.io/description",
                                "Contains a CA bundle that can be used to verify the "
                                "kube-apiserver when using internal endpoints such as the "
                                "internal service IP or kubernetes.default.svc. No other usage is "
                                "guaranteed across distributions of Kubernetes clusters."}}}}},
                           {"data", data}});
      } else if (cur->value("data", json::object()) != data) {
        json cm = *cur;
        cm["data"] = data;
        cm.erase("binaryData");
        ctx_.client->Put("/api/v1/namespaces/" + ns + "/configmaps/" + kName, cm);
      }
    } catch (const client::ApiError& e) {
      // 409: someone else wrote it first (the watch brings it back here);
      // 403/404: the namespace is going away.
      if (e.code != 409 && e.code != 403 && e.code != 404) {
        throw;
      }
    }
  }

  std::shared_ptr<client::Informer> namespaces_, configmaps_;
};

}  // namespace

std::unique_ptr<Controller> NewRootCaPublisher(Context ctx) {
  if (ctx.root_ca_pem.empty()) {
    return nullptr;
  }
  return std::make_unique<RootCaPublisher>(std::move(ctx));
}

}  // namespace minik::controllers
