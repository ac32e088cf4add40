#pragma once
// WebSocket (RFC 6455), server side: the opening handshake over minik's HTTPS
// server, and messages over the upgraded connection (client masking required,
// fragmented messages reassembled, pings answered, closes with a status).
//
// Kubernetes speaks its stream protocols over WebSocket messages: exec and
// attach (`v5.channel.k8s.io` and older), port-forward (`v4.channel.k8s.io`),
// and SPDY tunneled inside binary messages (`SPDY/3.1+portforward.k8s.io`).

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http.h"

namespace minik::streams::websocket {

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close status codes (RFC 6455 section 7.4.1).
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseGoingAway = 1001;
inline constexpr uint16_t kCloseProtocolError = 1002;
inline constexpr uint16_t kCloseUnsupportedData = 1003;
inline constexpr uint16_t kCloseNoStatus = 1005;
inline constexpr uint16_t kCloseAbnormal = 1006;
inline constexpr uint16_t kCloseInvalidPayload = 1007;
inline constexpr uint16_t kCloseMessageTooBig = 1009;
inline constexpr uint16_t kCloseInternalError = 1011;

// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`:
// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string AcceptKey(std::string_view key);

// True when the request asks for a WebSocket upgrade (`Upgrade: websocket` and
// an `upgrade` token in `Connection`), as Kubernetes' `IsWebSocketRequest`.
bool IsWebSocketRequest(const http::Request& req);

// The subprotocols the client offered in `Sec-WebSocket-Protocol`, in its order.
std::vector<std::string> RequestedProtocols(const http::Request& req);

// One frame as it travels on the wire, with its payload unmasked.
struct Frame {
  bool fin = true;
  uint8_t rsv = 0;  // RSV1..RSV3 as the low three bits; non-zero without extensions is an error
  Opcode opcode = Opcode::kBinary;
  bool masked = false;
  std::string payload;
};

// Serializes a frame. Servers send unmasked frames; a client (or a test
// playing one) passes the 4-byte `mask` key.
std::string EncodeFrame(Opcode opcode, std::string_view payload, bool fin = true,
                        const std::array<uint8_t, 4>* mask = nullptr);

// Splits a byte stream into frames. Limits are checked before a payload is
// buffered, so a peer cannot make us allocate what it announces.
class FrameParser {
 public:
  explicit FrameParser(size_t max_payload) : max_payload_(max_payload) {}
  void Feed(std::string_view bytes);
  enum class Result { kFrame, kNeedMore, kError };
  Result Next(Frame* frame);
  // After kError: the close status to send and why.
  uint16_t error_code() const { return error_code_; }
  const std::string& error() const { return error_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  size_t max_payload_;
  uint16_t error_code_ = 0;
  std::string error_;
};

// A data message: a text or binary message, reassembled from its fragments.
struct Message {
  Opcode type = Opcode::kBinary;
  std::string data;
};

// The server side of an open WebSocket connection. One thread reads (Read)
// while any number of threads write (Write, SendClose); the reader answers
// pings and the peer's close by itself.
class Connection {
 public:
  struct Options {
    size_t max_message_bytes = 64 << 20;
    // RFC 6455 requires clients to mask every frame; a server fails the
    // connection otherwise. Only tests of a client side turn this off.
    bool require_masked = true;
  };

  Connection(std::unique_ptr<http::RawStream> stream, std::string protocol, Options opts);
  Connection(std::unique_ptr<http::RawStream> stream, std::string protocol)
      : Connection(std::move(stream), std::move(protocol), Options{}) {}
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The negotiated subprotocol ("" when none was).
  const std::string& protocol() const { return protocol_; }

  // The next text or binary message. nullopt once the connection is over: the
  // peer closed it (its close was answered), it broke, or it violated the
  // protocol (we sent a close with the reason). Only one thread may read.
  std::optional<Message> Read();

  // Sends one message; false once a close was sent or the connection broke.
  bool Write(Opcode type, std::string_view data);
  bool Ping(std::string_view payload = {});
  // Sends a close frame (once) with `code` and `reason`; later writes fail.
  // The reader keeps reading until the peer's close arrives.
  bool SendClose(uint16_t code = kCloseNormal, std::string_view reason = {});
  // Closes the underlying connection; a blocked Read returns.
  void Shutdown();

  bool close_sent() const { return close_sent_; }
  // The status of the peer's close frame (kCloseNoStatus when it had none),
  // or kCloseAbnormal when the connection ended without one.
  uint16_t peer_close_code() const { return peer_close_code_; }
  bool peer_closed() const { return peer_closed_; }

 private:
  bool WriteFrame(Opcode op, std::string_view payload);
  void Fail(uint16_t code, const std::string& why);

  std::unique_ptr<http::RawStream> stream_;
  std::string protocol_;
  Options opts_;
  FrameParser parser_;
  std::mutex write_mu_;
  std::atomic<bool> close_sent_{false};
  std::atomic<bool> peer_closed_{false};
  std::atomic<bool> done_{false};
  std::atomic<uint16_t> peer_close_code_{kCloseAbnormal};
  // A fragmented message being reassembled.
  bool in_message_ = false;
  Message partial_;
};

// Server handshake. Picks the first protocol the client offered that is in
// `supported` ("" in `supported` accepts a client that offered none), answers
// 101 with `Sec-WebSocket-Accept` and the chosen protocol, and returns the open
// connection. On a bad request it answers 400 (426 for a wrong version, 403
// when no protocol matches, as golang.org/x/net/websocket does) and returns
// nullptr with the reason in `error`.
std::unique_ptr<Connection> Accept(http::Request& req, http::ResponseWriter& w,
                                   const std::vector<std::string>& supported,
                                   std::string* error = nullptr,
                                   Connection::Options opts = Connection::Options{});

// Helpers shared with the Kubernetes layer.
bool IsValidUtf8(std::string_view s);

}  // namespace minik::streams::websocket
