#pragma once
// JSON Web Tokens (RFC 7519) signed with ES256 (ECDSA P-256 with SHA-256,
// RFC 7518 §3.4), as the API server issues service account tokens. Claims
// are the caller's; this checks only the form and the signature.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/json.h"

namespace minik::jwt {

class Key {
 public:
  // From a PEM private key (a P-256 key, as tls::GenerateKeyPem makes).
  // Throws minik::Error when it is not one.
  explicit Key(const std::string& private_key_pem);
  ~Key();
  Key(Key&&) noexcept;
  Key& operator=(Key&&) noexcept;

  // "header.claims.signature"; the header names the algorithm and key_id().
  std::string Sign(const json& claims) const;
  // The claims when `token` is a well-formed ES256 JWT signed by this key;
  // otherwise nullopt, with the reason in `*why`.
  std::optional<json> Verify(std::string_view token, std::string* why) const;
  // base64url(SHA-256 of the DER public key), as Kubernetes names its keys.
  const std::string& key_id() const { return kid_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string kid_;
};

}  // namespace minik::jwt
