#include "kubelet/streams/websocket.h"

#include "common/base64.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace minik::streams::websocket {

namespace {

constexpr std::string_view kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) {
    return "";
  }
  size_t e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::vector<std::string> SplitList(std::string_view value) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    if (comma == std::string_view::npos) {
      comma = value.size();
    }
    std::string item = Trim(value.substr(pos, comma - pos));
    if (!item.empty()) {
      out.push_back(std::move(item));
    }
    pos = comma + 1;
  }
  return out;
}

// A close status a peer may send (RFC 6455 section 7.4).
bool IsValidCloseCode(uint16_t code) {
  if (code >= 3000 && code <= 4999) {
    return true;
  }
  switch (code) {
    case 1000:
    case 1001:
    case 1002:
    case 1003:
    case 1007:
    case 1008:
    case 1009:
    case 1010:
    case 1011:
    case 1012:
    case 1013:
    case 1014:
      return true;
    default:
      return false;
  }
}

void SendError(http::ResponseWriter& w, int status, const std::string& message,
               http::Headers extra = {}) {
  extra["Content-Type"] = "text/plain; charset=utf-8";
  extra["X-Content-Type-Options"] = "nosniff";
  w.Send(status, extra, message + "\n");
}

std::string JoinForMessage(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    out += (i ? " " : "") + items[i];
  }
  return out + "]";
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) {
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string AcceptKey(std::string_view key) {
  std::string input = std::string(key) + std::string(kAcceptGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha1(), nullptr);
  return base64::Encode(std::string_view(reinterpret_cast<const char*>(digest), len));
}

bool IsWebSocketRequest(const http::Request& req) {
  if (Lower(Trim(req.Header("Upgrade"))) != "websocket") {
    return false;
  }
  for (const std::string& token : SplitList(req.Header("Connection"))) {
    if (Lower(token) == "upgrade") {
      return true;
    }
  }
  return false;
}

std::vector<std::string> RequestedProtocols(const http::Request& req) {
  return SplitList(req.Header("Sec-WebSocket-Protocol"));
}

std::string EncodeFrame(Opcode opcode, std::string_view payload, bool fin,
                        const std::array<uint8_t, 4>* mask) {
  std::string out;
  out.reserve(payload.size() + 14);
  out.push_back(static_cast<char>((fin ? 0x80 : 0x00) | static_cast<uint8_t>(opcode)));
  uint8_t mask_bit = mask ? 0x80 : 0x00;
  uint64_t len = payload.size();
  if (len < 126) {
    out.push_back(static_cast<char>(mask_bit | len));
  } else if (len <= 0xFFFF) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(len >> 8));
    out.push_back(static_cast<char>(len & 0xFF));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((len >> shift) & 0xFF));
    }
  }
  if (mask) {
    out.append(reinterpret_cast<const char*>(mask->data()), 4);
    size_t start = out.size();
    out.append(payload);
    for (size_t i = 0; i < payload.size(); ++i) {
      out[start + i] = static_cast<char>(out[start + i] ^ (*mask)[i % 4]);
    }
  } else {
    out.append(payload);
  }
  return out;
}

void FrameParser::Feed(std::string_view bytes) {
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

FrameParser::Result FrameParser::Next(Frame* frame) {
  if (error_code_ != 0) {
    return Result::kError;
  }
  size_t avail = buf_.size() - pos_;
  if (avail < 2) {
    return Result::kNeedMore;
  }
  const auto* p = reinterpret_cast<const uint8_t*>(buf_.data()) + pos_;
  bool masked = (p[1] & 0x80) != 0;
  uint64_t len = p[1] & 0x7F;
  size_t header = 2;
  if (len == 126) {
    if (avail < 4) {
      return Result::kNeedMore;
    }
    len = (uint64_t{p[2]} << 8) | p[3];
    header = 4;
  } else if (len == 127) {
    if (avail < 10) {
      return Result::kNeedMore;
    }
    len = 0;
    for (int i = 0; i < 8; ++i) {
      len = (len << 8) | p[2 + i];
    }
    if (len >> 63) {
      error_code_ = kCloseProtocolError;
      error_ = "frame length has its most significant bit set";
      return Result::kError;
    }
    header = 10;
  }
  if (len > max_payload_) {
    error_code_ = kCloseMessageTooBig;
    error_ = "frame of " + std::to_string(len) + " bytes is larger than the limit";
    return Result::kError;
  }
  size_t mask_at = header;
  if (masked) {
    header += 4;
  }
  if (avail < header + len) {
    return Result::kNeedMore;
  }
  frame->fin = (p[0] & 0x80) != 0;
  frame->rsv = (p[0] >> 4) & 0x07;
  frame->opcode = static_cast<Opcode>(p[0] & 0x0F);
  frame->masked = masked;
  frame->payload.assign(reinterpret_cast<const char*>(p + header), static_cast<size_t>(len));
  if (masked) {
    const uint8_t* key = p + mask_at;
    for (size_t i = 0; i < frame->payload.size(); ++i) {
      frame->payload[i] = static_cast<char>(frame->payload[i] ^ key[i % 4]);
    }
  }
  pos_ += header + static_cast<size_t>(len);
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  return Result::kFrame;
}

Connection::Connection(std::unique_ptr<http::RawStream> stream, std::string protocol, Options opts)
    : stream_(std::move(stream)),
      protocol_(std::move(protocol)),
      opts_(opts),
      parser_(opts.max_message_bytes) {}

Connection::~Connection() {
  Shutdown();
}

bool Connection::WriteFrame(Opcode op, std::string_view payload) {
  std::string frame = EncodeFrame(op, payload);
  std::lock_guard lock(write_mu_);
  if (!stream_->Write(frame)) {
    done_ = true;
    return false;
  }
  return true;
}

bool Connection::Write(Opcode type, std::string_view data) {
  if (close_sent_ || done_) {
    return false;
  }
  return WriteFrame(type, data);
}

bool Connection::Ping(std::string_view payload) {
  if (close_sent_ || done_ || payload.size() > 125) {
    return false;
  }
  return WriteFrame(Opcode::kPing, payload);
}

bool Connection::SendClose(uint16_t code, std::string_view reason) {
  if (close_sent_.exchange(true)) {
    return false;
  }
  std::string payload;
  if (code != kCloseNoStatus) {
    payload.push_back(static_cast<char>(code >> 8));
    payload.push_back(static_cast<char>(code & 0xFF));
    payload.append(reason.substr(0, 123));
  }
  return WriteFrame(Opcode::kClose, payload);
}

void Connection::Shutdown() {
  done_ = true;
  stream_->Close();
}

void Connection::Fail(uint16_t code, const std::string& why) {
  log::Debug("websocket: failing the connection ({}): {}", code, why);
  SendClose(code);
  done_ = true;
}

std::optional<Message> Connection::Read() {
  char buf[16384];
  for (;;) {
    if (done_) {
      return std::nullopt;
    }
    Frame f;
    FrameParser::Result r = parser_.Next(&f);
    if (r == FrameParser::Result::kError) {
      Fail(parser_.error_code(), parser_.error());
      return std::nullopt;
    }
    if (r == FrameParser::Result::kNeedMore) {
      size_t n = stream_->Read(buf, sizeof buf);
      if (n == 0) {
        done_ = true;
        return std::nullopt;
      }
      parser_.Feed(std::string_view(buf, n));
      continue;
    }
    if (f.rsv != 0) {
      Fail(kCloseProtocolError, "reserved bits set without a negotiated extension");
      return std::nullopt;
    }
    if (opts_.require_masked && !f.masked) {
      Fail(kCloseProtocolError, "client frame is not masked");
      return std::nullopt;
    }
    auto op = static_cast<uint8_t>(f.opcode);
    if (op & 0x08) {
      if (!f.fin || f.payload.size() > 125) {
        Fail(kCloseProtocolError, "control frame fragmented or longer than 125 bytes");
        return std::nullopt;
      }
      switch (f.opcode) {
        case Opcode::kPing:
          if (!close_sent_) {
            WriteFrame(Opcode::kPong, f.payload);
          }
          continue;
        case Opcode::kPong:
          continue;
        case Opcode::kClose: {
          uint16_t code = kCloseNoStatus;
          if (f.payload.size() == 1) {
            Fail(kCloseProtocolError, "close frame with a one-byte payload");
            return std::nullopt;
          }
          if (f.payload.size() >= 2) {
            code = static_cast<uint16_t>((static_cast<uint8_t>(f.payload[0]) << 8) |
                                         static_cast<uint8_t>(f.payload[1]));
            if (!IsValidCloseCode(code)) {
              Fail(kCloseProtocolError, "invalid close code " + std::to_string(code));
              return std::nullopt;
            }
            if (!IsValidUtf8(std::string_view(f.payload).substr(2))) {
              Fail(kCloseInvalidPayload, "close reason is not UTF-8");
              return std::nullopt;
            }
          }
          peer_close_code_ = code;
          peer_closed_ = true;
          // Answer with the same status, as RFC 6455 section 5.5.1 asks.
          SendClose(code == kCloseNoStatus ? kCloseNormal : code);
          done_ = true;
          return std::nullopt;
        }
        default:
          Fail(kCloseProtocolError, "unknown control opcode " + std::to_string(op));
          return std::nullopt;
      }
    }
    if (f.opcode == Opcode::kContinuation) {
      if (!in_message_) {
        Fail(kCloseProtocolError, "continuation frame without a message to continue");
        return std::nullopt;
      }
    } else if (f.opcode == Opcode::kText || f.opcode == Opcode::kBinary) {
      if (in_message_) {
        Fail(kCloseProtocolError, "new message before the previous one was finished");
        return std::nullopt;
      }
      in_message_ = true;
      partial_.type = f.opcode;
      partial_.data.clear();
    } else {
      Fail(kCloseProtocolError, "unknown data opcode " + std::to_string(op));
      return std::nullopt;
    }
    if (partial_.data.size() + f.payload.size() > opts_.max_message_bytes) {
      Fail(kCloseMessageTooBig, "message is larger than the limit");
      return std::nullopt;
    }
    partial_.data.append(f.payload);
    if (f.fin) {
      in_message_ = false;
      if (partial_.type == Opcode::kText && !IsValidUtf8(partial_.data)) {
        Fail(kCloseInvalidPayload, "text message is not UTF-8");
        return std::nullopt;
      }
      Message m = std::move(partial_);
      partial_ = Message{};
      return m;
    }
  }
}

std::unique_ptr<Connection> Accept(http::Request& req, http::ResponseWriter& w,
                                   const std::vector<std::string>& supported, std::string* error,
                                   Connection::Options opts) {
  auto fail = [&](int status, const std::string& message, http::Headers extra = {}) {
    if (error) {
      *error = message;
    }
    SendError(w, status, message, std::move(extra));
    return nullptr;
  };
  if (!IsWebSocketRequest(req)) {
    return fail(400, "unable to upgrade: not a websocket handshake");
  }
  if (req.method != "GET") {
    return fail(405, "unable to upgrade: websocket handshake must use GET, not " + req.method);
  }
  if (Trim(req.Header("Sec-WebSocket-Version")) != "13") {
    return fail(426, "unable to upgrade: unsupported websocket version",
                {{"Sec-WebSocket-Version", "13"}});
  }
  std::string key = Trim(req.Header("Sec-WebSocket-Key"));
  std::optional<std::string> raw_key = base64::Decode(key);
  if (!raw_key || raw_key->size() != 16) {
    return fail(400, "unable to upgrade: invalid Sec-WebSocket-Key");
  }
  std::vector<std::string> offered = RequestedProtocols(req);
  std::vector<std::string> candidates = offered.empty() ? std::vector<std::string>{""} : offered;
  std::optional<std::string> chosen;
  for (const std::string& p : candidates) {
    if (std::find(supported.begin(), supported.end(), p) != supported.end()) {
      chosen = p;
      break;
    }
  }
  if (!chosen) {
    return fail(403, "requested protocol(s) are not supported: " + JoinForMessage(offered) +
                         "; supports " + JoinForMessage(supported));
  }
  http::Headers headers{{"Upgrade", "websocket"},
                        {"Connection", "Upgrade"},
                        {"Sec-WebSocket-Accept", AcceptKey(key)}};
  if (!chosen->empty()) {
    headers["Sec-WebSocket-Protocol"] = *chosen;
  }
  std::unique_ptr<http::RawStream> raw = w.Upgrade(101, headers);
  if (!raw) {
    if (error) {
      *error = "unable to upgrade: the connection could not be taken over";
    }
    return nullptr;
  }
  return std::make_unique<Connection>(std::move(raw), *chosen, opts);
}

}  // namespace minik::streams::websocket
