#pragma once
// Certificates for the cluster: a CA, serving certificates and client
// certificates (user = CN, groups = O), made with OpenSSL. Keys are ECDSA P-256.

#include <string>
#include <vector>

namespace minik::tls {

struct KeyPair {
  std::string cert_pem;
  std::string key_pem;
};

struct CertRequest {
  std::string common_name;
  std::vector<std::string> organizations;  // Kubernetes groups
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  bool server = false;  // serverAuth usage, else clientAuth
  int valid_days = 365;
};

// A new P-256 private key, PEM (the service account signing key).
std::string GenerateKeyPem();

KeyPair GenerateCA(const std::string& common_name, int valid_days = 3650);
KeyPair IssueCert(const KeyPair& ca, const CertRequest& req);

// The subject of a PEM certificate as (CN, [O...]).
struct Subject {
  std::string common_name;
  std::vector<std::string> organizations;
};
Subject ReadSubject(const std::string& cert_pem);

}  // namespace minik::tls
