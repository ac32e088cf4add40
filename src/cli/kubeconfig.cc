#include "cli/kubeconfig.h"

#include <cstdlib>

#include "common/base64.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/json.h"

namespace minik::cli {
namespace {

json Load(const std::string& path) {
  if (!fs::Exists(path)) {
    return {{"apiVersion", "v1"}, {"kind", "Config"}, {"preferences", json::object()}};
  }
  std::string text = fs::ReadFile(path);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return {{"apiVersion", "v1"}, {"kind", "Config"}, {"preferences", json::object()}};
  }
  try {
    json c = ParseYaml(text).value;
    if (!c.is_object()) {
      throw ParseError("not a mapping");
    }
    return c;
  } catch (const ParseError& e) {
    throw Error("kubeconfig '" + path + "' is not valid YAML (" + e.what() +
                "); fix it or point KUBECONFIG at another file");
  }
}

void Upsert(json& config, const char* list, const std::string& name, const char* key,
            const json& value) {
  json& arr = config[list];
  if (!arr.is_array()) {
    arr = json::array();
  }
  for (auto& e : arr) {
    if (e.value("name", "") == name) {
      e[key] = value;
      return;
    }
  }
  arr.push_back({{"name", name}, {key, value}});
}

void Remove(json& config, const char* list, const std::string& name) {
  if (!config.contains(list) || !config[list].is_array()) {
    return;
  }
  json kept = json::array();
  for (auto& e : config[list]) {
    if (e.value("name", "") != name) {
      kept.push_back(e);
    }
  }
  config[list] = kept;
}

}  // namespace

std::string KubeconfigPath() {
  if (const char* k = std::getenv("KUBECONFIG"); k && *k) {
    std::string s = k;
    return s.substr(0, s.find(':'));
  }
  return fs::HomeDir() + "/.kube/config";
}

void MergeKubeconfig(const KubeconfigEntry& e) {
  std::string path = KubeconfigPath();
  json c = Load(path);
  Upsert(c, "clusters", e.name, "cluster",
         {{"certificate-authority-data", base64::Encode(e.ca_pem)}, {"server", e.server}});
  Upsert(c, "users", e.name, "user",
         {{"client-certificate-data", base64::Encode(e.client_cert_pem)},
          {"client-key-data", base64::Encode(e.client_key_pem)}});
  Upsert(c, "contexts", e.name, "context",
         {{"cluster", e.name}, {"user", e.name}, {"namespace", e.ns}});
  c["current-context"] = e.name;
  auto slash = path.rfind('/');
  if (slash != std::string::npos) {
    fs::MakeDirs(path.substr(0, slash), 0755);
  }
  fs::WriteFileAtomic(path, ToYaml(c), 0600);
}

void RemoveKubeconfig(const std::string& name) {
  std::string path = KubeconfigPath();
  if (!fs::Exists(path)) {
    return;
  }
  json c = Load(path);
  Remove(c, "clusters", name);
  Remove(c, "users", name);
  Remove(c, "contexts", name);
  if (c.value("current-context", "") == name) {
    c["current-context"] = "";
  }
  fs::WriteFileAtomic(path, ToYaml(c), 0600);
}

bool KubeconfigHas(const std::string& name, const std::string& server) {
  try {
    json c = Load(KubeconfigPath());
    for (const auto& cl : c.value("clusters", json::array())) {
      if (cl.value("name", "") == name && GetString(cl, "cluster.server") == server) {
        return true;
      }
    }
  } catch (const Error&) {
    return false;
  }
  return false;
}

}  // namespace minik::cli
