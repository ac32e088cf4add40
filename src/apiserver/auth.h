#pragma once
// Service account tokens, as Kubernetes' serviceaccount token issuer and
// authenticator: `POST .../serviceaccounts/NAME/token` (TokenRequest) signs
// an ES256 JWT with the cluster's service account key; a request carrying
// `Authorization: Bearer TOKEN` is then the user
// `system:serviceaccount:NS:NAME` while the account, and the pod or secret
// the token is bound to, still exist with the same UIDs.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/jwt.h"

namespace minik::apiserver {

// The issuer and default audience, as kubeadm and minikube configure them.
inline constexpr char kServiceAccountIssuer[] = "https://kubernetes.default.svc.cluster.local";

struct Identity {
  std::string user, uid;
  std::vector<std::string> groups;
  json extra = json::object();  // e.g. authentication.kubernetes.io/pod-name
};

class ServiceAccountTokens {
 public:
  // The stored object, or null when absent. `plural` is a core v1 resource.
  using Lookup = std::function<json(const std::string& plural, const std::string& ns,
                                    const std::string& name)>;

  ServiceAccountTokens(jwt::Key key, Lookup lookup);

  // Answers a TokenRequest for the service account NS/NAME: the request with
  // defaults filled and `status.token`, `status.expirationTimestamp` set.
  // Throws api::StatusError (NotFound, Invalid, Conflict) as Kubernetes does.
  json Issue(const std::string& ns, const std::string& name, const json& request) const;
  // The identity a token proves, or nullopt with the reason.
  std::optional<Identity> Authenticate(const std::string& token, std::string* why) const;

 private:
  jwt::Key key_;
  Lookup lookup_;
};

// The ServiceAccount admission plugin's part for tokens: unless the pod or
// its service account opts out (automountServiceAccountToken: false), adds
// the projected volume `kube-api-access-XXXXX` (token, kube-root-ca.crt,
// namespace) mounted at /var/run/secrets/kubernetes.io/serviceaccount in
// every container. `sa` is the pod's service account, or null.
void AddServiceAccountVolume(json& pod, const json& sa);

}  // namespace minik::apiserver
