// The ServiceAccount controller: every active namespace has a `default` ServiceAccount.

#include "controllers/core.h"

namespace minik::controllers {
namespace {

class ServiceAccountController : public QueueController {
 public:
  explicit ServiceAccountController(Context ctx) : QueueController("serviceaccount", ctx) {
    namespaces_ = ctx_.informers->For(client::resources::kNamespaces);
    accounts_ = ctx_.informers->For(client::resources::kServiceAccounts);
    namespaces_->AddHandlers(
        {[this](const client::Object& n) { Enqueue(GetString(*n, "metadata.name")); },
         [this](const client::Object&, const client::Object& n) {
           Enqueue(GetString(*n, "metadata.name"));
         },
         nullptr});
    accounts_->AddHandlers({nullptr, nullptr, [this](const client::Object& sa) {
                              if (GetString(*sa, "metadata.name") == "default") {
                                Enqueue(GetString(*sa, "metadata.namespace"));
                              }
                            }});
  }

 private:
  void Sync(const std::string& ns) override {
    client::Object n = namespaces_->Get(ns);
    if (!n || GetString(*n, "status.phase") != "Active" || Find(*n, "metadata.deletionTimestamp")) {
      return;
    }
    if (accounts_->Get(ns + "/default")) {
      return;
    }
    try {
      ctx_.client->Post("/api/v1/namespaces/" + ns + "/serviceaccounts",
                        {{"apiVersion", "v1"},
                         {"kind", "ServiceAccount"},
                         {"metadata", {{"name", "default"}, {"namespace", ns}}}});
    } catch (const client::ApiError& e) {
      // 409: it exists already; 403/404: the namespace is going away.
      if (e.code != 409 && e.code != 403 && e.code != 404) {
        throw;
      }
    }
  }

  std::shared_ptr<client::Informer> namespaces_, accounts_;
};

}  // namespace

std::unique_ptr<Controller> NewServiceAccountController(Context ctx) {
  return std::make_unique<ServiceAccountController>(std::move(ctx));
}

}  // namespace minik::controllers
