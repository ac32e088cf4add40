#include "apiserver/apiserver.h"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>

#include <openssl/sha.h>

#include "api/managed_fields.h"
#include "api/patch.h"
#include "api/printers.h"
#include "api/protobuf.h"
#include "api/status.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/tls_conn.h"
#include "store/registry.h"

namespace minik::apiserver {

using api::BadRequest;
using api::StatusError;

namespace {

const char* kJson = "application/json";

}  // namespace

const api::Encoder& ApiEncoder() {
  // The message of each served (apiVersion, kind), looked up once.
  static const std::map<std::pair<std::string, std::string>, std::string> kinds = [] {
    std::map<std::pair<std::string, std::string>, std::string> m;
    for (const auto& r : api::ResourceRegistry::Builtin().all()) {
      m.emplace(std::make_pair(r.api_version(), r.kind), r.type_name);
    }
    return m;
  }();
  static const api::Encoder encoder(api::TypeTable::Builtin(),
                                    [](const std::string& api_version, const std::string& kind) {
                                      auto it = kinds.find({api_version, kind});
                                      return it == kinds.end() ? std::string() : it->second;
                                    });
  return encoder;
}

namespace {

void WriteJson(http::ResponseWriter& w, int code, const json& body,
               const std::string& content_type = kJson, http::Headers extra = {}) {
  extra["Content-Type"] = content_type;
  extra["Cache-Control"] = "no-cache, private";
  w.Send(code, extra, ApiEncoder().Encode(body));
}

void WriteStatus(http::ResponseWriter& w, const StatusError& e) {
  http::Headers h;
  if (e.code() == 401) {
    h["WWW-Authenticate"] = "Basic realm=\"kubernetes-master\"";
  }
  WriteJson(w, e.code(), e.ToStatus(), kJson, h);
}

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> segs;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    std::string s = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    if (!s.empty()) {
      segs.push_back(s);
    }
    if (slash == std::string::npos) {
      break;
    }
    pos = slash + 1;
  }
  return segs;
}

bool Truthy(const std::string& v) {
  std::string l = v;
  for (auto& c : l) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return l == "true" || l == "1";
}

std::string MediaType(const std::string& content_type) {
  std::string t = content_type.substr(0, content_type.find(';'));
  t.erase(0, t.find_first_not_of(' '));
  t.erase(t.find_last_not_of(' ') + 1);
  for (auto& c : t) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return t;
}

// YAML mappings may not repeat a key (as Kubernetes' YAML decoder holds), whatever
// the field validation level; JSON duplicates only matter under Strict.
void RejectYamlDuplicates(const Decoded& d) {
  if (d.duplicate_keys.empty()) {
    return;
  }
  std::string msg = "the YAML body repeats keys: ";
  for (size_t i = 0; i < d.duplicate_keys.size(); ++i) {
    const std::string& k = d.duplicate_keys[i];
    msg += (i ? ", " : "") + ("\"" + (k.size() && k[0] == '.' ? k.substr(1) : k) + "\"");
  }
  throw BadRequest(msg);
}

// A body that does not decode as the kind a request needs, in Kubernetes'
// words: what was wrong, then the start of the body (as text when it looks
// like JSON, else in hex) so the user sees what was sent.
StatusError Unrecognized(const std::string& kind, const std::string& why, const std::string& body) {
  constexpr size_t kMax = 30;
  std::string summary;
  if (body.empty()) {
    summary = "<empty>";
  } else if (body[0] == '{') {
    summary = body.size() > kMax ? body.substr(0, kMax) + " ..." : body;
  } else {
    static const char* hex = "0123456789abcdef";
    for (size_t i = 0; i < std::min(body.size(), kMax); ++i) {
      summary += hex[static_cast<unsigned char>(body[i]) >> 4];
      summary += hex[static_cast<unsigned char>(body[i]) & 0xf];
    }
    if (body.size() > kMax) {
      summary += " ...";
    }
  }
  return BadRequest("the object provided is unrecognized (must be of type " + kind + "): " + why +
                    " (" + summary + ")");
}

ListRequest ParseList(const http::Request& req) {
  ListRequest l;
  l.labels = api::LabelSelector::Parse(req.Param("labelSelector"));
  l.fields = api::FieldSelector::Parse(req.Param("fieldSelector"));
  std::string limit = req.Param("limit");
  if (!limit.empty()) {
    try {
      l.limit = std::stoll(limit);
    } catch (const std::exception&) {
      throw BadRequest("limit must be a number: " + limit);
    }
  }
  l.continue_token = req.Param("continue");
  l.resource_version = req.Param("resourceVersion");
  l.resource_version_match = req.Param("resourceVersionMatch");
  return l;
}

// Receives the store's events for one watch request; the request thread drains it.
class WatchQueue : public store::WatchSink {
 public:
  static constexpr size_t kMaxQueued = 100000;
  void OnEvents(const std::vector<store::Event>& events) override {
    std::lock_guard lock(mu_);
    if (queue_.size() + events.size() > kMaxQueued) {
      overflow_ = true;
    } else {
      queue_.insert(queue_.end(), events.begin(), events.end());
    }
    cv_.notify_one();
  }
  // Waits up to `timeout` for events; returns them (possibly none).
  std::vector<store::Event> Take(std::chrono::milliseconds timeout, bool* overflow) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || overflow_; });
    std::vector<store::Event> out(queue_.begin(), queue_.end());
    queue_.clear();
    *overflow = overflow_;
    return out;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<store::Event> queue_;
  bool overflow_ = false;
};

}  // namespace

ApiServer::ApiServer(Options opts)
    : opts_(std::move(opts)),
      registry_(api::ResourceRegistry::Builtin()),
      types_(api::TypeTable::Builtin()) {}

ApiServer::~ApiServer() {
  Stop();
}

uint16_t ApiServer::Start() {
  store::RegisterBuiltins();
  store::StoreOptions so;
  so.data_dir = opts_.data_dir;
  so.history_seconds = opts_.history_seconds;
  so.history_bytes = opts_.history_megabytes << 20;
  store_ = store::Create(opts_.store, so);
  storage_ = std::make_unique<RestStorage>(*store_, registry_, types_);
  Bootstrap();
  std::string sa_key = opts_.cert_dir + "/sa.key";
  if (!fs::Exists(sa_key)) {
    fs::WriteFileAtomic(sa_key, tls::GenerateKeyPem(), 0600);
  }
  tokens_ = std::make_unique<ServiceAccountTokens>(
      jwt::Key(fs::ReadFile(sa_key)),
      [this](const std::string& plural, const std::string& ns, const std::string& name) {
        try {
          return storage_->Get(*registry_.Find("", "v1", plural), ns, name);
        } catch (const StatusError& e) {
          if (e.code() == 404) {
            return json();
          }
          throw;
        }
      });
  http::ServerOptions ho;
  ho.address = opts_.bind_address;
  ho.port = opts_.port;
  ho.cert_pem = fs::ReadFile(opts_.cert_dir + "/apiserver.crt");
  ho.key_pem = fs::ReadFile(opts_.cert_dir + "/apiserver.key");
  ho.client_ca_pem = fs::ReadFile(opts_.cert_dir + "/ca.crt");
  ho.error_body = [](int status, const std::string& message) {
    const char* reason = status == 413   ? "RequestEntityTooLarge"
                         : status == 429 ? "TooManyRequests"
                                         : "BadRequest";
    return ApiEncoder().Encode(StatusError(status, reason, message).ToStatus());
  };
  server_ = std::make_unique<http::Server>(
      ho, [this](http::Request& req, http::ResponseWriter& w) { Handle(req, w); });
  port_ = server_->Start();
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = false;
  }
  if (!system_namespaces_.joinable()) {
    system_namespaces_ = std::thread([this] { KeepSystemNamespaces(); });
  }
  ready_ = true;
  log::Info("serving the Kubernetes API on https://{}:{} (store: {})", opts_.bind_address, port_,
            opts_.store);
  return port_;
}

void ApiServer::KeepSystemNamespaces() {
  const api::ResourceInfo* ns = registry_.Find("", "v1", "namespaces");
  WriteOptions self;
  self.field_manager = "kube-apiserver";
  std::unique_lock lock(stop_mu_);
  while (!stop_cv_.wait_for(lock, std::chrono::seconds(5), [this] { return stopping_; })) {
    for (const char* name : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
      try {
        storage_->Create(*ns, "", json{{"metadata", {{"name", name}}}}, self);
        log::Info("made the system namespace {} again", name);
      } catch (const StatusError& e) {
        if (e.code() != 409) {
          log::Warn("system namespace {}: {}", name, e.what());
        }
      } catch (const std::exception& e) {
        log::Warn("system namespace {}: {}", name, e.what());
      }
    }
  }
}

void ApiServer::Stop() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (system_namespaces_.joinable()) {
    system_namespaces_.join();
  }
  ready_ = false;
  if (server_) {
    server_->Stop();
    server_.reset();
  }
  storage_.reset();
  store_.reset();
}

void ApiServer::Bootstrap() {
  // What the API server writes itself is recorded as kube-apiserver's.
  WriteOptions self;
  self.field_manager = "kube-apiserver";
  const api::ResourceInfo* ns = registry_.Find("", "v1", "namespaces");
  for (const char* name : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
    try {
      storage_->Create(*ns, "", json{{"metadata", {{"name", name}}}}, self);
    } catch (const StatusError& e) {
      if (e.code() != 409) {
        throw;
      }
    }
  }
  const api::ResourceInfo* svc = registry_.Find("", "v1", "services");
  json kubernetes = {
      {"metadata",
       {{"name", "kubernetes"},
        {"labels", {{"component", "apiserver"}, {"provider", "kubernetes"}}}}},
      {"spec",
       {{"type", "ClusterIP"},
        {"clusterIP", "10.96.0.1"},
        {"ports",
         {{{"name", "https"}, {"port", 443}, {"protocol", "TCP"}, {"targetPort", opts_.port}}}}}}};
  try {
    storage_->Create(*svc, "default", kubernetes, self);
  } catch (const StatusError& e) {
    if (e.code() != 409) {
      throw;
    }
  }
  const api::ResourceInfo* ep = registry_.Find("", "v1", "endpoints");
  json endpoints = {
      {"metadata",
       {{"name", "kubernetes"}, {"labels", {{"endpointslice.kubernetes.io/skip-mirror", "true"}}}}},
      {"subsets",
       {{{"addresses", {{{"ip", opts_.advertise_address}}}},
         {"ports", {{{"name", "https"}, {"port", opts_.port}, {"protocol", "TCP"}}}}}}}};
  try {
    json cur = storage_->Get(*ep, "default", "kubernetes");
    if (cur["subsets"] != endpoints["subsets"]) {
      cur["subsets"] = endpoints["subsets"];
      storage_->Update(*ep, "default", "kubernetes", cur, "", self);
    }
  } catch (const StatusError& e) {
    if (e.code() != 404) {
      throw;
    }
    storage_->Create(*ep, "default", endpoints, self);
  }
  // The same as an EndpointSlice, which is what the proxy programs from: pods
  // reach the API server through the kubernetes Service (10.96.0.1:443).
  const api::ResourceInfo* eps = registry_.Find("discovery.k8s.io", "v1", "endpointslices");
  json slice = {
      {"metadata",
       {{"name", "kubernetes"}, {"labels", {{"kubernetes.io/service-name", "kubernetes"}}}}},
      {"addressType", "IPv4"},
      {"endpoints",
       {{{"addresses", {opts_.advertise_address}},
         {"conditions", {{"ready", true}, {"serving", true}, {"terminating", false}}}}}},
      {"ports", {{{"name", "https"}, {"port", opts_.port}, {"protocol", "TCP"}}}}};
  try {
    json cur = storage_->Get(*eps, "default", "kubernetes");
    if (cur["endpoints"] != slice["endpoints"] || cur["ports"] != slice["ports"]) {
      cur["endpoints"] = slice["endpoints"];
      cur["ports"] = slice["ports"];
      storage_->Update(*eps, "default", "kubernetes", cur, "", self);
    }
  } catch (const StatusError& e) {
    if (e.code() != 404) {
      throw;
    }
    storage_->Create(*eps, "default", slice, self);
  }
}

void ApiServer::Handle(http::Request& req, http::ResponseWriter& w) {
  while (req.path.size() > 1 && req.path.back() == '/') {
    req.path.pop_back();
  }
  try {
    const std::string& p = req.path;
    if (p == "/healthz" || p == "/livez" || p == "/readyz" || p.rfind("/healthz/", 0) == 0 ||
        p.rfind("/livez/", 0) == 0 || p.rfind("/readyz/", 0) == 0) {
      bool ok = p.rfind("/readyz", 0) != 0 || ready_;
      std::string body = ok ? "ok" : "[-]bootstrap failed: not finished\nreadyz check failed";
      if (req.Has("verbose")) {
        body = ok ? "[+]ping ok\n[+]etcd ok\n[+]poststarthook/bootstrap ok\n" +
                        std::string(p.rfind("/readyz", 0) == 0 ? "readyz" : p.substr(1)) +
                        " check passed\n"
                  : body;
      }
      w.Send(ok ? 200 : 500, {{"Content-Type", "text/plain; charset=utf-8"}}, body);
      return;
    }
    if (p == "/version") {
      // kube-apiserver writes version.Info indented, in its struct's order,
      // without a trailing newline.
      nlohmann::ordered_json v = {{"major", "1"},
                                  {"minor", "32"},
                                  {"gitVersion", "v1.32.0"},
                                  {"gitCommit", "minik"},
                                  {"gitTreeState", "clean"},
                                  {"buildDate", "2026-11-27T00:00:00Z"},
                                  {"goVersion", "minik (C++20)"},
                                  {"compiler", "gc"},
                                  {"platform", "linux/amd64"}};
      w.Send(200, {{"Content-Type", kJson}, {"Cache-Control", "no-cache, private"}}, v.dump(2));
      return;
    }
    std::string auth = req.Header("Authorization");
    if (!req.authenticated && auth.rfind("Bearer ", 0) == 0) {
      std::string why;
      std::optional<Identity> id = tokens_->Authenticate(auth.substr(7), &why);
      if (!id) {
        log::Debug("{} {}: bearer token refused: {}", req.method, req.target, why);
        throw api::Unauthorized();
      }
      req.authenticated = true;
      req.user = id->user;
      req.uid = id->uid;
      req.groups = id->groups;
      for (auto& [k, v] : id->extra.items()) {
        req.extra[k] = v.get<std::vector<std::string>>();
      }
    }
    if (!req.authenticated) {
      throw api::Unauthorized();
    }
    Route(req, w);
  } catch (const StatusError& e) {
    if (!w.sent()) {
      WriteStatus(w, e);
    }
  } catch (const ParseError& e) {
    if (!w.sent()) {
      WriteStatus(w, BadRequest(e.what()));
    }
  } catch (const store::StorageError& e) {
    log::Error("{} {}: storage: {}", req.method, req.target, e.what());
    if (!w.sent()) {
      WriteStatus(w, api::InternalError(e.what()));
    }
  } catch (const store::Conflict& e) {
    if (!w.sent()) {
      WriteStatus(w, StatusError(409, "Conflict", e.what()));
    }
  } catch (const json::exception& e) {
    if (!w.sent()) {
      WriteStatus(w, BadRequest(e.what()));
    }
  }
}

void ApiServer::ServeOpenApiV2(http::Request& req, http::ResponseWriter& w) {
  // Built once: the registry and the types do not change while serving.
  struct Forms {
    std::string json, protobuf, json_etag, protobuf_etag;
  };
  static const Forms forms = [this] {
    auto etag = [](const std::string& body) {
      unsigned char digest[SHA512_DIGEST_LENGTH];
      SHA512(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
      static const char* hex = "0123456789ABCDEF";
      std::string e = "\"";
      for (unsigned char c : digest) {
        e += hex[c >> 4];
        e += hex[c & 0xf];
      }
      return e + "\"";
    };
    Forms f;
    f.json = OpenApiV2(registry_, types_).dump();
    f.protobuf = OpenApiV2Protobuf(json::parse(f.json));
    f.json_etag = etag(f.json);
    f.protobuf_etag = etag(f.protobuf);
    return f;
  }();
  // The first type of Accept this server has wins; kubectl asks for
  // protobuf only (with '@'), which is answered with the type's newer
  // spelling (with '.'), as kube-apiserver does.
  const char* kProto = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
  std::string accept = req.Header("Accept");
  bool protobuf = false, found = accept.empty();
  for (size_t pos = 0; !found && pos <= accept.size();) {
    size_t comma = accept.find(',', pos);
    std::string type =
        MediaType(accept.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (type == "application/com.github.proto-openapi.spec.v2@v1.0+protobuf" || type == kProto) {
      protobuf = found = true;
    } else if (type == "application/json" || type == "*/*" || type == "application/*") {
      found = true;
    }
    if (comma == std::string::npos) {
      break;
    }
    pos = comma + 1;
  }
  if (!found) {
    w.Send(406, {{"Content-Type", "text/plain"}}, "");
    return;
  }
  // Each form has its own Etag, so a cached form is never taken for the other.
  const std::string& etag = protobuf ? forms.protobuf_etag : forms.json_etag;
  http::Headers h = {{"Content-Type", protobuf ? kProto : kJson},
                     {"Vary", "Accept"},
                     {"Etag", etag},
                     {"Cache-Control", "no-cache, private"}};
  if (req.Header("If-None-Match") == etag) {
    w.Send(304, h, "");
    return;
  }
  w.Send(200, h, protobuf ? forms.protobuf : forms.json);
}

void ApiServer::ServeAuthentication(http::Request& req, http::ResponseWriter& w,
                                    const std::string& what) {
  if (req.method != "POST") {
    throw api::MethodNotAllowed("the server does not allow this method on the requested resource");
  }
  auto user_info = [](const std::string& user, const std::string& uid,
                      std::vector<std::string> groups, const json& extra) {
    if (std::find(groups.begin(), groups.end(), "system:authenticated") == groups.end()) {
      groups.push_back("system:authenticated");
    }
    json u = {{"username", user}, {"groups", groups}};
    if (!uid.empty()) {
      u["uid"] = uid;
    }
    if (!extra.empty()) {
      u["extra"] = extra;
    }
    return u;
  };
  bool self = what == "selfsubjectreviews";
  json body = DecodeTyped(
      req, "authentication.k8s.io/v1", self ? "SelfSubjectReview" : "TokenReview",
      self ? "authentication.v1.SelfSubjectReview" : "authentication.v1.TokenReview", false);
  json out = {{"apiVersion", "authentication.k8s.io/v1"},
              {"metadata", {{"creationTimestamp", FormatTime(Now())}}}};
  if (self) {
    out["kind"] = "SelfSubjectReview";
    json extra = json::object();
    for (const auto& [k, v] : req.extra) {
      extra[k] = v;
    }
    out["status"] = {{"userInfo", user_info(req.user, req.uid, req.groups, extra)}};
  } else {
    out["kind"] = "TokenReview";
    json spec = body.value("spec", json::object());
    std::string token = spec.is_object() ? spec.value("token", "") : "";
    out["spec"] = spec;
    std::string why;
    std::optional<Identity> id = token.empty() ? std::nullopt : tokens_->Authenticate(token, &why);
    if (id) {
      out["status"] = {{"authenticated", true},
                       {"user", user_info(id->user, id->uid, id->groups, id->extra)},
                       {"audiences", json::array({kServiceAccountIssuer})}};
    } else {
      out["status"] = {{"user", json::object()},
                       {"error", token.empty() ? "spec.token: Required value" : why}};
    }
  }
  WriteJson(w, 201, out);
}

void ApiServer::Route(http::Request& req, http::ResponseWriter& w) {
  std::vector<std::string> segs = Split(req.path);
  Negotiated neg = Negotiate(req.Header("Accept"));
  auto discovery = [&](const json& body) {
    std::string ct = neg.aggregated_discovery
                         ? "application/json;g=apidiscovery.k8s.io;v=" + neg.discovery_version +
                               ";as=APIGroupDiscoveryList"
                         : kJson;
    WriteJson(w, 200, body, ct);
  };
  if (segs.empty()) {
    json paths = json::array({"/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2",
                              "/openapi/v3", "/readyz", "/version"});
    for (const auto& g : registry_.groups()) {
      if (!g.empty()) {
        paths.push_back("/apis/" + g);
      }
    }
    WriteJson(w, 200, {{"paths", paths}});
    return;
  }
  if (segs[0] == "openapi") {
    if (segs.size() == 2 && segs[1] == "v2") {
      ServeOpenApiV2(req, w);
      return;
    }
    if (segs.size() == 2 && segs[1] == "v3") {
      WriteJson(w, 200, OpenApiIndex(registry_));
      return;
    }
    if (segs.size() > 2 && segs[1] == "v3") {
      std::string gv;
      for (size_t i = 2; i < segs.size(); ++i) {
        gv += (i > 2 ? "/" : "") + segs[i];
      }
      json doc = OpenApiDocument(registry_, types_, gv);
      if (doc.is_null()) {
        throw StatusError(404, "NotFound", "the server could not find the requested resource");
      }
      WriteJson(w, 200, doc);
      return;
    }
    throw StatusError(404, "NotFound", "the server could not find the requested resource");
  }
  std::string group, version;
  size_t rest;
  if (segs[0] == "api") {
    if (segs.size() == 1) {
      if (req.method != "GET") {
        throw api::MethodNotAllowed(
            "the server does not allow this method on the requested resource");
      }
      discovery(neg.aggregated_discovery
                    ? AggregatedDiscovery(registry_, true, neg.discovery_version)
                    : DiscoveryApiVersions(opts_.advertise_address + ":" + std::to_string(port_)));
      return;
    }
    version = segs[1];
    rest = 2;
  } else if (segs[0] == "apis") {
    if (segs.size() == 1) {
      discovery(neg.aggregated_discovery
                    ? AggregatedDiscovery(registry_, false, neg.discovery_version)
                    : DiscoveryGroupList(registry_));
      return;
    }
    group = segs[1];
    auto groups = registry_.groups();
    if (std::find(groups.begin(), groups.end(), group) == groups.end() || group.empty()) {
      throw StatusError(404, "NotFound", "the server could not find the requested resource");
    }
    if (segs.size() == 2) {
      WriteJson(w, 200, DiscoveryGroup(registry_, group));
      return;
    }
    version = segs[2];
    rest = 3;
  } else {
    throw StatusError(404, "NotFound", "the server could not find the requested resource");
  }
  if (segs.size() == rest) {
    json list = DiscoveryResourceList(registry_, group, version);
    if (list["resources"].empty()) {
      throw StatusError(404, "NotFound", "the server could not find the requested resource");
    }
    WriteJson(w, 200, list);
    return;
  }
  std::vector<std::string> r(segs.begin() + static_cast<long>(rest), segs.end());
  std::string ns, name, sub;
  const api::ResourceInfo* info = nullptr;
  if (r.size() >= 3 && r[0] == "namespaces") {
    const api::ResourceInfo* nsr = registry_.Find(group, version, r[2]);
    if (nsr && nsr->namespaced) {
      info = nsr;
      ns = r[1];
      if (r.size() >= 4) {
        name = r[3];
      }
      if (r.size() >= 5) {
        sub = r[4];
      }
      if (r.size() > 5) {
        throw StatusError(404, "NotFound", "the server could not find the requested resource");
      }
    }
  }
  if (!info) {
    info = registry_.Find(group, version, r[0]);
    if (!info || r.size() > 3) {
      throw StatusError(404, "NotFound", "the server could not find the requested resource");
    }
    if (r.size() >= 2) {
      name = r[1];
    }
    if (r.size() == 3) {
      sub = r[2];
    }
    if (info->namespaced && !name.empty()) {
      // A namespaced resource is addressed under /namespaces/NS.
      throw StatusError(404, "NotFound", "the server could not find the requested resource");
    }
  }
  if (!sub.empty() && !info->has_subresource(sub)) {
    throw StatusError(404, "NotFound", "the server could not find the requested resource");
  }
  ServeResource(req, w, *info, ns, name, sub);
}

json ApiServer::DecodeBody(const http::Request& req, const api::ResourceInfo& r,
                           bool strict_default) {
  return DecodeTyped(req, r.api_version(), r.kind, r.type_name, strict_default);
}

json ApiServer::DecodeTyped(const http::Request& req, const std::string& api_version,
                            const std::string& kind_want, const std::string& type_name,
                            bool strict_default) {
  std::string media = MediaType(req.Header("Content-Type"));
  std::string validation = req.Param("fieldValidation", strict_default ? "Strict" : "Warn");
  if (validation != "Strict" && validation != "Warn" && validation != "Ignore") {
    throw BadRequest("fieldValidation must be one of Ignore, Warn or Strict, not \"" + validation +
                     "\"");
  }
  if (req.body.empty()) {
    throw BadRequest("the request body is empty");
  }
  json obj;
  std::vector<std::string> duplicates;
  if (media == "application/vnd.kubernetes.protobuf") {
    try {
      api::ProtobufEnvelope env = api::DecodeEnvelope(req.body);
      if (env.api_version != api_version || env.kind != kind_want) {
        if (!registry_.FindKind(env.api_version, env.kind)) {
          throw StatusError(400, "BadRequest",
                            "protobuf bodies of kind " + env.api_version + " " + env.kind +
                                " are not served by this server");
        }
        throw BadRequest("the body holds a " + env.api_version + " " + env.kind +
                         ", but the request is for a " + api_version + " " + kind_want);
      }
      obj = api::DecodeMessage(types_, type_name, env.raw);
      obj["apiVersion"] = env.api_version;
      obj["kind"] = env.kind;
    } catch (const api::ProtobufError& e) {
      throw BadRequest(std::string("invalid protobuf body: ") + e.what());
    }
  } else if (media == "application/json" || media.empty()) {
    try {
      Decoded d = ParseJson(req.body);
      obj = std::move(d.value);
      duplicates = std::move(d.duplicate_keys);
    } catch (const ParseError& e) {
      throw Unrecognized(kind_want,
                         std::string("couldn't get version/kind; json parse error: ") + e.what(),
                         req.body);
    }
  } else if (media == "application/yaml" || media == "application/x-yaml" || media == "text/yaml") {
    try {
      Decoded d = ParseYaml(req.body);
      RejectYamlDuplicates(d);
      obj = std::move(d.value);
    } catch (const ParseError& e) {
      throw Unrecognized(kind_want,
                         std::string("couldn't get version/kind; yaml parse error: ") + e.what(),
                         req.body);
    }
  } else {
    throw api::UnsupportedMediaType(
        "the body of the request was in an unknown format - accepted "
        "media types include: application/json, application/yaml, "
        "application/vnd.kubernetes.protobuf");
  }
  if (!obj.is_object()) {
    throw Unrecognized(kind_want,
                       "couldn't get version/kind; json parse error: the body is not an object",
                       req.body);
  }
  std::string av = obj.value("apiVersion", "");
  std::string kind = obj.value("kind", "");
  if (!kind.empty() && kind != kind_want) {
    // Kubernetes decodes the body as the kind it names, then fails to convert it.
    std::string version = av.substr(av.find('/') == std::string::npos ? 0 : av.find('/') + 1);
    std::string want_group = api_version.find('/') == std::string::npos
                                 ? "core"
                                 : api_version.substr(0, api_version.find_first_of("./"));
    throw BadRequest(kind + " in version \"" + version + "\" cannot be handled as a " + kind_want +
                     ": converting (" + version + "." + kind + ") to (" + want_group + "." +
                     kind_want + "): unknown conversion");
  }
  if (!av.empty() && av != api_version) {
    throw BadRequest("the API version in the data (" + av +
                     ") does not match the expected API version (" + api_version + ")");
  }
  api::FieldProblems problems = api::CheckFields(types_, type_name, obj);
  if (!problems.errors.empty()) {
    std::string msg;
    for (const auto& e : problems.errors) {
      msg += (msg.empty() ? "" : ", ") + e;
    }
    throw BadRequest("the body has fields of the wrong type: " + msg);
  }
  if (validation == "Strict" && (!problems.unknown.empty() || !duplicates.empty())) {
    std::string msg = "strict decoding error: ";
    bool first = true;
    for (const auto& u : problems.unknown) {
      msg += (first ? "" : ", ") + ("unknown field \"" + u + "\"");
      first = false;
    }
    for (const auto& d : duplicates) {
      std::string f = d.empty() || d[0] != '.' ? d : d.substr(1);
      msg += (first ? "" : ", ") + ("duplicate field \"" + f + "\"");
      first = false;
    }
    throw BadRequest(msg);
  }
  return obj;
}

void ApiServer::ServeResource(http::Request& req, http::ResponseWriter& w,
                              const api::ResourceInfo& r, const std::string& ns,
                              const std::string& name, const std::string& sub) {
  Negotiated neg = Negotiate(req.Header("Accept"));
  const std::string& m = req.method;
  WriteOptions wo;
  std::string manager = req.Param("fieldManager");
  if (manager.size() > 128 || std::any_of(manager.begin(), manager.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
      })) {
    throw api::Invalid(
        "meta.k8s.io", "PatchOptions", "",
        {{"FieldValueInvalid",
          "Invalid value: \"" + manager + "\": must be at most 128 printable characters",
          "fieldManager"}});
  }
  // Without a fieldManager, the manager is the client's product name.
  bool apply_patch = m == "PATCH" &&
                     MediaType(req.Header("Content-Type")).rfind("application/apply-patch", 0) == 0;
  wo.field_manager = !manager.empty() || apply_patch
                         ? manager
                         : api::ManagerFromUserAgent(req.Header("User-Agent"));
  if (req.Has("force") && m == "PATCH" && !apply_patch) {
    throw api::Invalid(
        "meta.k8s.io", "PatchOptions", "",
        {{"FieldValueForbidden", "Forbidden: may not be specified for non-apply patch", "force"}});
  }
  std::string dry = req.Param("dryRun");
  if (!dry.empty() && dry != "All") {
    throw BadRequest("Invalid dryRun value: " + dry + " (only \"All\" is supported)");
  }
  wo.dry_run = dry == "All";
  if (r.namespaced && ns.empty() && (m != "GET" || !name.empty())) {
    throw StatusError(404, "NotFound", "the server could not find the requested resource");
  }
  auto respond = [&](int code, const json& obj) {
    if (neg.table && obj.contains("metadata")) {
      json lm = {{"resourceVersion", GetString(obj, "metadata.resourceVersion")}};
      WriteJson(
          w, code,
          BuildTable(r, json::array({obj}), lm, req.Param("includeObject"), neg.table_version));
    } else {
      WriteJson(w, code, obj);
    }
  };
  if (sub.empty()) {
    std::string verb =
        m == "GET"      ? (name.empty() ? (Truthy(req.Param("watch")) ? "watch" : "list") : "get")
        : m == "POST"   ? "create"
        : m == "PUT"    ? "update"
        : m == "PATCH"  ? "patch"
        : m == "DELETE" ? (name.empty() ? "deletecollection" : "delete")
                        : "";
    if (!r.has_verb(verb)) {
      throw api::MethodNotAllowed(
          "the server does not allow this method on the requested resource");
    }
  }
  if (r.virtual_resource) {
    ServeVirtual(req, w, r, ns, name);
    return;
  }
  if (sub == "scale") {
    ServeScale(req, w, r, ns, name);
    return;
  }
  if (r.group.empty() && r.plural == "pods" &&
      (sub == "log" || sub == "exec" || sub == "attach" || sub == "portforward")) {
    ServeNodeProxy(req, w, ns, name, sub);
    return;
  }
  if (m == "GET") {
    if (name.empty()) {
      if (Truthy(req.Param("watch"))) {
        ServeWatch(req, w, r, ns, "");
        return;
      }
      json list = storage_->List(r, ns, ParseList(req));
      if (neg.table) {
        WriteJson(w, 200,
                  BuildTable(r, list["items"], list["metadata"], req.Param("includeObject"),
                             neg.table_version));
      } else {
        WriteJson(w, 200, list);
      }
      return;
    }
    respond(200, storage_->Get(r, ns, name));
    return;
  }
  if (m == "POST") {
    if (!name.empty() && sub == "token" && r.plural == "serviceaccounts") {
      WriteJson(w, 201,
                tokens_->Issue(ns, name,
                               DecodeTyped(req, "authentication.k8s.io/v1", "TokenRequest",
                                           "authentication.v1.TokenRequest", false)));
      return;
    }
    if (!name.empty() && sub == "binding" && r.plural == "pods") {
      BindPod(ns, name, ParseJson(req.body).value, wo);
      WriteJson(w, 201, api::StatusSuccess());
      return;
    }
    if (!name.empty()) {
      throw api::MethodNotAllowed(
          "the server does not allow this method on the requested resource");
    }
    json obj = DecodeBody(req, r, false);
    respond(201, storage_->Create(r, ns, std::move(obj), wo));
    return;
  }
  if (m == "PUT") {
    if (name.empty()) {
      throw api::MethodNotAllowed(
          "the server does not allow this method on the requested resource");
    }
    json obj = DecodeBody(req, r, false);
    if (sub == "finalize") {
      json cur = storage_->Get(r, ns, name);
      cur["spec"]["finalizers"] = obj.contains("spec") && obj["spec"].contains("finalizers")
                                      ? obj["spec"]["finalizers"]
                                      : json::array();
      if (const json* rv = Find(obj, "metadata.resourceVersion")) {
        cur["metadata"]["resourceVersion"] = *rv;
      }
      json out = storage_->Update(r, ns, name, cur, "", wo);
      respond(200, out);
      return;
    }
    respond(200, storage_->Update(r, ns, name, std::move(obj), sub, wo));
    return;
  }
  if (m == "PATCH") {
    if (name.empty()) {
      throw api::MethodNotAllowed(
          "the server does not allow this method on the requested resource");
    }
    std::string media = MediaType(req.Header("Content-Type"));
    PatchType type;
    if (media == "application/json-patch+json") {
      type = PatchType::kJson;
    } else if (media == "application/merge-patch+json") {
      type = PatchType::kMerge;
    } else if (media == "application/strategic-merge-patch+json") {
      type = PatchType::kStrategic;
    } else if (media == "application/apply-patch+yaml" || media == "application/apply-patch+json") {
      type = PatchType::kApply;
      if (wo.field_manager.empty()) {
        throw api::Invalid("meta.k8s.io", "PatchOptions", "",
                           {{"FieldValueRequired", "Required value: is required for apply patch",
                             "fieldManager"}});
      }
    } else {
      throw api::UnsupportedMediaType(
          "the body of the request was in an unknown format - accepted "
          "media types include: application/json-patch+json, "
          "application/merge-patch+json, "
          "application/apply-patch+yaml, "
          "application/strategic-merge-patch+json");
    }
    Decoded d = type == PatchType::kApply ? ParseYaml(req.body) : ParseJson(req.body);
    if (type == PatchType::kApply) {
      RejectYamlDuplicates(d);
    }
    std::string validation = req.Param("fieldValidation", "Warn");
    if (validation == "Strict" && type != PatchType::kJson) {
      json probe = d.value;
      std::function<void(json&)> strip = [&](json& v) {
        if (v.is_object()) {
          for (auto it = v.begin(); it != v.end();) {
            if (!it.key().empty() && it.key()[0] == '$') {
              it = v.erase(it);
            } else {
              strip(it.value());
              ++it;
            }
          }
        } else if (v.is_array()) {
          for (auto& e : v) {
            strip(e);
          }
        }
      };
      strip(probe);
      api::FieldProblems p = api::CheckFields(types_, r.type_name, probe);
      if (!p.unknown.empty() || !d.duplicate_keys.empty()) {
        std::string msg = "strict decoding error: ";
        bool first = true;
        for (const auto& u : p.unknown) {
          msg += (first ? "" : ", ") + ("unknown field \"" + u + "\"");
          first = false;
        }
        for (const auto& dk : d.duplicate_keys) {
          msg += (first ? "" : ", ") +
                 ("duplicate field \"" + (dk.size() && dk[0] == '.' ? dk.substr(1) : dk) + "\"");
          first = false;
        }
        throw BadRequest(msg);
      }
    }
    if (type == PatchType::kApply) {
      std::string av = d.value.value("apiVersion", "");
      std::string kind = d.value.value("kind", "");
      if ((!av.empty() && av != r.api_version()) || (!kind.empty() && kind != r.kind)) {
        throw BadRequest("the apply body is a " + av + " " + kind + ", not a " + r.api_version() +
                         " " + r.kind);
      }
    }
    bool created = false;
    json out =
        storage_->Patch(r, ns, name, type, d.value, sub, wo, Truthy(req.Param("force")), &created);
    respond(created ? 201 : 200, out);
    return;
  }
  if (m == "DELETE") {
    json options = json::object();
    if (!req.body.empty()) {
      options = ParseJson(req.body).value;
      if (!options.is_object()) {
        throw BadRequest("the DeleteOptions body must be an object");
      }
    }
    if (req.Has("propagationPolicy")) {
      options["propagationPolicy"] = req.Param("propagationPolicy");
    }
    if (req.Has("gracePeriodSeconds")) {
      try {
        options["gracePeriodSeconds"] = std::stoll(req.Param("gracePeriodSeconds"));
      } catch (const std::exception&) {
        throw BadRequest("gracePeriodSeconds must be a number");
      }
    }
    if (const json* dr = Find(options, "dryRun"); dr && dr->is_array() && !dr->empty()) {
      wo.dry_run = true;
    }
    if (name.empty()) {
      WriteJson(w, 200, storage_->DeleteCollection(r, ns, ParseList(req), options, wo.dry_run));
      return;
    }
    auto [obj, gone] = storage_->Delete(r, ns, name, options, wo.dry_run);
    respond(gone ? 200 : 202, obj);
    return;
  }
  throw api::MethodNotAllowed("the server does not allow this method on the requested resource");
}

void ApiServer::BindPod(const std::string& ns, const std::string& name, const json& binding,
                        const WriteOptions& wo) {
  const api::ResourceInfo& r = *registry_.Find("", "v1", "pods");
  std::string node = GetString(binding, "target.name");
  if (node.empty()) {
    throw api::Invalid("", "Binding", name,
                       {{"FieldValueRequired", "Required value", "target.name"}});
  }
  // One write sets spec.nodeName and the PodScheduled condition, so nothing
  // the kubelet writes in between is lost; a concurrent change retries.
  for (int attempt = 0;; ++attempt) {
    json pod = storage_->Get(r, ns, name);
    std::string uid = GetString(binding, "metadata.uid");
    if (!uid.empty() && uid != GetString(pod, "metadata.uid")) {
      throw api::Conflict("", "pods/binding", name, "the pod's UID does not match the binding");
    }
    if (!GetString(pod, "spec.nodeName").empty()) {
      throw api::Conflict("", "pods/binding", name,
                          "pod " + name + " is already assigned to node \"" +
                              GetString(pod, "spec.nodeName") + "\"");
    }
    pod["spec"]["nodeName"] = node;
    json conditions = json::array();
    if (const json* cs = Find(pod, "status.conditions"); cs && cs->is_array()) {
      for (const auto& c : *cs) {
        if (c.value("type", "") != "PodScheduled") {
          conditions.push_back(c);
        }
      }
    }
    conditions.push_back({{"type", "PodScheduled"},
                          {"status", "True"},
                          {"lastProbeTime", nullptr},
                          {"lastTransitionTime", FormatTime(Now())}});
    pod["status"]["conditions"] = conditions;
    try {
      storage_->Update(r, ns, name, pod, "binding", wo);
      return;
    } catch (const StatusError& e) {
      if (e.code() != 409 || attempt >= 16) {
        throw;
      }
    }
  }
}

void ApiServer::ServeVirtual(http::Request& req, http::ResponseWriter& w,
                             const api::ResourceInfo& r, const std::string& ns,
                             const std::string& name) {
  if (r.group == "authentication.k8s.io") {
    ServeAuthentication(req, w, r.plural);
    return;
  }
  if (r.group == "authorization.k8s.io") {
    ServeAuthorization(req, w, r, ns);
    return;
  }
  if (r.group.empty() && r.plural == "bindings") {
    // The older form of pods/binding: the Binding names the pod.
    json binding = DecodeTyped(req, "v1", "Binding", "core.v1.Binding", false);
    std::string pod = GetString(binding, "metadata.name");
    if (pod.empty()) {
      throw api::Invalid("", "Binding", "",
                         {{"FieldValueRequired", "Required value: name or generateName is required",
                           "metadata.name"}});
    }
    WriteOptions wo;
    wo.dry_run = req.Param("dryRun") == "All";
    BindPod(ns, pod, binding, wo);
    WriteJson(w, 201, api::StatusSuccess());
    return;
  }
  if (r.group.empty() && r.plural == "componentstatuses") {
    // What kube-apiserver reports: the scheduler, the controller manager and
    // the store. The two components are healthy while their leader leases are
    // renewed (they renew every few seconds).
    const api::ResourceInfo* leases = registry_.Find("coordination.k8s.io", "v1", "leases");
    auto lease_status = [&](const std::string& lease) -> std::pair<bool, std::string> {
      try {
        json l = storage_->Get(*leases, "kube-system", lease);
        std::string renew = GetString(l, "spec.renewTime");
        int64_t duration = 15;
        if (const json* d = Find(l, "spec.leaseDurationSeconds"); d && d->is_number_integer()) {
          duration = d->get<int64_t>();
        }
        SystemTime t;
        if (ParseTime(renew, &t) && Now() - t < std::chrono::seconds(duration * 2)) {
          return {true, "ok"};
        }
        return {false, "leader lease " + lease + " was last renewed at " + renew};
      } catch (const StatusError&) {
        return {false, "no leader lease " + lease + ": the component is not running"};
      }
    };
    auto status = [](const std::string& component, bool healthy, const std::string& message) {
      json cond = {{"type", "Healthy"}, {"status", healthy ? "True" : "False"}};
      cond[healthy ? "message" : "error"] = message;
      return json{{"kind", "ComponentStatus"},
                  {"apiVersion", "v1"},
                  {"metadata", {{"name", component}}},
                  {"conditions", json::array({cond})}};
    };
    json items = json::array();
    auto [sched_ok, sched_msg] = lease_status("kube-scheduler");
    items.push_back(status("scheduler", sched_ok, sched_msg));
    auto [cm_ok, cm_msg] = lease_status("kube-controller-manager");
    items.push_back(status("controller-manager", cm_ok, cm_msg));
    items.push_back(status("etcd-0", true, "ok (minik's " + opts_.store + " store)"));
    if (!name.empty()) {
      for (const auto& item : items) {
        if (GetString(item, "metadata.name") == name) {
          WriteJson(w, 200, item);
          return;
        }
      }
      throw api::NotFound("", "componentstatuses", name);
    }
    Negotiated neg = Negotiate(req.Header("Accept"));
    if (neg.table) {
      WriteJson(
          w, 200,
          BuildTable(r, items, json::object(), req.Param("includeObject"), neg.table_version));
      return;
    }
    WriteJson(w, 200,
              {{"kind", "ComponentStatusList"},
               {"apiVersion", "v1"},
               {"metadata", json::object()},
               {"items", items}});
    return;
  }
  throw StatusError(404, "NotFound", "the server could not find the requested resource");
}

void ApiServer::ServeAuthorization(http::Request& req, http::ResponseWriter& w,
                                   const api::ResourceInfo& r, const std::string& ns) {
  json body = DecodeBody(req, r, false);
  json out = {{"apiVersion", r.api_version()},
              {"kind", r.kind},
              {"metadata", {{"creationTimestamp", nullptr}}},
              {"spec", body.value("spec", json::object())}};
  if (r.namespaced) {
    out["metadata"]["namespace"] = ns;
  }
  // minik does not enforce authorization yet: every authenticated user may
  // do everything, and the reviews say so rather than guess at RBAC.
  const char* why = "minik does not enforce authorization: every authenticated user is allowed";
  if (r.plural == "selfsubjectrulesreviews") {
    out["status"] = {
        {"resourceRules", {{{"verbs", {"*"}}, {"apiGroups", {"*"}}, {"resources", {"*"}}}}},
        {"nonResourceRules", {{{"verbs", {"*"}}, {"nonResourceURLs", {"*"}}}}},
        {"incomplete", false}};
  } else {
    out["status"] = {{"allowed", true}, {"reason", why}};
  }
  WriteJson(w, 201, out);
}

void ApiServer::ServeScale(http::Request& req, http::ResponseWriter& w, const api::ResourceInfo& r,
                           const std::string& ns, const std::string& name) {
  auto to_scale = [&](const json& obj) {
    const json* sel = Find(obj, "spec.selector");
    // A ReplicationController's selector is a plain map of labels.
    bool map_selector = sel && sel->is_object() && !sel->contains("matchLabels") &&
                        !sel->contains("matchExpressions");
    std::string selector =
        map_selector ? api::FormatLabels(*sel, "") : api::FormatSelector(sel ? *sel : json());
    if (selector == "<none>") {
      selector = "";
    }
    json meta = {{"name", GetString(obj, "metadata.name")},
                 {"uid", GetString(obj, "metadata.uid")},
                 {"resourceVersion", GetString(obj, "metadata.resourceVersion")},
                 {"creationTimestamp", GetString(obj, "metadata.creationTimestamp")}};
    if (r.namespaced) {
      meta["namespace"] = ns;
    }
    json status = {
        {"replicas", Find(obj, "status.replicas") ? *Find(obj, "status.replicas") : json(0)}};
    if (!selector.empty()) {
      status["selector"] = selector;
    }
    return json{
        {"kind", "Scale"},
        {"apiVersion", "autoscaling/v1"},
        {"metadata", meta},
        {"spec",
         {{"replicas", Find(obj, "spec.replicas") ? *Find(obj, "spec.replicas") : json(0)}}},
        {"status", status}};
  };
  WriteOptions wo;
  wo.dry_run = req.Param("dryRun") == "All";
  wo.field_manager = req.Param("fieldManager").empty()
                         ? api::ManagerFromUserAgent(req.Header("User-Agent"))
                         : req.Param("fieldManager");
  if (req.method == "GET") {
    WriteJson(w, 200, to_scale(storage_->Get(r, ns, name)));
    return;
  }
  if (req.method != "PUT" && req.method != "PATCH") {
    throw api::MethodNotAllowed("the server does not allow this method on the requested resource");
  }
  {
    json cur = storage_->Get(r, ns, name);
    json scale = to_scale(cur);
    json next;
    // Only what the client sent is a precondition, not the version it patches.
    std::string want_rv;
    if (req.method == "PUT") {
      next = ParseJson(req.body).value;
      want_rv = GetString(next, "metadata.resourceVersion");
    } else {
      std::string media = MediaType(req.Header("Content-Type"));
      json patch = ParseJson(req.body).value;
      next = media == "application/json-patch+json" ? api::ApplyJsonPatch(scale, patch)
                                                    : api::ApplyMergePatch(scale, patch);
      if (patch.is_object()) {
        want_rv = GetString(patch, "metadata.resourceVersion");
      }
    }
    const json* replicas = Find(next, "spec.replicas");
    if (!replicas || !replicas->is_number_integer() || replicas->get<int64_t>() < 0) {
      throw api::Invalid("autoscaling", "Scale", name,
                         {{"FieldValueInvalid", "Invalid value: must be greater than or equal to 0",
                           "spec.replicas"}});
    }
    if (!want_rv.empty() && want_rv != GetString(cur, "metadata.resourceVersion")) {
      throw api::Conflict(r.group, r.plural, name,
                          "the object has been modified; please apply your changes to the latest "
                          "version and try again");
    }
    json patch = {{"spec", {{"replicas", *replicas}}}};
    if (!want_rv.empty()) {
      patch["metadata"] = {{"resourceVersion", want_rv}};
    }
    wo.managed_subresource = "scale";
    json out = storage_->Patch(r, ns, name, PatchType::kMerge, patch, "", wo, false);
    WriteJson(w, 200, to_scale(out));
  }
}

void ApiServer::ServeWatch(http::Request& req, http::ResponseWriter& w, const api::ResourceInfo& r,
                           const std::string& ns, const std::string& name) {
  Negotiated neg = Negotiate(req.Header("Accept"));
  ListRequest lr = ParseList(req);
  std::string rv = req.Param("resourceVersion");
  bool bookmarks = Truthy(req.Param("allowWatchBookmarks"));
  bool initial = rv.empty() || rv == "0" || Truthy(req.Param("sendInitialEvents"));
  int64_t timeout_s = 0;
  if (req.Has("timeoutSeconds")) {
    try {
      timeout_s = std::stoll(req.Param("timeoutSeconds"));
    } catch (const std::exception&) {
      throw BadRequest("timeoutSeconds must be a number");
    }
  }
  if (timeout_s <= 0) {
    static thread_local std::mt19937 rng{std::random_device{}()};
    timeout_s = std::uniform_int_distribution<int64_t>(1800, 3600)(rng);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  auto matches = [&](const json& obj) {
    const json* labels = Find(obj, "metadata.labels");
    return lr.labels.Matches(labels ? *labels : json()) && lr.fields.Matches(obj);
  };
  bool everything = lr.labels.empty() && !lr.labels.nothing() && lr.fields.empty();
  std::string prefix = r.key_prefix(ns);
  auto queue = std::make_shared<WatchQueue>();
  std::unique_ptr<store::Watch> watch;
  std::vector<json> initial_objects;
  int64_t last_rv = 0;
  std::optional<StatusError> expired;
  if (initial && !(rv.size() && rv != "0" && !Truthy(req.Param("sendInitialEvents")))) {
    store::ListResult lr2 = store_->List(prefix);
    for (const auto& kv : lr2.items) {
      json obj = RestStorage::Present(r, RestStorage::Decode(kv));
      if (matches(obj)) {
        initial_objects.push_back(std::move(obj));
      }
    }
    last_rv = lr2.revision;
    watch = store_->WatchPrefix(prefix, last_rv, queue);
  } else {
    try {
      last_rv = std::stoll(rv);
    } catch (const std::exception&) {
      throw BadRequest("invalid resourceVersion: " + rv);
    }
    try {
      watch = store_->WatchPrefix(prefix, last_rv, queue);
    } catch (const store::Expired& e) {
      expired = api::Gone("too old resource version: " + rv + " (" +
                          std::to_string(store_->CompactedRevision()) + ")");
    }
  }
  if (!w.StartStream(200, {{"Content-Type", neg.table ? "application/json;as=Table;v=" +
                                                            neg.table_version + ";g=meta.k8s.io"
                                                      : kJson},
                           {"Cache-Control", "no-cache, private"}})) {
    return;
  }
  auto render = [&](const char* type, const json& obj) {
    json o = obj;
    if (neg.table && std::string(type) != "BOOKMARK" && std::string(type) != "ERROR") {
      json lm = {{"resourceVersion", GetString(obj, "metadata.resourceVersion")}};
      o = BuildTable(r, json::array({obj}), lm, req.Param("includeObject"), neg.table_version);
    }
    std::string line = "{\"type\":\"";
    line += type;
    line += "\",\"object\":";
    ApiEncoder().Append(o, line);
    return line + "}\n";
  };
  if (expired) {
    w.WriteChunk(render("ERROR", expired->ToStatus()));
    return;
  }
  std::string batch;
  for (const auto& o : initial_objects) {
    batch += render("ADDED", o);
    if (batch.size() > 256 * 1024) {
      if (!w.WriteChunk(batch)) {
        return;
      }
      batch.clear();
    }
  }
  auto bookmark = [&](bool initial_end) {
    json meta = {{"resourceVersion", std::to_string(last_rv)}};
    if (initial_end) {
      meta["annotations"] = {{"k8s.io/initial-events-end", "true"}};
    }
    return render("BOOKMARK",
                  {{"kind", r.kind}, {"apiVersion", r.api_version()}, {"metadata", meta}});
  };
  if (Truthy(req.Param("sendInitialEvents")) && bookmarks) {
    batch += bookmark(true);
  }
  if (!batch.empty() && !w.WriteChunk(batch)) {
    return;
  }
  auto next_bookmark = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    bool overflow = false;
    auto events = queue->Take(std::chrono::milliseconds(1000), &overflow);
    if (overflow) {
      w.WriteChunk(render(
          "ERROR", api::Gone("the watch fell too far behind; list and watch again").ToStatus()));
      return;
    }
    std::string out;
    for (const auto& e : events) {
      last_rv = e.kv.mod_revision;
      const char* type = nullptr;
      std::shared_ptr<const json> cur;
      if (everything) {
        // Every object matches: which event it is follows from the store's alone.
        type = e.type == store::Event::Type::kDelete ? (e.prev ? "DELETED" : nullptr)
               : e.prev                              ? "MODIFIED"
                                                     : "ADDED";
      } else {
        cur = encoded_.Object(e.kv, r);
        bool now = e.type == store::Event::Type::kPut && matches(*cur);
        bool before = e.prev && matches(*encoded_.Object(*e.prev, r));
        type = e.type == store::Event::Type::kDelete ? (before ? "DELETED" : nullptr)
               : now && before                       ? "MODIFIED"
               : now                                 ? "ADDED"
               : before                              ? "DELETED"
                                                     : nullptr;
      }
      if (!type) {
        continue;
      }
      if (neg.table) {
        out += render(type, *encoded_.Object(e.kv, r));
      } else {
        // The object's text is shared by every watch of it.
        out += "{\"type\":\"";
        out += type;
        out += "\",\"object\":";
        out += *encoded_.Text(e.kv, r);
        out += "}\n";
      }
    }
    if (bookmarks && std::chrono::steady_clock::now() > next_bookmark) {
      out += bookmark(false);
      next_bookmark = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    }
    if (!out.empty()) {
      if (!w.WriteChunk(out)) {
        return;
      }
    } else if (w.ClientGone()) {
      return;
    }
  }
}

}  // namespace minik::apiserver

namespace minik::apiserver {

void ApiServer::ServeNodeProxy(http::Request& req, http::ResponseWriter& w, const std::string& ns,
                               const std::string& name, const std::string& sub) {
  const api::ResourceInfo* pods = registry_.Find("", "v1", "pods");
  const api::ResourceInfo* nodes = registry_.Find("", "v1", "nodes");
  json pod = storage_->Get(*pods, ns, name);
  std::string node_name = GetString(pod, "spec.nodeName");
  if (node_name.empty()) {
    throw BadRequest("pod " + name + " does not have a host assigned");
  }
  json node = storage_->Get(*nodes, "", node_name);
  if (GetString(node, "metadata.labels.type") == "hollow") {
    throw BadRequest("pod " + name + " runs on the hollow node " + node_name +
                     ", which simulates containers: logs, exec, attach and port-forward need a "
                     "real node");
  }
  std::string host;
  for (const auto& a : node["status"].value("addresses", json::array())) {
    if (a.value("type", "") == "InternalIP") {
      host = a.value("address", "");
    }
  }
  int port = node["status"]
                 .value("daemonEndpoints", json::object())
                 .value("kubeletEndpoint", json::object())
                 .value("Port", 10250);
  if (host.empty()) {
    throw StatusError(503, "ServiceUnavailable",
                      "node " + node_name + " has no InternalIP address");
  }
  // Which container: the one named, or the only one.
  std::string container = req.Param("container");
  if (container.empty() && sub != "portforward") {
    json cs = pod["spec"].value("containers", json::array());
    if (cs.size() == 1) {
      container = cs[0].value("name", "");
    } else {
      std::string names;
      for (const auto& c : cs) {
        names += (names.empty() ? "" : " ") + c.value("name", "");
      }
      throw BadRequest("a container name must be specified for pod " + name + ", choose one of: [" +
                       names + "]");
    }
  }
  std::string query;
  for (const auto& [k, v] : req.query) {
    if (k == "container") {
      continue;
    }
    query += (query.empty() ? "?" : "&") + http::PercentEncode(k) + "=" + http::PercentEncode(v);
  }
  std::string path = sub == "log"           ? "/containerLogs/" + ns + "/" + name + "/" + container
                     : sub == "portforward" ? "/portForward/" + ns + "/" + name
                                            : "/" + sub + "/" + ns + "/" + name + "/" + container;
  std::string ca = fs::ReadFile(opts_.cert_dir + "/ca.crt");
  std::string cert = fs::ReadFile(opts_.cert_dir + "/apiserver-kubelet-client.crt");
  std::string key = fs::ReadFile(opts_.cert_dir + "/apiserver-kubelet-client.key");
  if (sub == "log") {
    http::ClientOptions o;
    o.ca_pem = ca;
    o.cert_pem = cert;
    o.key_pem = key;
    o.timeout_ms = 0;
    http::Client c("https://" + host + ":" + std::to_string(port), o);
    bool started = false;
    std::string early;
    int status = 0;
    http::ClientResponse r = c.Stream(path + query, [&](std::string_view data) {
      if (!started) {
        // The status is known once data arrives; errors are short, keep them whole.
        early.append(data);
        if (early.size() < 4096) {
          return true;
        }
        if (!w.StartStream(200, {{"Content-Type", "text/plain"}})) {
          return false;
        }
        started = true;
        return w.WriteChunk(early);
      }
      return w.WriteChunk(data);
    });
    status = r.status;
    if (started) {
      return;
    }
    if (status == 0) {
      throw StatusError(
          500, "InternalError",
          "Get \"https://" + host + ":" + std::to_string(port) + path + "\": " + r.error);
    }
    if (status != 200) {
      while (!early.empty() && early.back() == '\n') {
        early.pop_back();
      }
      throw StatusError(status == 404 ? 404 : 400, status == 404 ? "NotFound" : "BadRequest",
                        early);
    }
    w.Send(200, {{"Content-Type", "text/plain"}}, early);
    return;
  }
  // exec, attach, port-forward: the same request to the kubelet, then the
  // upgraded connections are joined byte for byte.
  std::unique_ptr<tls::Conn> kc;
  try {
    kc = tls::Conn::Dial(host, port, ca, cert, key);
  } catch (const std::exception& e) {
    throw StatusError(500, "InternalError", std::string("error dialing the kubelet: ") + e.what());
  }
  std::string head = req.method + " " + path + query + " HTTP/1.1\r\nHost: " + host + ":" +
                     std::to_string(port) + "\r\n";
  for (const auto& [k, v] : req.headers) {
    std::string lk = k;
    for (auto& ch : lk) {
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    if (lk == "host" || lk == "authorization" || lk == "content-length") {
      continue;
    }
    head += k + ": " + v + "\r\n";
  }
  head += "Content-Length: 0\r\n\r\n";
  if (!kc->Write(head)) {
    throw StatusError(500, "InternalError", "the kubelet closed the connection");
  }
  http::Headers rh;
  std::string reason;
  int code = kc->ReadResponseHead(&rh, &reason);
  if (code != 101) {
    std::string body;
    char buf[4096];
    size_t k;
    while (kc->WaitReadable(2000) && (k = kc->Read(buf, sizeof(buf))) > 0 && body.size() < 65536) {
      body.append(buf, k);
    }
    throw StatusError(code >= 400 ? code : 500, code == 404 ? "NotFound" : "BadRequest",
                      body.empty() ? reason : body);
  }
  http::Headers up;
  for (const auto& [k, v] : rh) {
    up[k] = v;
  }
  std::unique_ptr<http::RawStream> client = w.Upgrade(101, up);
  http::RawStream* a = client.get();
  http::RawStream* b = kc.get();
  std::thread back([a, b] {
    char buf[65536];
    size_t k;
    while ((k = b->Read(buf, sizeof(buf))) > 0) {
      if (!a->Write(std::string_view(buf, k))) {
        break;
      }
    }
    a->Close();
  });
  char buf[65536];
  size_t k;
  while ((k = a->Read(buf, sizeof(buf))) > 0) {
    if (!b->Write(std::string_view(buf, k))) {
      break;
    }
  }
  b->Close();
  back.join();
}

}  // namespace minik::apiserver
