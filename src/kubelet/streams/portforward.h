#pragma once
// The server side of Kubernetes' port-forward protocols, what `kubectl
// port-forward` and the client libraries speak to a kubelet. Three forms:
// - WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io` (kubectl 1.30+):
//   SPDY frames carried in binary messages;
// - `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io`
//   (kubectl's fallback): for each forwarded connection the client opens an
//   error stream and a data stream, both with headers `streamType`, `port`
//   and `requestID`; many connections share one session;
// - WebSocket channels (`v4.channel.k8s.io`, what the Python client uses):
//   the ports come from the `ports` query; port i has data channel 2i and
//   error channel 2i+1, and each channel first carries the port number as
//   two little-endian bytes.
// Each forwarded connection is dialed through the caller's dialer and bytes
// are relayed both ways until either side is done. A failed dial is reported
// on the error stream as the kubelet words it: "error forwarding port 80 to
// pod web, uid 1234: <dialer's error>".

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http.h"

namespace minik::streams {

inline constexpr std::string_view kPortForwardProtocolV1 = "portforward.k8s.io";
inline constexpr std::string_view kSpdyTunnelingPrefix = "SPDY/3.1+";

struct PortForwardOptions {
  // Name the pod in error messages, as the kubelet does.
  std::string pod_name;
  std::string pod_uid;
  // How long the error and data streams of one SPDY connection may arrive
  // apart (the kubelet's stream creation timeout).
  int stream_creation_timeout_ms = 30'000;
  // Once one direction of a forwarded connection is over, how long the other
  // may stay idle before the connection is closed (containerd waits 1 s).
  int half_close_grace_ms = 1'000;
};

// Connects to `port` in the pod. Returns a connected stream socket (the
// session closes it), or -1 with the reason in `error`. Called on a thread
// of its own for each forwarded connection.
using PortDialer = std::function<int(uint16_t port, std::string* error)>;

// The ports a WebSocket (channel protocol) request forwards: every `ports`
// query value, comma-separated. nullopt with the kubelet's message in `error`
// when missing or invalid.
std::optional<std::vector<uint16_t>> ParsePortForwardPorts(const http::Request& req,
                                                           std::string* error);

class PortForwardSession {
 public:
  virtual ~PortForwardSession() = default;

  // Takes over a port-forward request in whichever form it comes. nullptr
  // when the upgrade failed; an error response was sent and `error` says why.
  static std::unique_ptr<PortForwardSession> Accept(http::Request& req, http::ResponseWriter& w,
                                                    PortForwardOptions opts,
                                                    std::string* error = nullptr);

  // The negotiated protocol: "portforward.k8s.io", "v4.channel.k8s.io", ...
  virtual const std::string& protocol() const = 0;
  // "spdy", "websocket+spdy" or "websocket".
  virtual std::string_view transport() const = 0;

  // Forwards connections, several at once, until the client hangs up or Stop
  // is called; then ends every forwarded connection and closes the session.
  virtual void Serve(const PortDialer& dial) = 0;
  // Makes Serve return soon; callable from any thread.
  virtual void Stop() = 0;
};

}  // namespace minik::streams
