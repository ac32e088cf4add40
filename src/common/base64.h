#pragma once
// Base64 (RFC 4648): the standard alphabet with padding, as Kubernetes uses
// for []byte fields and the base64 stream protocols, and the URL-safe
// alphabet without padding, as JSON Web Tokens use.

#include <optional>
#include <string>
#include <string_view>

namespace minik::base64 {

std::string Encode(std::string_view data);
// Strict: the standard alphabet, length a multiple of 4, padding only at the
// end. nullopt for anything else.
std::optional<std::string> Decode(std::string_view text);
// Lenient, for values people write by hand (Docker's `auth`, Secret data
// made by tools): ASCII whitespace is skipped and missing padding added.
std::optional<std::string> DecodeLenient(std::string_view text);

std::string UrlEncode(std::string_view data);
// The URL-safe alphabet, padding optional. nullopt when not valid.
std::optional<std::string> UrlDecode(std::string_view text);

}  // namespace minik::base64
