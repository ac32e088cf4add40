// Image references as Docker parses them (github.com/distribution/reference):
// `[domain/]path[:tag][@digest]`, with `docker.io` and `library/` filled in.

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "common/base64.h"
#include "kubelet/images/image_store.h"

namespace minik::kubelet::images {
namespace {

constexpr size_t kMaxNameLength = 255;

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool IsAlnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}
bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
bool ValidPathComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) {
    return false;
  }
  for (size_t i = 0; i < c.size();) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) {
      ++j;
    }
    std::string_view sep = c.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) {
      return false;
    }
    i = j;
  }
  return true;
}

// `host[:port]`, where host is dot-separated labels of letters, digits and
// inner dashes, or a bracketed IPv6 address.
bool ValidDomain(std::string_view d) {
  std::string_view host = d;
  if (auto colon = d.rfind(':'); colon != std::string_view::npos && d.front() != '[') {
    std::string_view port = d.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos) {
      return false;
    }
    host = d.substr(0, colon);
  }
  if (!host.empty() && host.front() == '[') {
    auto close = d.find(']');
    if (close == std::string_view::npos) {
      return false;
    }
    std::string_view rest = d.substr(close + 1);
    if (!rest.empty() &&
        (rest.front() != ':' || rest.size() == 1 ||
         rest.substr(1).find_first_not_of("0123456789") != std::string_view::npos)) {
      return false;
    }
    return d.substr(1, close - 1).find_first_not_of("0123456789abcdefABCDEF:") ==
           std::string_view::npos;
  }
  if (host.empty()) {
    return false;
  }
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    std::string_view label =
        host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || !IsAlnum(label.front()) || !IsAlnum(label.back())) {
      return false;
    }
    for (char c : label) {
      if (!IsAlnum(c) && c != '-') {
        return false;
      }
    }
    if (dot == std::string_view::npos) {
      break;
    }
    start = dot + 1;
  }
  return true;
}

// `[\w][\w.-]{0,127}`
bool ValidTag(std::string_view t) {
  if (t.empty() || t.size() > 128 || t.front() == '.' || t.front() == '-') {
    return false;
  }
  for (char c : t) {
    if (!IsAlnum(c) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

std::string CanonicalRegistryHost(std::string host) {
  for (auto& c : host) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (host == "index.docker.io" || host == "registry-1.docker.io" ||
      host == "registry.hub.docker.com") {
    return "docker.io";
  }
  return host;
}

}  // namespace

Reference ParseReference(const std::string& in) {
  auto bad = [&](const std::string& why) -> Reference {
    throw std::invalid_argument("invalid image reference \"" + in + "\": " + why);
  };
  if (in.empty()) {
    return bad("it is empty");
  }
  if (in.size() == 64 && std::all_of(in.begin(), in.end(), IsHex)) {
    return bad("a 64-character hexadecimal string is an image ID, not a repository name");
  }
  for (char c : in) {
    if (std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c))) {
      return bad("it contains whitespace or control characters");
    }
  }
  Reference r;
  std::string s = in;
  if (auto at = s.find('@'); at != std::string::npos) {
    r.digest = s.substr(at + 1);
    s.resize(at);
    auto colon = r.digest.find(':');
    if (colon == std::string::npos || colon == 0) {
      return bad("digest \"" + r.digest + "\" is not ALGORITHM:HEX");
    }
    std::string alg = r.digest.substr(0, colon), hex = r.digest.substr(colon + 1);
    if (alg != "sha256") {
      return bad("digest algorithm \"" + alg + "\" is not supported (only sha256)");
    }
    if (hex.size() != 64 || !std::all_of(hex.begin(), hex.end(), IsHex)) {
      return bad("a sha256 digest is 64 lowercase hexadecimal characters");
    }
  }
  auto slash = s.rfind('/');
  auto colon = s.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    r.tag = s.substr(colon + 1);
    s.resize(colon);
    if (!ValidTag(r.tag)) {
      return bad("tag \"" + r.tag +
                 "\" must be letters, digits, '_', '.' and '-' (at most 128, not starting with "
                 "'.' or '-')");
    }
  }
  if (s.empty()) {
    return bad("the repository name is empty");
  }
  // The first component is a registry host when it looks like one: it has a
  // dot or a port, is `localhost`, or has capitals (which no repository may have).
  auto first = s.find('/');
  std::string remainder;
  if (first == std::string::npos) {
    r.domain = "docker.io";
    remainder = s;
  } else {
    std::string head = s.substr(0, first);
    bool lower = std::none_of(head.begin(), head.end(),
                              [](char c) { return std::isupper(static_cast<unsigned char>(c)); });
    if (head.find_first_of(".:") == std::string::npos && head != "localhost" && lower) {
      r.domain = "docker.io";
      remainder = s;
    } else {
      r.domain = head;
      remainder = s.substr(first + 1);
    }
  }
  if (r.domain == "index.docker.io") {
    r.domain = "docker.io";
  }
  if (!ValidDomain(r.domain)) {
    return bad("registry \"" + r.domain + "\" is not a valid host[:port]");
  }
  if (r.domain == "docker.io" && remainder.find('/') == std::string::npos) {
    remainder = "library/" + remainder;
  }
  if (std::any_of(remainder.begin(), remainder.end(),
                  [](char c) { return std::isupper(static_cast<unsigned char>(c)); })) {
    return bad("repository name \"" + remainder + "\" must be lowercase");
  }
  size_t start = 0;
  while (true) {
    size_t next = remainder.find('/', start);
    std::string_view comp = std::string_view(remainder).substr(
        start, next == std::string::npos ? std::string::npos : next - start);
    if (!ValidPathComponent(comp)) {
      return bad("repository name component \"" + std::string(comp) +
                 "\" must be lowercase letters and digits separated by '.', '_', '__' or '-'");
    }
    if (next == std::string::npos) {
      break;
    }
    start = next + 1;
  }
  r.path = remainder;
  if (r.Name().size() > kMaxNameLength) {
    return bad("the repository name is longer than 255 characters");
  }
  if (r.tag.empty() && r.digest.empty()) {
    r.tag = "latest";
  }
  return r;
}

std::string Reference::String() const {
  std::string s = Name();
  if (!tag.empty()) {
    s += ":" + tag;
  }
  if (!digest.empty()) {
    s += "@" + digest;
  }
  return s;
}

std::string Reference::FamiliarName() const {
  if (domain != "docker.io") {
    return Name();
  }
  if (path.rfind("library/", 0) == 0 && path.find('/', 8) == std::string::npos) {
    return path.substr(8);
  }
  return path;
}

std::string NormalizeReference(const std::string& ref) {
  return ParseReference(ref).String();
}

std::optional<RegistryAuth> AuthFromDockerConfig(const json& docker_config,
                                                 const std::string& ref) {
  Reference r = ParseReference(ref);
  if (!docker_config.is_object()) {
    return std::nullopt;
  }
  const json& auths = docker_config.contains("auths") ? docker_config["auths"] : docker_config;
  if (!auths.is_object()) {
    return std::nullopt;
  }
  std::optional<RegistryAuth> best;
  size_t best_len = 0;
  for (const auto& [key, entry] : auths.items()) {
    if (!entry.is_object()) {
      continue;
    }
    // "https://index.docker.io/v1/" -> host "index.docker.io", no path.
    std::string k = key;
    if (auto scheme = k.find("://"); scheme != std::string::npos) {
      k = k.substr(scheme + 3);
    }
    std::string host = k, path;
    if (auto slash = k.find('/'); slash != std::string::npos) {
      host = k.substr(0, slash);
      path = k.substr(slash + 1);
      while (!path.empty() && path.back() == '/') {
        path.pop_back();
      }
      if (path == "v1" || path == "v2") {
        path.clear();
      }
    }
    if (CanonicalRegistryHost(host) != CanonicalRegistryHost(r.domain)) {
      continue;
    }
    // A key with a path ("registry.io/team") applies to repositories under it.
    if (!path.empty() && r.path != path && r.path.rfind(path + "/", 0) != 0) {
      continue;
    }
    if (best && path.size() + 1 <= best_len) {
      continue;
    }
    RegistryAuth a;
    if (entry.contains("auth") && entry["auth"].is_string() &&
        !entry["auth"].get<std::string>().empty()) {
      std::optional<std::string> decoded = base64::DecodeLenient(entry["auth"].get<std::string>());
      if (!decoded) {
        throw std::invalid_argument("invalid base64 in the `auth` field");
      }
      auto colon = decoded->find(':');
      if (colon == std::string::npos) {
        throw std::invalid_argument("docker config entry \"" + key +
                                    "\": `auth` is not base64 of USER:PASSWORD");
      }
      a.username = decoded->substr(0, colon);
      a.password = decoded->substr(colon + 1);
    } else {
      a.username = entry.value("username", "");
      a.password = entry.value("password", "");
    }
    a.identity_token = entry.value("identitytoken", "");
    if (a.username.empty() && a.password.empty() && a.identity_token.empty()) {
      continue;
    }
    best = a;
    best_len = path.size() + 1;
  }
  return best;
}

}  // namespace minik::kubelet::images
