#include "cli/profile.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include "common/error.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/tls.h"

namespace minik::cli {

std::string MinikHome() {
  if (const char* h = std::getenv("MINIK_HOME"); h && *h) {
    return h;
  }
  return fs::HomeDir() + "/.minik";
}

std::string ProfileDir(const std::string& profile) {
  return MinikHome() + "/profiles/" + profile;
}

std::vector<std::string> ListProfiles() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(MinikHome() + "/profiles", ec)) {
    if (e.is_directory() && fs::Exists(e.path().string() + "/config.json")) {
      out.push_back(e.path().filename().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void CheckProfileName(const std::string& profile) {
  static const std::regex kName("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  if (profile.size() > 40 || !std::regex_match(profile, kName)) {
    throw Error("invalid profile name '" + profile +
                "': use lower-case letters, digits and '-', starting and ending with a letter or "
                "digit, at most 40 characters");
  }
}

bool LoadProfile(const std::string& profile, ProfileConfig* out) {
  std::string path = ProfileDir(profile) + "/config.json";
  if (!fs::Exists(path)) {
    return false;
  }
  json c;
  try {
    c = ParseJson(fs::ReadFile(path)).value;
  } catch (const ParseError& e) {
    throw Error("profile config '" + path + "' is corrupt: " + e.what() +
                "; run `minik delete -p " + profile + "` and start again");
  }
  out->name = profile;
  out->driver = c.value("driver", "native");
  out->apiserver_port = c.value("apiserverPort", 0);
  out->store = c.value("store", "sqlite");
  out->hollow_nodes = c.value("hollowNodes", 0);
  out->kubelet = c.value("kubelet", true);
  out->kubelet_port = c.value("kubeletPort", 0);
  out->extra_config = c.value("extraConfig", std::vector<std::string>{});
  return true;
}

void SaveProfile(const ProfileConfig& c) {
  fs::MakeDirs(ProfileDir(c.name), 0700);
  json j = {{"name", c.name},
            {"driver", c.driver},
            {"apiserverPort", c.apiserver_port},
            {"store", c.store},
            {"hollowNodes", c.hollow_nodes},
            {"kubelet", c.kubelet},
            {"kubeletPort", c.kubelet_port},
            {"extraConfig", c.extra_config}};
  fs::WriteFileAtomic(ProfileDir(c.name) + "/config.json", j.dump(2) + "\n", 0644);
}

Credentials LoadCredentials(const std::string& profile) {
  Credentials c;
  c.ca_cert = fs::ReadFile(MinikHome() + "/ca.crt");
  c.ca_key = fs::ReadFile(MinikHome() + "/ca.key");
  c.client_cert = fs::ReadFile(ProfileDir(profile) + "/client.crt");
  c.client_key = fs::ReadFile(ProfileDir(profile) + "/client.key");
  return c;
}

Credentials EnsureCredentials(const std::string& profile) {
  std::string home = MinikHome();
  fs::MakeDirs(home, 0700);
  if (!fs::Exists(home + "/ca.crt") || !fs::Exists(home + "/ca.key")) {
    tls::KeyPair ca = tls::GenerateCA("minikCA");
    fs::WriteFileAtomic(home + "/ca.key", ca.key_pem, 0600);
    fs::WriteFileAtomic(home + "/ca.crt", ca.cert_pem, 0644);
  }
  std::string dir = ProfileDir(profile);
  fs::MakeDirs(dir, 0700);
  if (!fs::Exists(dir + "/client.crt") || !fs::Exists(dir + "/client.key")) {
    tls::KeyPair ca{fs::ReadFile(home + "/ca.crt"), fs::ReadFile(home + "/ca.key")};
    tls::CertRequest req;
    req.common_name = "minik-admin";
    req.organizations = {"system:masters"};
    tls::KeyPair kp = tls::IssueCert(ca, req);
    fs::WriteFileAtomic(dir + "/client.key", kp.key_pem, 0600);
    fs::WriteFileAtomic(dir + "/client.crt", kp.cert_pem, 0644);
  }
  return LoadCredentials(profile);
}

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    throw SystemError("socket", errno);
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    int err = errno;
    close(fd);
    throw SystemError("bind 127.0.0.1:0", err);
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

}  // namespace minik::cli
