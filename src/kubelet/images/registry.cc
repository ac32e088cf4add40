// Pulls over the OCI distribution API (the Docker registry HTTP API v2):
// ping, bearer-token or basic auth, manifests and indexes, blobs verified
// against their digests.

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include "common/base64.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/http_client.h"
#include "kubelet/images/internal.h"

namespace minik::kubelet::images::internal {
namespace {

constexpr size_t kMaxManifestBytes = 4 << 20;
constexpr size_t kMaxConfigBytes = 16 << 20;

bool IsLoopbackHost(const std::string& domain) {
  std::string host = domain;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    host.resize(colon);
  }
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// One challenge of a WWW-Authenticate header:
// `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."`.
struct Challenge {
  std::string scheme;  // lower case
  std::map<std::string, std::string> params;
};

Challenge ParseChallenge(const std::string& header) {
  Challenge c;
  size_t i = 0;
  while (i < header.size() && header[i] == ' ') {
    ++i;
  }
  size_t start = i;
  while (i < header.size() && header[i] != ' ') {
    ++i;
  }
  for (size_t k = start; k < i; ++k) {
    c.scheme += static_cast<char>(std::tolower(static_cast<unsigned char>(header[k])));
  }
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) {
      ++i;
    }
    size_t eq = header.find('=', i);
    if (eq == std::string::npos) {
      break;
    }
    std::string key;
    for (size_t k = i; k < eq; ++k) {
      key += static_cast<char>(std::tolower(static_cast<unsigned char>(header[k])));
    }
    i = eq + 1;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) {
          ++i;
        }
        value += header[i++];
      }
      ++i;
    } else {
      while (i < header.size() && header[i] != ',') {
        value += header[i++];
      }
    }
    c.params[key] = value;
  }
  return c;
}

// The registry's own explanation (`{"errors":[{"code":..,"message":..}]}`), or
// the start of the body.
std::string Explain(const http::ClientResponse& r) {
  if (!r.error.empty() && r.status == 0) {
    return r.error;
  }
  std::string why = std::to_string(r.status);
  try {
    json j = json::parse(r.body);
    if (j.contains("errors") && j["errors"].is_array()) {
      for (const auto& e : j["errors"]) {
        why += " " + e.value("code", "") + ": " + e.value("message", "");
      }
      return why;
    }
    if (j.contains("details") || j.contains("error")) {
      return why + " " + j.value("details", j.value("error", ""));
    }
  } catch (const json::exception&) {
  }
  std::string body = r.body.substr(0, 200);
  for (auto& ch : body) {
    if (ch == '\n' || ch == '\r') {
      ch = ' ';
    }
  }
  if (!r.error.empty()) {
    why += " (" + r.error + ")";
  }
  return body.empty() ? why : why + " " + body;
}

struct Manifest {
  std::string body, media_type, digest;
};

class Registry {
 public:
  Registry(const Reference& ref, const std::optional<RegistryAuth>& auth)
      : repo_(ref.path), auth_(auth), client_(BaseUrl(ref.domain), Options()) {
    base_ = BaseUrl(ref.domain);
    if (auth_ && !auth_->identity_token.empty()) {
      authorization_ = "Bearer " + auth_->identity_token;
    }
  }

  // GET /v2/: is this a registry, and which authentication does it want?
  void Ping() {
    http::ClientRequest req;
    req.url = "/v2/";
    if (!authorization_.empty()) {
      req.headers.emplace_back("Authorization", authorization_);
    }
    http::ClientResponse r = client_.Send(req);
    if (r.status == 200) {
      return;
    }
    if (r.status == 401) {
      // The ping's challenge names no repository (or a placeholder): ask for ours.
      Authenticate(r, false);
      return;
    }
    throw Error(
        "GET " + base_ + "/v2/: " +
        (r.status == 0 ? r.error : Explain(r) + (r.status == 404 ? " (not a registry?)" : "")));
  }

  Manifest GetManifest(const std::string& tag_or_digest) {
    std::string path = "/v2/" + repo_ + "/manifests/" + tag_or_digest;
    http::ClientRequest req;
    req.url = path;
    req.headers = {{"Accept", std::string(kOciIndex) + ", " + kDockerManifestList + ", " +
                                  kOciManifest + ", " + kDockerManifest}};
    req.follow_redirects = true;
    http::ClientResponse r = Send(req);
    if (r.status != 200 || !r.error.empty()) {
      throw Error("GET " + base_ + path + ": " + Explain(r));
    }
    if (r.body.size() > kMaxManifestBytes) {
      throw Error("GET " + base_ + path + ": the manifest is larger than 4 MiB");
    }
    Manifest m;
    m.body = r.body;
    m.digest = Sha256Digest(r.body);
    if (tag_or_digest.rfind("sha256:", 0) == 0 && m.digest != tag_or_digest) {
      throw Error("GET " + base_ + path + ": the manifest has digest " + m.digest);
    }
    std::string header = r.Header("Docker-Content-Digest");
    if (header.rfind("sha256:", 0) == 0 && header != m.digest) {
      throw Error("GET " + base_ + path + ": the manifest has digest " + m.digest +
                  " where Docker-Content-Digest says " + header);
    }
    json j;
    try {
      j = json::parse(r.body);
    } catch (const json::exception& e) {
      throw Error("GET " + base_ + path + ": the manifest is not JSON: " + e.what());
    }
    if (!j.is_object()) {
      throw Error("GET " + base_ + path + ": the manifest is not a JSON object");
    }
    if (j.value("schemaVersion", 0) == 1) {
      throw Error("GET " + base_ + path +
                  ": a schema 1 manifest, which minik does not read (push the image again with a "
                  "current Docker)");
    }
    // The body's mediaType wins; OCI manifests may leave it to Content-Type.
    m.media_type = j.value("mediaType", "");
    if (m.media_type.empty()) {
      m.media_type = r.content_type.substr(0, r.content_type.find(';'));
    }
    if (!IsIndexMediaType(m.media_type) && !IsManifestMediaType(m.media_type)) {
      if (j.contains("manifests")) {
        m.media_type = kOciIndex;
      } else if (j.contains("layers") && j.contains("config")) {
        m.media_type = kOciManifest;
      } else {
        throw Error("GET " + base_ + path + ": unsupported manifest type \"" + m.media_type + "\"");
      }
    }
    return m;
  }

  std::string GetSmallBlob(const std::string& digest, int64_t size) {
    if (size > static_cast<int64_t>(kMaxConfigBytes)) {
      throw Error("blob " + digest + " is larger than 16 MiB");
    }
    std::string path = "/v2/" + repo_ + "/blobs/" + digest;
    http::ClientRequest req;
    req.url = path;
    req.follow_redirects = true;
    http::ClientResponse r = Send(req);
    if (r.status != 200 || !r.error.empty()) {
      throw Error("GET " + base_ + path + ": " + Explain(r));
    }
    std::string got = Sha256Digest(r.body);
    if (got != digest) {
      throw Error("GET " + base_ + path + ": the content has digest " + got);
    }
    return r.body;
  }

  // Streams a blob into `dest`, checking its digest and size on the way.
  void DownloadBlob(const std::string& digest, int64_t size, const std::string& dest) {
    std::string path = "/v2/" + repo_ + "/blobs/" + digest;
    int fd = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      throw SystemError("create '" + dest + "'", errno);
    }
    Sha256 h;
    int64_t received = 0;
    int write_errno = 0;
    http::ClientRequest req;
    req.url = path;
    req.follow_redirects = true;
    req.timeout_ms = 0;
    req.on_data = [&](std::string_view data) {
      h.Update(data);
      received += static_cast<int64_t>(data.size());
      if (size >= 0 && received > size) {
        return false;
      }
      for (size_t off = 0; off < data.size();) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) {
          continue;
        }
        if (n < 0) {
          write_errno = errno;
          return false;
        }
        off += static_cast<size_t>(n);
      }
      return true;
    };
    http::ClientResponse r = Send(req);
    bool synced = ::fsync(fd) == 0;
    ::close(fd);
    auto fail = [&](const std::string& why) {
      ::unlink(dest.c_str());
      throw Error("GET " + base_ + path + ": " + why);
    };
    if (write_errno) {
      fail(std::string("write '") + dest + "': " + std::strerror(write_errno));
    }
    if (size >= 0 && received > size) {
      fail("more than the " + std::to_string(size) + " bytes its descriptor says");
    }
    if (r.status != 200 || !r.error.empty()) {
      fail(Explain(r));
    }
    if (!synced) {
      fail("sync '" + dest + "': " + std::strerror(errno));
    }
    if (size >= 0 && received != size) {
      fail(std::to_string(received) + " bytes where its descriptor says " + std::to_string(size));
    }
    std::string got = h.Digest();
    if (got != digest) {
      fail("the content has digest " + got);
    }
  }

  const std::string& base() const { return base_; }

 private:
  static std::string BaseUrl(const std::string& domain) {
    std::string host = domain == "docker.io" ? "registry-1.docker.io" : domain;
    return (IsLoopbackHost(host) ? "http://" : "https://") + host;
  }

  static http::ClientOptions Options() {
    http::ClientOptions o;
    o.system_cas = true;
    o.timeout_ms = 60000;
    o.connect_timeout_ms = 15000;
    return o;
  }

  // Sends with the current credentials; a 401 is answered once by
  // authenticating for the challenge it carries, then the request is retried.
  http::ClientResponse Send(http::ClientRequest req) {
    auto base_headers = req.headers;
    for (int attempt = 0;; ++attempt) {
      req.headers = base_headers;
      if (!authorization_.empty()) {
        req.headers.emplace_back("Authorization", authorization_);
      }
      http::ClientResponse r = client_.Send(req);
      if (r.status != 401 || attempt > 0) {
        return r;
      }
      Authenticate(r, true);
    }
  }

  // Answers a 401: basic credentials, or a bearer token from the challenge's
  // realm for the challenge's scope (`challenge_scope`) or this repository's.
  void Authenticate(const http::ClientResponse& r, bool challenge_scope) {
    std::string header = r.Header("WWW-Authenticate");
    Challenge c = ParseChallenge(header);
    if (c.scheme == "basic") {
      if (!auth_ || auth_->username.empty()) {
        throw Error(base_ + " wants a user name and password (" + header +
                    "); give them in an imagePullSecret or with --username");
      }
      std::string basic = "Basic " + base64::Encode(auth_->username + ":" + auth_->password);
      if (authorization_ == basic) {
        throw Error(base_ + ": 401 unauthorized: incorrect user name or password");
      }
      authorization_ = basic;
      return;
    }
    if (c.scheme != "bearer" || c.params["realm"].empty()) {
      throw Error(base_ + ": 401 unauthorized" +
                  (header.empty() ? " without a WWW-Authenticate challenge"
                                  : " with an unsupported challenge: " + header));
    }
    std::string scope = challenge_scope && c.params.count("scope") ? c.params["scope"] : "";
    if (scope.empty()) {
      scope = "repository:" + repo_ + ":pull";
    }
    std::string url = c.params["realm"];
    url += (url.find('?') == std::string::npos ? "?" : "&");
    if (!c.params["service"].empty()) {
      url += "service=" + http::PercentEncode(c.params["service"]) + "&";
    }
    url += "scope=" + http::PercentEncode(scope);
    http::Client token_client(url.substr(0, url.find('/', url.find("://") + 3)), Options());
    http::ClientRequest req;
    req.url = url;
    req.follow_redirects = true;
    if (auth_ && !auth_->username.empty()) {
      req.headers.emplace_back("Authorization",
                               "Basic " + base64::Encode(auth_->username + ":" + auth_->password));
    }
    http::ClientResponse tr = token_client.Send(req);
    if (tr.status != 200 || !tr.error.empty()) {
      throw Error("GET " + url + ": " + Explain(tr) +
                  (tr.status == 401 ? " (incorrect user name or password?)" : ""));
    }
    std::string token;
    try {
      json j = json::parse(tr.body);
      token = j.value("token", "");
      if (token.empty()) {
        token = j.value("access_token", "");
      }
    } catch (const json::exception& e) {
      throw Error("GET " + url + ": the answer is not JSON: " + e.what());
    }
    if (token.empty()) {
      throw Error("GET " + url + ": the answer has neither `token` nor `access_token`");
    }
    std::string bearer = "Bearer " + token;
    if (bearer == authorization_) {
      throw Error(base_ + ": 401 unauthorized with a fresh token for " + scope);
    }
    authorization_ = bearer;
  }

  std::string base_;
  std::string repo_;
  std::optional<RegistryAuth> auth_;
  std::string authorization_;
  http::Client client_;
};

bool IsLayerMediaType(const std::string& t) {
  return t == kOciLayer || t == kOciLayerGzip || t == kDockerLayer || t == kDockerLayerGzip ||
         t == "application/vnd.oci.image.layer.nondistributable.v1.tar" ||
         t == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
         t == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
}

std::string HumanSize(int64_t n) {
  char buf[32];
  if (n >= 1000 * 1000) {
    std::snprintf(buf, sizeof(buf), "%.1fMB", static_cast<double>(n) / 1e6);
  } else if (n >= 1000) {
    std::snprintf(buf, sizeof(buf), "%.1fkB", static_cast<double>(n) / 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%lldB", static_cast<long long>(n));
  }
  return buf;
}

}  // namespace

Image PullFromRegistry(Layout& layout, const Reference& ref,
                       const std::optional<RegistryAuth>& auth, const Progress& progress) {
  Registry reg(ref, auth);
  auto say = [&](const std::string& s) {
    if (progress) {
      progress(s);
    }
  };
  say("Pulling " + ref.String() + " from " + reg.base());
  reg.Ping();
  Manifest top = reg.GetManifest(ref.digest.empty() ? ref.tag : ref.digest);
  Manifest m = top;
  if (IsIndexMediaType(top.media_type)) {
    json chosen = ChoosePlatform(json::parse(top.body), HostPlatform());
    std::string digest = chosen.value("digest", "");
    DigestHex(digest, "manifest digest in the index");
    m = reg.GetManifest(digest);
    if (!IsManifestMediaType(m.media_type)) {
      throw Error("manifest " + digest + " of the index is a " + m.media_type +
                  ", not an image manifest");
    }
  }
  json manifest = json::parse(m.body);
  if (!manifest.contains("config") || !manifest["config"].is_object() ||
      !manifest.contains("layers") || !manifest["layers"].is_array()) {
    throw Error("manifest " + m.digest + " has no config or layers");
  }
  std::string config_digest = manifest["config"].value("digest", "");
  DigestHex(config_digest, "config digest");
  int64_t config_size = manifest["config"].value("size", int64_t{-1});
  std::string config_json = layout.HasBlob(config_digest)
                                ? fs::ReadFile(layout.BlobPath(config_digest))
                                : reg.GetSmallBlob(config_digest, config_size);
  json config = json::parse(config_json);
  std::vector<std::string> diff_ids;
  if (config.contains("rootfs") && config["rootfs"].is_object()) {
    diff_ids = config["rootfs"].value("diff_ids", std::vector<std::string>{});
  }
  std::vector<LayerRecord> layers;
  for (const auto& d : manifest["layers"]) {
    std::string type = d.value("mediaType", "");
    if (!IsLayerMediaType(type)) {
      throw Error("layer " + d.value("digest", "?") + " has media type \"" + type +
                  "\", which minik does not unpack (plain and gzip tars only)");
    }
    LayerRecord l;
    l.digest = d.value("digest", "");
    DigestHex(l.digest, "layer digest");
    l.media_type = type;
    l.size = d.value("size", int64_t{-1});
    layers.push_back(l);
  }
  if (diff_ids.size() != layers.size()) {
    throw Error("image config " + config_digest + " lists " + std::to_string(diff_ids.size()) +
                " layers (rootfs.diff_ids) where the manifest has " +
                std::to_string(layers.size()));
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    layers[i].diff_id = diff_ids[i];
    DigestHex(diff_ids[i], "diff id");
    const std::string& d = layers[i].digest;
    std::string short_id = DigestHex(d).substr(0, 12);
    if (layout.HasBlob(d)) {
      say(short_id + ": already exists");
      continue;
    }
    say(short_id + ": downloading " + HumanSize(layers[i].size));
    std::string tmp = layout.TempPath("download");
    reg.DownloadBlob(d, layers[i].size, tmp);
    if (::rename(tmp.c_str(), layout.BlobPath(d).c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      throw SystemError("rename '" + tmp + "'", err);
    }
    say(short_id + ": downloaded");
  }
  layout.EnsureLayers(layers, progress);
  NewImage img;
  img.config_json = config_json;
  img.manifest_json = m.body;
  img.manifest_media_type = m.media_type;
  img.layers = layers;
  if (ref.digest.empty()) {
    img.refs.push_back(ref.Name() + ":" + ref.tag);
  }
  img.digests.push_back(ref.Name() + "@" + top.digest);
  Image out = layout.Commit(std::move(img), nullptr);
  say("Digest: " + top.digest);
  say("Status: downloaded " + ref.String());
  return out;
}

}  // namespace minik::kubelet::images::internal
