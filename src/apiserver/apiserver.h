#pragma once
// `minik apiserver`: the Kubernetes REST API over HTTPS, owning the store.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "api/encode.h"
#include "api/resources.h"
#include "api/types.h"
#include "apiserver/auth.h"
#include "apiserver/rest_storage.h"
#include "common/http.h"
#include "store/store.h"

namespace minik::apiserver {

struct Options {
  std::string bind_address = "127.0.0.1";
  uint16_t port = 8443;
  // ca.crt, apiserver.crt, apiserver.key; sa.key (the service account
  // signing key) is made there when missing.
  std::string cert_dir;
  std::string store = "sqlite";
  std::string data_dir;
  std::string advertise_address = "127.0.0.1";
  int history_seconds = 300;
  int64_t history_megabytes = 256;
  // Directory where request bodies are written for debugging (empty: off).
  std::string capture_dir;
};

class ApiServer {
 public:
  explicit ApiServer(Options opts);
  ~ApiServer();
  // Opens the store, creates the system objects and starts serving. Returns the port.
  uint16_t Start();
  void Stop();
  void Handle(http::Request& req, http::ResponseWriter& w);

 private:
  void Bootstrap();
  void Route(http::Request& req, http::ResponseWriter& w);
  void ServeResource(http::Request& req, http::ResponseWriter& w, const api::ResourceInfo& r,
                     const std::string& ns, const std::string& name,
                     const std::string& subresource);
  void ServeWatch(http::Request& req, http::ResponseWriter& w, const api::ResourceInfo& r,
                  const std::string& ns, const std::string& name);
  void ServeScale(http::Request& req, http::ResponseWriter& w, const api::ResourceInfo& r,
                  const std::string& ns, const std::string& name);
  // pods/log, exec, attach and portforward: proxied to the kubelet of the pod's node.
  void ServeNodeProxy(http::Request& req, http::ResponseWriter& w, const std::string& ns,
                      const std::string& name, const std::string& sub);
  json DecodeBody(const http::Request& req, const api::ResourceInfo& r, bool strict_default);
  // A body of a kind that is not a stored resource (TokenRequest, TokenReview, ...).
  json DecodeTyped(const http::Request& req, const std::string& api_version,
                   const std::string& kind, const std::string& type_name, bool strict_default);
  // authentication.k8s.io: selfsubjectreviews and tokenreviews (create only).
  void ServeAuthentication(http::Request& req, http::ResponseWriter& w, const std::string& what);
  // /openapi/v2 as JSON or protobuf, by the Accept header.
  void ServeOpenApiV2(http::Request& req, http::ResponseWriter& w);
  // Resources that are not stored: reviews, bindings, component statuses.
  void ServeVirtual(http::Request& req, http::ResponseWriter& w, const api::ResourceInfo& r,
                    const std::string& ns, const std::string& name);
  // authorization.k8s.io reviews (create only).
  void ServeAuthorization(http::Request& req, http::ResponseWriter& w, const api::ResourceInfo& r,
                          const std::string& ns);
  // Binds pod `name` to the node a Binding names (pods/binding and bindings).
  void BindPod(const std::string& ns, const std::string& name, const json& binding,
               const WriteOptions& wo);

  Options opts_;
  const api::ResourceRegistry& registry_;
  const api::TypeTable& types_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<RestStorage> storage_;
  EncodedObjects encoded_;  // for watches
  std::unique_ptr<ServiceAccountTokens> tokens_;
  std::unique_ptr<http::Server> server_;
  // Makes the system namespaces again when they are gone (upstream's
  // system namespaces controller): kube-node-lease may be deleted.
  void KeepSystemNamespaces();
  std::thread system_namespaces_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::atomic<bool> ready_{false};
  uint16_t port_ = 0;
};

// The encoder of every body the API server writes (upstream's field order).
const api::Encoder& ApiEncoder();

// The Accept header, parsed for what the API server can answer.
struct Negotiated {
  bool table = false;
  std::string table_version = "v1";
  bool aggregated_discovery = false;
  std::string discovery_version = "v2";
};
Negotiated Negotiate(const std::string& accept);

json DiscoveryApiVersions(const std::string& server_address);
json DiscoveryGroupList(const api::ResourceRegistry& reg);
json DiscoveryGroup(const api::ResourceRegistry& reg, const std::string& group);
json DiscoveryResourceList(const api::ResourceRegistry& reg, const std::string& group,
                           const std::string& version);
json AggregatedDiscovery(const api::ResourceRegistry& reg, bool core, const std::string& version);

// OpenAPI v3: the index and one document per group-version ("api/v1", "apis/apps/v1").
json OpenApiIndex(const api::ResourceRegistry& reg);
json OpenApiDocument(const api::ResourceRegistry& reg, const api::TypeTable& types,
                     const std::string& group_version_path);

// OpenAPI v2: one Swagger 2.0 document for every group-version, and its
// protobuf form (gnostic's openapi.v2.Document) that kubectl reads.
json OpenApiV2(const api::ResourceRegistry& reg, const api::TypeTable& types);
std::string OpenApiV2Protobuf(const json& doc);

// Builds a meta.k8s.io Table for objects of `r`.
json BuildTable(const api::ResourceInfo& r, const json& objects, const json& list_meta,
                const std::string& include_object, const std::string& version);

}  // namespace minik::apiserver
