#pragma once
// The user's kubeconfig ($KUBECONFIG's first file, else ~/.kube/config): minik
// merges a cluster, user and context named after the profile into it and
// removes them again, never touching other entries.

#include <string>

namespace minik::cli {

std::string KubeconfigPath();

struct KubeconfigEntry {
  std::string name;  // cluster, user and context name
  std::string server;
  std::string ca_pem, client_cert_pem, client_key_pem;
  std::string ns = "default";
};

// Adds or replaces the entries and makes the context current.
void MergeKubeconfig(const KubeconfigEntry& e);
// Removes the entries; clears current-context when it was this one.
void RemoveKubeconfig(const std::string& name);
// True when the kubeconfig has a context of this name pointing at `server`.
bool KubeconfigHas(const std::string& name, const std::string& server);

}  // namespace minik::cli
