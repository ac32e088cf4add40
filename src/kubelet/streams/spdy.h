#pragma once
// SPDY/3.1, server side, as Kubernetes uses it through moby/spdystream for
// `kubectl exec|attach|cp` (when WebSocket is refused) and `kubectl
// port-forward`: one connection multiplexes bidirectional streams that the
// client opens (SYN_STREAM, answered by SYN_REPLY or RST_STREAM), each with a
// name/value header block compressed by one zlib stream per direction that
// starts from the SPDY/3 dictionary and is flushed (Z_SYNC_FLUSH) after every
// block.
//
// Flow control: we announce the default 64 KiB window per stream and send
// WINDOW_UPDATE (per stream and, for 3.1, for the session) as the application
// consumes data. spdystream neither sends nor honours WINDOW_UPDATE, so our
// own sending honours the peer's windows only once the peer has shown it does
// flow control by sending a WINDOW_UPDATE.
//
// The session runs over a `Transport` (bytes in, frames out), so the same code
// serves a plain `Upgrade: SPDY/3.1` connection and SPDY tunneled inside
// WebSocket binary messages (`SPDY/3.1+portforward.k8s.io`).

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/http.h"

namespace minik::streams {

namespace websocket {
class Connection;
}

// A bidirectional byte transport under a SPDY session.
class Transport {
 public:
  virtual ~Transport() = default;
  // Blocks until bytes arrive; 0 when the peer closed or the transport broke.
  virtual size_t Read(char* buf, size_t n) = 0;
  // Writes all of `data` as one unit (one WebSocket message when tunneled);
  // false once the transport is closed. Callers serialize writes.
  virtual bool Write(std::string_view data) = 0;
  // Ends the transport (a WebSocket sends its close first); a blocked Read returns 0.
  virtual void Close() = 0;
};

// The upgraded HTTP connection itself (`Upgrade: SPDY/3.1`).
std::unique_ptr<Transport> RawStreamTransport(std::unique_ptr<http::RawStream> stream);
// Bytes carried in WebSocket binary messages, as Kubernetes' TunnelingConnection:
// each write is one message, reads concatenate messages, a normal close is EOF.
std::unique_ptr<Transport> WebSocketTransport(std::unique_ptr<websocket::Connection> conn);

namespace spdy {

inline constexpr uint16_t kVersion = 3;

enum class FrameType : uint16_t {
  kData = 0,  // not a control type: DATA frames have no type field
  kSynStream = 1,
  kSynReply = 2,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoAway = 7,
  kHeaders = 8,
  kWindowUpdate = 9,
};

inline constexpr uint8_t kFlagFin = 0x01;
inline constexpr uint8_t kFlagUnidirectional = 0x02;

// RST_STREAM status codes.
enum RstStatus : uint32_t {
  kProtocolError = 1,
  kInvalidStream = 2,
  kRefusedStream = 3,
  kUnsupportedVersion = 4,
  kCancel = 5,
  kInternalError = 6,
  kFlowControlError = 7,
  kStreamInUse = 8,
  kStreamAlreadyClosed = 9,
  kFrameTooLarge = 11,
};

// GOAWAY status codes.
enum GoAwayStatus : uint32_t { kGoAwayOk = 0, kGoAwayProtocolError = 1, kGoAwayInternalError = 2 };

inline constexpr uint32_t kSettingsInitialWindowSize = 7;
inline constexpr uint32_t kDefaultInitialWindow = 64 * 1024;
inline constexpr uint32_t kMaxDataLength = (1u << 24) - 1;

// Header names are lowercase on the wire; several values of one name are
// joined with NUL, as SPDY/3 does.
using HeaderBlock = std::map<std::string, std::string>;

struct Setting {
  uint8_t flags = 0;
  uint32_t id = 0;
  uint32_t value = 0;
};

// One frame, decoded. Which fields matter depends on `type`.
struct Frame {
  FrameType type = FrameType::kData;
  uint16_t version = kVersion;
  uint8_t flags = 0;
  // The stream of DATA, SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS and
  // WINDOW_UPDATE (0 there is the whole session); GOAWAY's last good stream.
  uint32_t stream_id = 0;
  uint32_t associated_stream_id = 0;  // SYN_STREAM
  uint8_t priority = 0;               // SYN_STREAM, 0 (highest) to 7
  uint8_t slot = 0;                   // SYN_STREAM
  HeaderBlock headers;                // SYN_STREAM, SYN_REPLY, HEADERS
  std::string data;                   // DATA
  uint32_t status = 0;                // RST_STREAM, GOAWAY
  uint32_t ping_id = 0;               // PING
  uint32_t delta_window = 0;          // WINDOW_UPDATE
  std::vector<Setting> settings;      // SETTINGS

  bool fin() const { return (flags & kFlagFin) != 0; }
};

// The SPDY/3 header compression dictionary.
std::string_view HeaderDictionary();

// Uncompressed name/value blocks: a 32-bit count, then length-prefixed names
// and values.
std::string EncodeHeaderBlock(const HeaderBlock& headers);
bool DecodeHeaderBlock(std::string_view block, HeaderBlock* headers, std::string* error);

// One direction's zlib stream, shared by every header block of a session.
class HeaderCompressor {
 public:
  HeaderCompressor();
  ~HeaderCompressor();
  HeaderCompressor(const HeaderCompressor&) = delete;
  HeaderCompressor& operator=(const HeaderCompressor&) = delete;
  std::string Compress(std::string_view block);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class HeaderDecompressor {
 public:
  HeaderDecompressor();
  ~HeaderDecompressor();
  HeaderDecompressor(const HeaderDecompressor&) = delete;
  HeaderDecompressor& operator=(const HeaderDecompressor&) = delete;
  bool Decompress(std::string_view compressed, std::string* block, std::string* error);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Serializes frames of one direction (it owns that direction's compressor, so
// frames must be encoded in the order they are sent).
class FrameWriter {
 public:
  std::string Encode(const Frame& frame);

 private:
  HeaderCompressor compressor_;
};

// Parses frames of one direction from a byte stream.
class FrameReader {
 public:
  explicit FrameReader(size_t max_frame_bytes = kMaxDataLength) : max_frame_(max_frame_bytes) {}
  void Feed(std::string_view bytes);
  enum class Result { kFrame, kNeedMore, kSkipped, kError };
  // kSkipped: an unknown control frame type was read and ignored.
  Result Next(Frame* frame);
  const std::string& error() const { return error_; }

 private:
  bool ParseControl(uint16_t type, uint8_t flags, std::string_view body, Frame* frame);

  std::string buf_;
  size_t pos_ = 0;
  size_t max_frame_;
  std::string error_;
  HeaderDecompressor decompressor_;
};

class Session;

// A stream the peer opened. Reads and writes may happen on different threads.
// A Stream must not outlive its Session.
class Stream {
 public:
  uint32_t id() const { return id_; }
  const HeaderBlock& headers() const { return headers_; }
  // The value of header `name` (case-insensitive), "" when absent.
  std::string Header(std::string_view name) const;

  // Blocks for data. false when there is no more: the peer finished the
  // stream (FIN), reset it, we reset it, or the session ended.
  bool Read(std::string* data);
  // Sends `data` as DATA frames; false when the stream or the session is closed.
  bool Write(std::string_view data);
  // Half-closes our side (an empty DATA frame with FIN), once.
  void Close();
  // Ends both directions (RST_STREAM), once; a blocked Read returns false.
  void Reset(uint32_t status = kCancel);

  bool remote_finished() const;
  bool was_reset() const;

 private:
  friend class Session;
  Stream(Session* session, uint32_t id, HeaderBlock headers, uint32_t send_window)
      : session_(session), id_(id), headers_(std::move(headers)), send_window_(send_window) {}

  Session* session_;
  // Serializes Write and Close, so no DATA follows our FIN.
  std::mutex write_mu_;
  const uint32_t id_;
  const HeaderBlock headers_;
  // Guarded by the session's `mu_`.
  std::deque<std::string> incoming_;
  size_t buffered_ = 0;
  bool remote_fin_ = false;
  bool local_fin_ = false;
  bool reset_ = false;
  int64_t send_window_;
  uint32_t unacked_ = 0;  // bytes consumed since our last WINDOW_UPDATE
};

// The server side of a SPDY/3.1 session.
class Session {
 public:
  struct Options {
    // Our receive window per stream (the SPDY/3 default; it is not announced).
    uint32_t initial_window = kDefaultInitialWindow;
    // Bytes a stream may buffer before the reader stops reading the
    // connection (spdystream ignores windows, so this is the real limit).
    size_t max_buffered = 4 << 20;
    // DATA frame payload size when writing.
    size_t write_chunk = 32 << 10;
    // How long Close waits for the peer to hang up after our GOAWAY.
    int linger_ms = 5000;
  };
  // Decides on a stream the peer opens: "" accepts it (SYN_REPLY is sent and
  // the stream queued for Accept), an error text rejects it (RST_STREAM
  // CANCEL), as Kubernetes' NewStreamHandler. Runs on the reader thread.
  using StreamValidator = std::function<std::string(const Stream&)>;

  Session(std::unique_ptr<Transport> transport, StreamValidator validate, Options opts);
  Session(std::unique_ptr<Transport> transport, StreamValidator validate)
      : Session(std::move(transport), std::move(validate), Options{}) {}
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts the reader thread.
  void Start();
  // The next accepted stream, waiting up to `timeout_ms` (-1: forever);
  // nullptr on timeout or once the session is over.
  std::shared_ptr<Stream> Accept(int timeout_ms = -1);
  // Sends GOAWAY (once), waits up to `linger_ms` for the peer to hang up,
  // closes the transport and joins the reader. Ends every stream.
  void Close();
  // True once the peer hung up, the transport broke or Close ran.
  bool closed() const;
  // True once the peer sent GOAWAY.
  bool peer_going_away() const;
  // Waits until closed() (true) or `timeout_ms` passes (false).
  bool WaitClosed(int timeout_ms);

 private:
  friend class Stream;
  void ReadLoop();
  void Handle(Frame& f);
  void HandleSynStream(Frame& f);
  bool WriteFrame(const Frame& f);
  bool SendDataFrame(uint32_t id, std::string_view data, bool fin);
  void SendReset(uint32_t id, uint32_t status);
  // Accounts for `n` bytes the application read from `s` (with `mu_` held)
  // and returns the WINDOW_UPDATE frames to send once `mu_` is released.
  std::vector<Frame> Consumed(Stream& s, size_t n);
  void MaybeForget(uint32_t id);  // called with `mu_` held
  void EndAll();

  std::unique_ptr<Transport> transport_;
  StreamValidator validate_;
  Options opts_;
  std::thread reader_;

  std::mutex write_mu_;
  FrameWriter writer_;
  bool write_failed_ = false;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint32_t, std::shared_ptr<Stream>> streams_;
  std::deque<std::shared_ptr<Stream>> accepted_;
  uint32_t last_peer_stream_ = 0;
  uint32_t peer_initial_window_ = kDefaultInitialWindow;
  // Set once the peer sends WINDOW_UPDATE for a stream (and for the session):
  // from then on our writes honour its windows.
  bool peer_flow_control_ = false;
  bool peer_session_flow_control_ = false;
  int64_t session_send_window_ = kDefaultInitialWindow;
  uint32_t session_unacked_ = 0;
  bool goaway_sent_ = false;
  bool peer_goaway_ = false;
  bool closed_ = false;  // reader finished
  bool closing_ = false;
};

}  // namespace spdy
}  // namespace minik::streams
