#include "common/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/base64.h"
#include "common/error.h"

namespace minik::jwt {
namespace {

constexpr size_t kCoordinate = 32;  // bytes of r and of s for P-256

std::string Sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), n);
}

}  // namespace

struct Key::Impl {
  EVP_PKEY* key = nullptr;
  ~Impl() { EVP_PKEY_free(key); }
};

Key::Key(const std::string& private_key_pem) : impl_(std::make_unique<Impl>()) {
  BIO* bio = BIO_new_mem_buf(private_key_pem.data(), static_cast<int>(private_key_pem.size()));
  impl_->key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!impl_->key || EVP_PKEY_get_base_id(impl_->key) != EVP_PKEY_EC ||
      EVP_PKEY_get_bits(impl_->key) != 256) {
    ERR_clear_error();
    throw Error("the service account signing key is not a PEM P-256 private key");
  }
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(impl_->key, &der);
  if (n <= 0) {
    throw Error("encode the service account public key");
  }
  kid_ = base64::UrlEncode(Sha256(std::string_view(reinterpret_cast<char*>(der), n)));
  OPENSSL_free(der);
}

Key::~Key() = default;
Key::Key(Key&&) noexcept = default;
Key& Key::operator=(Key&&) noexcept = default;

std::string Key::Sign(const json& claims) const {
  json header = {{"alg", "ES256"}, {"kid", kid_}};
  std::string input = base64::UrlEncode(header.dump()) + "." + base64::UrlEncode(claims.dump());
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  size_t len = 0;
  std::string der;
  bool ok = EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, impl_->key) == 1 &&
            EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) == 1;
  if (ok) {
    der.resize(len);
    ok = EVP_DigestSign(md, reinterpret_cast<unsigned char*>(der.data()), &len,
                        reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    der.resize(len);
  }
  EVP_MD_CTX_free(md);
  if (!ok) {
    ERR_clear_error();
    throw Error("sign a token");
  }
  // JWS wants r || s, each 32 bytes, where OpenSSL gives DER.
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  if (!sig) {
    throw Error("sign a token: bad ECDSA signature");
  }
  std::string raw(2 * kCoordinate, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), kCoordinate);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + kCoordinate,
               kCoordinate);
  ECDSA_SIG_free(sig);
  return input + "." + base64::UrlEncode(raw);
}

std::optional<json> Key::Verify(std::string_view token, std::string* why) const {
  auto fail = [&](const std::string& reason) -> std::optional<json> {
    if (why) {
      *why = reason;
    }
    return std::nullopt;
  };
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail("not a JWT (want three dot-separated parts)");
  }
  auto header_text = base64::UrlDecode(token.substr(0, dot1));
  auto claims_text = base64::UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto raw = base64::UrlDecode(token.substr(dot2 + 1));
  if (!header_text || !claims_text || !raw) {
    return fail("not a JWT (a part is not base64url)");
  }
  json header = json::parse(*header_text, nullptr, false);
  json claims = json::parse(*claims_text, nullptr, false);
  if (!header.is_object() || !claims.is_object()) {
    return fail("not a JWT (header or claims are not a JSON object)");
  }
  if (header.value("alg", "") != "ES256") {
    return fail("unexpected signing algorithm \"" + header.value("alg", "") + "\"");
  }
  if (raw->size() != 2 * kCoordinate) {
    return fail("invalid signature length");
  }
  const auto* r = reinterpret_cast<const unsigned char*>(raw->data());
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(r, kCoordinate, nullptr),
                 BN_bin2bn(r + kCoordinate, kCoordinate, nullptr));
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  std::string_view input = token.substr(0, dot2);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok =
      der_len > 0 && EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, impl_->key) == 1 &&
      EVP_DigestVerify(md, der, static_cast<size_t>(der_len),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  ERR_clear_error();
  if (!ok) {
    return fail("invalid signature");
  }
  return claims;
}

}  // namespace minik::jwt
