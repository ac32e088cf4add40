#include "kubelet/streams/stream_util.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/json.h"
#include "kubelet/streams/websocket.h"

namespace minik::streams {

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string Bracketed(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    out += (i ? " " : "") + items[i];
  }
  return out + "]";
}

void SendError(http::ResponseWriter& w, int status, const std::string& message,
               http::Headers extra = {}) {
  extra["Content-Type"] = "text/plain; charset=utf-8";
  extra["X-Content-Type-Options"] = "nosniff";
  w.Send(status, extra, message + "\n");
}

}  // namespace

std::string GoJsonString(std::string_view s) {
  std::string out;
  AppendGoJsonString(s, out);
  return out;
}

std::vector<std::string> SplitHeaderList(std::string_view value) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    if (comma == std::string_view::npos) {
      comma = value.size();
    }
    std::string_view item = value.substr(pos, comma - pos);
    size_t b = item.find_first_not_of(" \t");
    if (b != std::string_view::npos) {
      size_t e = item.find_last_not_of(" \t");
      out.emplace_back(item.substr(b, e - b + 1));
    }
    pos = comma + 1;
  }
  return out;
}

std::optional<std::string> NegotiateSpdyUpgrade(const http::Request& req, http::ResponseWriter& w,
                                                const std::vector<std::string>& server_protocols,
                                                std::string* error) {
  auto fail = [&](int status, const std::string& message, http::Headers extra = {}) {
    if (error) {
      *error = message;
    }
    SendError(w, status, message, std::move(extra));
    return std::nullopt;
  };
  std::vector<std::string> client = SplitHeaderList(req.Header("X-Stream-Protocol-Version"));
  if (client.empty()) {
    return fail(400, "unable to upgrade: X-Stream-Protocol-Version is required");
  }
  std::optional<std::string> chosen;
  for (const std::string& p : client) {
    if (std::find(server_protocols.begin(), server_protocols.end(), p) != server_protocols.end()) {
      chosen = p;
      break;
    }
  }
  if (!chosen) {
    std::string accepted;
    for (size_t i = 0; i < server_protocols.size(); ++i) {
      accepted += (i ? ", " : "") + server_protocols[i];
    }
    return fail(403,
                "unable to upgrade: unable to negotiate protocol: client supports " +
                    Bracketed(client) + ", server accepts " + Bracketed(server_protocols),
                {{"X-Accepted-Stream-Protocol-Versions", accepted}});
  }
  if (Lower(req.Header("Connection")).find("upgrade") == std::string::npos ||
      Lower(req.Header("Upgrade")).find("spdy/3.1") == std::string::npos) {
    return fail(400, "unable to upgrade: missing upgrade headers in request");
  }
  return chosen;
}

http::Headers SpdyUpgradeHeaders(const std::string& protocol) {
  return {
      {"Connection", "Upgrade"}, {"Upgrade", "SPDY/3.1"}, {"X-Stream-Protocol-Version", protocol}};
}

}  // namespace minik::streams
