#include <catch2/catch.hpp>

#include "common/base64.h"
#include "common/jwt.h"
#include "common/tls.h"

using namespace minik;

TEST_CASE("base64: standard alphabet is strict, lenient form skips space and adds padding",
          "[base64]") {
  CHECK(base64::Encode("foo\n") == "Zm9vCg==");
  CHECK(base64::Decode("Zm9vCg==") == std::optional<std::string>("foo\n"));
  CHECK(base64::Decode("Zm9v") == std::optional<std::string>("foo"));
  CHECK(base64::Decode("") == std::optional<std::string>(""));
  CHECK_FALSE(base64::Decode("Zm9"));
  CHECK_FALSE(base64::Decode("Zm=v"));
  CHECK_FALSE(base64::Decode("Zm9v!A=="));
  CHECK_FALSE(base64::Decode("Zg=a"));
  CHECK(base64::DecodeLenient("Zm9v\nCg") == std::optional<std::string>("foo\n"));
  CHECK_FALSE(base64::DecodeLenient("Zm9v*"));
}

TEST_CASE("base64: URL-safe alphabet without padding", "[base64]") {
  std::string bytes = "\xfb\xff\xfe";
  CHECK(base64::Encode(bytes) == "+//+");
  CHECK(base64::UrlEncode(bytes) == "-__-");
  CHECK(base64::UrlEncode("a") == "YQ");
  CHECK(base64::UrlDecode("YQ") == std::optional<std::string>("a"));
  CHECK(base64::UrlDecode("-__-") == std::optional<std::string>(bytes));
  CHECK_FALSE(base64::UrlDecode("+//+"));
}

TEST_CASE("jwt: ES256 tokens verify with their key only, and tampering is caught", "[jwt]") {
  jwt::Key key(tls::GenerateKeyPem());
  jwt::Key other(tls::GenerateKeyPem());
  CHECK(key.key_id().size() == 43);  // base64url of 32 bytes
  CHECK(key.key_id() != other.key_id());
  json claims = {{"sub", "system:serviceaccount:default:default"}, {"exp", 2000000000}};
  std::string token = key.Sign(claims);
  std::string why;
  auto got = key.Verify(token, &why);
  REQUIRE(got);
  CHECK(*got == claims);
  // The header says ES256 and names the key.
  auto header = json::parse(*base64::UrlDecode(token.substr(0, token.find('.'))));
  CHECK(header["alg"] == "ES256");
  CHECK(header["kid"] == key.key_id());

  CHECK_FALSE(other.Verify(token, &why));
  CHECK(why == "invalid signature");
  // Changed claims, same signature.
  size_t d1 = token.find('.'), d2 = token.rfind('.');
  json forged = claims;
  forged["sub"] = "system:serviceaccount:kube-system:admin";
  std::string tampered =
      token.substr(0, d1 + 1) + base64::UrlEncode(forged.dump()) + token.substr(d2);
  CHECK_FALSE(key.Verify(tampered, &why));
  CHECK(why == "invalid signature");
  // "none" and other algorithms are refused.
  std::string none =
      base64::UrlEncode(R"({"alg":"none"})") + "." + base64::UrlEncode(claims.dump()) + ".";
  CHECK_FALSE(key.Verify(none, &why));
  CHECK(why.find("algorithm") != std::string::npos);
  CHECK_FALSE(key.Verify("a.b", &why));
  CHECK_FALSE(key.Verify("!!.??.**", &why));
  CHECK_THROWS(jwt::Key("not a key"));
}
