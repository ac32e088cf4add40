#pragma once
// Profiles on the host: `$MINIK_HOME` (default `~/.minik`) holds the cluster CA
// and `profiles/<name>/` with the profile's config and admin client
// certificate. A profile's node state belongs to its driver.

#include <cstdint>
#include <string>
#include <vector>

namespace minik::cli {

std::string MinikHome();
std::string ProfileDir(const std::string& profile);
std::vector<std::string> ListProfiles();
// Profile names become kubeconfig entries and file names: DNS-1123 labels.
void CheckProfileName(const std::string& profile);

struct ProfileConfig {
  std::string name;
  std::string driver;
  uint16_t apiserver_port = 0;
  std::string store = "sqlite";
  int hollow_nodes = 0;
  bool kubelet = true;
  uint16_t kubelet_port = 0;
  std::vector<std::string> extra_config;  // "COMPONENT.FLAG=VALUE"
};

bool LoadProfile(const std::string& profile, ProfileConfig* out);
void SaveProfile(const ProfileConfig& c);

struct Credentials {
  std::string ca_cert, ca_key;
  std::string client_cert, client_key;
};
// Creates the CA (shared by all profiles) and the profile's admin certificate
// when missing, and returns them.
Credentials EnsureCredentials(const std::string& profile);
Credentials LoadCredentials(const std::string& profile);

// A free TCP port on 127.0.0.1.
uint16_t FreePort();

}  // namespace minik::cli
