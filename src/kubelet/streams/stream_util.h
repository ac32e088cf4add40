#pragma once
// Private helpers of the streams library, shared by exec and port-forward.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http.h"

namespace minik::streams {

// `s` as a JSON string the way Go's encoding/json writes it (`<`, `>`, `&`,
// U+2028 and U+2029 escaped, invalid UTF-8 replaced), so Status bytes match
// the kubelet's.
std::string GoJsonString(std::string_view s);

// The items of a comma-separated header value, trimmed.
std::vector<std::string> SplitHeaderList(std::string_view value);

// The SPDY side of an upgrade, as Kubernetes' httpstream.Handshake and
// spdy.UpgradeResponse: picks the first protocol of the client's
// `X-Stream-Protocol-Version` list that the server supports and checks the
// `Connection: Upgrade` / `Upgrade: SPDY/3.1` headers. On failure it answers
// (400 when something is missing, 403 with `X-Accepted-Stream-Protocol-Versions`
// when no protocol matches) and returns nullopt with the reason in `error`.
std::optional<std::string> NegotiateSpdyUpgrade(const http::Request& req, http::ResponseWriter& w,
                                                const std::vector<std::string>& server_protocols,
                                                std::string* error);

// The 101 headers of a SPDY/3.1 upgrade that negotiated `protocol`.
http::Headers SpdyUpgradeHeaders(const std::string& protocol);

}  // namespace minik::streams
