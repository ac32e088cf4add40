// Digests, platforms and image configs.

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>

#include "common/error.h"
#include "kubelet/images/internal.h"

namespace minik::kubelet::images::internal {

bool IsIndexMediaType(const std::string& t) {
  return t == kOciIndex || t == kDockerManifestList;
}
bool IsManifestMediaType(const std::string& t) {
  return t == kOciManifest || t == kDockerManifest;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1) {
    throw Error("sha256: cannot initialize OpenSSL's digest");
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

void Sha256::Update(const void* data, size_t n) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n);
}

std::string Sha256::Digest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

std::string Sha256Digest(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Digest();
}

std::string Sha256FileDigest(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw SystemError("open '" + path + "'", errno);
  }
  Sha256 h;
  std::string buf(1 << 20, '\0');
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw SystemError("read '" + path + "'", err);
    }
    if (n == 0) {
      break;
    }
    h.Update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return h.Digest();
}

bool IsSha256Digest(const std::string& d) {
  if (d.size() != 71 || d.compare(0, 7, "sha256:") != 0) {
    return false;
  }
  return d.find_first_not_of("0123456789abcdef", 7) == std::string::npos;
}

std::string DigestHex(const std::string& digest, const std::string& what) {
  if (!IsSha256Digest(digest)) {
    throw Error(what + " \"" + digest + "\" is not a sha256 digest (sha256:<64 hex digits>)");
  }
  return digest.substr(7);
}

std::string ChainId(const std::string& parent_chain_id, const std::string& diff_id) {
  if (parent_chain_id.empty()) {
    return diff_id;
  }
  return Sha256Digest(parent_chain_id + " " + diff_id);
}

Platform HostPlatform() {
  Platform p;
  struct utsname u;
  std::string m = ::uname(&u) == 0 ? u.machine : "x86_64";
  if (m == "x86_64") {
    p.architecture = "amd64";
  } else if (m == "aarch64" || m == "arm64") {
    p.architecture = "arm64";
    p.variant = "v8";
  } else if (m.rfind("armv7", 0) == 0) {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (m.rfind("armv6", 0) == 0) {
    p.architecture = "arm";
    p.variant = "v6";
  } else if (m == "i386" || m == "i686") {
    p.architecture = "386";
  } else {
    p.architecture = m;  // ppc64le, s390x, riscv64 are spelled the same
  }
  return p;
}

json ChoosePlatform(const json& index, const Platform& want) {
  const json* manifests = index.contains("manifests") ? &index["manifests"] : nullptr;
  if (!manifests || !manifests->is_array() || manifests->empty()) {
    throw Error("the image index lists no manifests");
  }
  const json* best = nullptr;
  int best_score = -1;
  std::vector<std::string> seen;
  for (const auto& m : *manifests) {
    if (!m.is_object()) {
      continue;
    }
    // Build attestations (`unknown/unknown`) are not images.
    if (m.contains("annotations") && m["annotations"].is_object() &&
        m["annotations"].value("vnd.docker.reference.type", "") == "attestation-manifest") {
      continue;
    }
    if (!m.contains("platform") || !m["platform"].is_object()) {
      if (manifests->size() == 1) {
        return m;
      }
      continue;
    }
    const json& p = m["platform"];
    std::string os = p.value("os", ""), arch = p.value("architecture", ""),
                variant = p.value("variant", "");
    seen.push_back(os + "/" + arch + (variant.empty() ? "" : "/" + variant));
    if (os != want.os || arch != want.architecture) {
      continue;
    }
    // An exact variant is best, no variant next; amd64's micro-architecture
    // levels above v1 (v2, v3) may not run on this CPU, so they come last.
    int score = 1;
    if (variant == want.variant) {
      score = 3;
    } else if (variant.empty() || (want.architecture == "arm64" && variant == "v8")) {
      score = 2;
    } else if (want.architecture == "arm64" || want.architecture == "arm") {
      continue;
    }
    if (score > best_score) {
      best = &m;
      best_score = score;
    }
  }
  if (!best) {
    std::string list;
    for (const auto& s : seen) {
      list += (list.empty() ? "" : ", ") + s;
    }
    throw Error("no manifest for " + want.os + "/" + want.architecture +
                (want.variant.empty() ? "" : "/" + want.variant) + " in the image index (it has " +
                (list.empty() ? "none with a platform" : list) + ")");
  }
  return *best;
}

namespace {

std::vector<std::string> Strings(const json& c, const char* key) {
  std::vector<std::string> out;
  if (c.contains(key) && c[key].is_array()) {
    for (const auto& v : c[key]) {
      if (v.is_string()) {
        out.push_back(v.get<std::string>());
      }
    }
  }
  return out;
}

}  // namespace

ImageConfig ParseImageConfig(const json& config) {
  ImageConfig out;
  if (!config.is_object() || !config.contains("config") || !config["config"].is_object()) {
    return out;
  }
  const json& c = config["config"];
  out.entrypoint = Strings(c, "Entrypoint");
  out.cmd = Strings(c, "Cmd");
  out.env = Strings(c, "Env");
  if (c.contains("WorkingDir") && c["WorkingDir"].is_string()) {
    out.working_dir = c["WorkingDir"].get<std::string>();
  }
  if (c.contains("User") && c["User"].is_string()) {
    out.user = c["User"].get<std::string>();
  }
  if (c.contains("ExposedPorts") && c["ExposedPorts"].is_object()) {
    for (const auto& [port, _] : c["ExposedPorts"].items()) {
      out.exposed_ports.push_back(port);
    }
  }
  if (c.contains("Labels") && c["Labels"].is_object()) {
    out.labels = c["Labels"];
  }
  return out;
}

json ImageConfigToJson(const ImageConfig& c) {
  return {{"entrypoint", c.entrypoint},
          {"cmd", c.cmd},
          {"env", c.env},
          {"working_dir", c.working_dir},
          {"user", c.user},
          {"exposed_ports", c.exposed_ports},
          {"labels", c.labels}};
}

ImageConfig ImageConfigFromJson(const json& j) {
  ImageConfig c;
  if (!j.is_object()) {
    return c;
  }
  c.entrypoint = j.value("entrypoint", std::vector<std::string>{});
  c.cmd = j.value("cmd", std::vector<std::string>{});
  c.env = j.value("env", std::vector<std::string>{});
  c.working_dir = j.value("working_dir", "");
  c.user = j.value("user", "");
  c.exposed_ports = j.value("exposed_ports", std::vector<std::string>{});
  c.labels = j.contains("labels") && j["labels"].is_object() ? j["labels"] : json::object();
  return c;
}

}  // namespace minik::kubelet::images::internal
