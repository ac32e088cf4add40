#include "kubelet/streams/spdy.h"

#include <zlib.h>

#include <algorithm>
#include <chrono>

#include "common/log.h"
#include "kubelet/streams/websocket.h"

namespace minik::streams {

namespace {

class RawTransport : public Transport {
 public:
  explicit RawTransport(std::unique_ptr<http::RawStream> s) : s_(std::move(s)) {}
  size_t Read(char* buf, size_t n) override { return s_->Read(buf, n); }
  bool Write(std::string_view data) override { return s_->Write(data); }
  void Close() override { s_->Close(); }

 private:
  std::unique_ptr<http::RawStream> s_;
};

class TunnelTransport : public Transport {
 public:
  explicit TunnelTransport(std::unique_ptr<websocket::Connection> c) : c_(std::move(c)) {}
  size_t Read(char* buf, size_t n) override {
    while (pos_ >= pending_.size()) {
      std::optional<websocket::Message> m = c_->Read();
      if (!m) {
        return 0;
      }
      if (m->type != websocket::Opcode::kBinary) {
        // Kubernetes' TunnelingConnection fails on anything but binary data.
        log::Debug("spdy tunnel: unexpected text message, closing");
        c_->SendClose(websocket::kCloseUnsupportedData);
        return 0;
      }
      pending_ = std::move(m->data);
      pos_ = 0;
    }
    size_t k = std::min(n, pending_.size() - pos_);
    std::copy_n(pending_.data() + pos_, k, buf);
    pos_ += k;
    return k;
  }
  bool Write(std::string_view data) override { return c_->Write(websocket::Opcode::kBinary, data); }
  void Close() override {
    c_->SendClose(websocket::kCloseNormal);
    c_->Shutdown();
  }

 private:
  std::unique_ptr<websocket::Connection> c_;
  std::string pending_;
  size_t pos_ = 0;
};

}  // namespace

std::unique_ptr<Transport> RawStreamTransport(std::unique_ptr<http::RawStream> stream) {
  return std::make_unique<RawTransport>(std::move(stream));
}

std::unique_ptr<Transport> WebSocketTransport(std::unique_ptr<websocket::Connection> conn) {
  return std::make_unique<TunnelTransport>(std::move(conn));
}

namespace spdy {

namespace {

// Decompressed header blocks larger than this end the session.
constexpr size_t kMaxHeaderBlock = 1 << 20;

void PutU32(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>(v >> 24));
  out->push_back(static_cast<char>((v >> 16) & 0xFF));
  out->push_back(static_cast<char>((v >> 8) & 0xFF));
  out->push_back(static_cast<char>(v & 0xFF));
}

uint32_t GetU32(std::string_view s, size_t at) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + at;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

std::string BuildDictionary() {
  // The SPDY/3 dictionary (draft 3, section 2.6.10.1): length-prefixed common
  // header names and values, then a run of common value fragments.
  static constexpr std::string_view kWords[] = {
      "options",
      "head",
      "post",
      "put",
      "delete",
      "trace",
      "accept",
      "accept-charset",
      "accept-encoding",
      "accept-language",
      "accept-ranges",
      "age",
      "allow",
      "authorization",
      "cache-control",
      "connection",
      "content-base",
      "content-encoding",
      "content-language",
      "content-length",
      "content-location",
      "content-md5",
      "content-range",
      "content-type",
      "date",
      "etag",
      "expect",
      "expires",
      "from",
      "host",
      "if-match",
      "if-modified-since",
      "if-none-match",
      "if-range",
      "if-unmodified-since",
      "last-modified",
      "location",
      "max-forwards",
      "pragma",
      "proxy-authenticate",
      "proxy-authorization",
      "range",
      "referer",
      "retry-after",
      "server",
      "te",
      "trailer",
      "transfer-encoding",
      "upgrade",
      "user-agent",
      "vary",
      "via",
      "warning",
      "www-authenticate",
      "method",
      "get",
      "status",
      "200 OK",
      "version",
      "HTTP/1.1",
      "url",
      "public",
      "set-cookie",
      "keep-alive",
      "origin",
  };
  std::string d;
  for (std::string_view w : kWords) {
    PutU32(&d, static_cast<uint32_t>(w.size()));
    d.append(w);
  }
  d.append(
      "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
      "203 Non-Authoritative Information"
      "204 No Content"
      "301 Moved Permanently"
      "400 Bad Request"
      "401 Unauthorized"
      "403 Forbidden"
      "404 Not Found"
      "500 Internal Server Error"
      "501 Not Implemented"
      "503 Service Unavailable"
      "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00"
      " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
      "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,"
      "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch"
      "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.");
  return d;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

std::string_view HeaderDictionary() {
  static const std::string dict = BuildDictionary();
  return dict;
}

std::string EncodeHeaderBlock(const HeaderBlock& headers) {
  std::string out;
  PutU32(&out, static_cast<uint32_t>(headers.size()));
  for (const auto& [name, value] : headers) {
    std::string lower = Lower(name);
    PutU32(&out, static_cast<uint32_t>(lower.size()));
    out.append(lower);
    PutU32(&out, static_cast<uint32_t>(value.size()));
    out.append(value);
  }
  return out;
}

bool DecodeHeaderBlock(std::string_view block, HeaderBlock* headers, std::string* error) {
  auto fail = [&](const char* why) {
    *error = why;
    return false;
  };
  if (block.size() < 4) {
    return fail("header block shorter than its count");
  }
  uint32_t count = GetU32(block, 0);
  size_t at = 4;
  for (uint32_t i = 0; i < count; ++i) {
    std::string parts[2];
    for (std::string& part : parts) {
      if (block.size() - at < 4) {
        return fail("header block truncated");
      }
      uint32_t len = GetU32(block, at);
      at += 4;
      if (block.size() - at < len) {
        return fail("header block truncated");
      }
      part.assign(block.substr(at, len));
      at += len;
    }
    if (parts[0].empty()) {
      return fail("empty header name");
    }
    // spdystream lowercases what it sends; be as lenient on receipt.
    std::string name = Lower(parts[0]);
    auto [it, inserted] = headers->emplace(name, parts[1]);
    if (!inserted) {
      it->second += '\0' + parts[1];
    }
  }
  return true;
}

struct HeaderCompressor::Impl {
  z_stream z{};
};

HeaderCompressor::HeaderCompressor() : impl_(std::make_unique<Impl>()) {
  deflateInit(&impl_->z, Z_DEFAULT_COMPRESSION);
  std::string_view dict = HeaderDictionary();
  deflateSetDictionary(&impl_->z, reinterpret_cast<const Bytef*>(dict.data()),
                       static_cast<uInt>(dict.size()));
}

HeaderCompressor::~HeaderCompressor() {
  deflateEnd(&impl_->z);
}

std::string HeaderCompressor::Compress(std::string_view block) {
  z_stream& z = impl_->z;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(block.data()));
  z.avail_in = static_cast<uInt>(block.size());
  std::string out;
  char chunk[4096];
  do {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    deflate(&z, Z_SYNC_FLUSH);
    out.append(chunk, sizeof chunk - z.avail_out);
  } while (z.avail_out == 0);
  return out;
}

struct HeaderDecompressor::Impl {
  z_stream z{};
};

HeaderDecompressor::HeaderDecompressor() : impl_(std::make_unique<Impl>()) {
  inflateInit(&impl_->z);
}

HeaderDecompressor::~HeaderDecompressor() {
  inflateEnd(&impl_->z);
}

bool HeaderDecompressor::Decompress(std::string_view compressed, std::string* block,
                                    std::string* error) {
  z_stream& z = impl_->z;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  z.avail_in = static_cast<uInt>(compressed.size());
  block->clear();
  char chunk[4096];
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    int ret = inflate(&z, Z_SYNC_FLUSH);
    if (ret == Z_NEED_DICT) {
      std::string_view dict = HeaderDictionary();
      if (inflateSetDictionary(&z, reinterpret_cast<const Bytef*>(dict.data()),
                               static_cast<uInt>(dict.size())) != Z_OK) {
        *error = "header block compressed with another dictionary";
        return false;
      }
      continue;
    }
    block->append(chunk, sizeof chunk - z.avail_out);
    if (block->size() > kMaxHeaderBlock) {
      *error = "header block too large";
      return false;
    }
    if (ret == Z_BUF_ERROR || (ret == Z_OK && z.avail_in == 0 && z.avail_out != 0)) {
      break;
    }
    if (ret != Z_OK) {
      *error = std::string("header block decompression failed: ") + (z.msg ? z.msg : "zlib error");
      return false;
    }
  }
  if (z.avail_in != 0) {
    *error = "header block has trailing bytes";
    return false;
  }
  return true;
}

std::string FrameWriter::Encode(const Frame& f) {
  std::string out;
  if (f.type == FrameType::kData) {
    PutU32(&out, f.stream_id & 0x7FFFFFFF);
    PutU32(&out, (uint32_t{f.flags} << 24) | static_cast<uint32_t>(f.data.size()));
    out.append(f.data);
    return out;
  }
  std::string body;
  switch (f.type) {
    case FrameType::kSynStream:
      PutU32(&body, f.stream_id & 0x7FFFFFFF);
      PutU32(&body, f.associated_stream_id & 0x7FFFFFFF);
      body.push_back(static_cast<char>((f.priority & 0x07) << 5));
      body.push_back(static_cast<char>(f.slot));
      body.append(compressor_.Compress(EncodeHeaderBlock(f.headers)));
      break;
    case FrameType::kSynReply:
    case FrameType::kHeaders:
      PutU32(&body, f.stream_id & 0x7FFFFFFF);
      body.append(compressor_.Compress(EncodeHeaderBlock(f.headers)));
      break;
    case FrameType::kRstStream:
      PutU32(&body, f.stream_id & 0x7FFFFFFF);
      PutU32(&body, f.status);
      break;
    case FrameType::kSettings:
      PutU32(&body, static_cast<uint32_t>(f.settings.size()));
      for (const Setting& s : f.settings) {
        PutU32(&body, (uint32_t{s.flags} << 24) | (s.id & 0xFFFFFF));
        PutU32(&body, s.value);
      }
      break;
    case FrameType::kPing:
      PutU32(&body, f.ping_id);
      break;
    case FrameType::kGoAway:
      PutU32(&body, f.stream_id & 0x7FFFFFFF);
      PutU32(&body, f.status);
      break;
    case FrameType::kWindowUpdate:
      PutU32(&body, f.stream_id & 0x7FFFFFFF);
      PutU32(&body, f.delta_window & 0x7FFFFFFF);
      break;
    case FrameType::kData:
      break;
  }
  PutU32(&out, (0x8000u | f.version) << 16 | static_cast<uint16_t>(f.type));
  PutU32(&out, (uint32_t{f.flags} << 24) | static_cast<uint32_t>(body.size()));
  out.append(body);
  return out;
}

void FrameReader::Feed(std::string_view bytes) {
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

FrameReader::Result FrameReader::Next(Frame* frame) {
  if (!error_.empty()) {
    return Result::kError;
  }
  size_t avail = buf_.size() - pos_;
  if (avail < 8) {
    return Result::kNeedMore;
  }
  std::string_view view(buf_);
  uint32_t w0 = GetU32(view, pos_);
  uint32_t w1 = GetU32(view, pos_ + 4);
  uint8_t flags = static_cast<uint8_t>(w1 >> 24);
  size_t len = w1 & 0xFFFFFF;
  if (len > max_frame_) {
    error_ = "frame of " + std::to_string(len) + " bytes is larger than the limit";
    return Result::kError;
  }
  if (avail < 8 + len) {
    return Result::kNeedMore;
  }
  std::string_view body = view.substr(pos_ + 8, len);
  Result result = Result::kFrame;
  *frame = Frame{};
  frame->flags = flags;
  if (w0 & 0x80000000) {
    frame->version = static_cast<uint16_t>((w0 >> 16) & 0x7FFF);
    auto type = static_cast<uint16_t>(w0 & 0xFFFF);
    switch (type) {
      case 1:
      case 2:
      case 3:
      case 4:
      case 6:
      case 7:
      case 8:
      case 9:
        if (!ParseControl(type, flags, body, frame)) {
          return Result::kError;
        }
        break;
      default:
        // SPDY/3 section 2.2.1: unknown control frames are ignored.
        result = Result::kSkipped;
        break;
    }
  } else {
    frame->type = FrameType::kData;
    frame->stream_id = w0 & 0x7FFFFFFF;
    if (frame->stream_id == 0) {
      error_ = "DATA frame for stream 0";
      return Result::kError;
    }
    frame->data.assign(body);
  }
  pos_ += 8 + len;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  return result;
}

bool FrameReader::ParseControl(uint16_t type, uint8_t flags, std::string_view body, Frame* frame) {
  auto fail = [&](const std::string& why) {
    error_ = why;
    return false;
  };
  auto headers = [&](size_t offset) {
    std::string block;
    std::string why;
    if (!decompressor_.Decompress(body.substr(offset), &block, &why) ||
        !DecodeHeaderBlock(block, &frame->headers, &why)) {
      return fail(why);
    }
    return true;
  };
  frame->type = static_cast<FrameType>(type);
  switch (frame->type) {
    case FrameType::kSynStream:
      if (body.size() < 10) {
        return fail("SYN_STREAM too short");
      }
      frame->stream_id = GetU32(body, 0) & 0x7FFFFFFF;
      frame->associated_stream_id = GetU32(body, 4) & 0x7FFFFFFF;
      frame->priority = static_cast<uint8_t>(static_cast<uint8_t>(body[8]) >> 5);
      frame->slot = static_cast<uint8_t>(body[9]);
      if (frame->stream_id == 0) {
        return fail("SYN_STREAM for stream 0");
      }
      return headers(10);
    case FrameType::kSynReply:
    case FrameType::kHeaders:
      if (body.size() < 4) {
        return fail("SYN_REPLY or HEADERS too short");
      }
      frame->stream_id = GetU32(body, 0) & 0x7FFFFFFF;
      if (frame->stream_id == 0) {
        return fail("SYN_REPLY or HEADERS for stream 0");
      }
      return headers(4);
    case FrameType::kRstStream:
      if (body.size() != 8) {
        return fail("RST_STREAM of the wrong length");
      }
      frame->stream_id = GetU32(body, 0) & 0x7FFFFFFF;
      frame->status = GetU32(body, 4);
      if (frame->stream_id == 0 || frame->status == 0) {
        return fail("RST_STREAM for stream 0 or with status 0");
      }
      return true;
    case FrameType::kSettings: {
      if (body.size() < 4) {
        return fail("SETTINGS too short");
      }
      uint32_t n = GetU32(body, 0);
      if (body.size() != 4 + size_t{n} * 8) {
        return fail("SETTINGS of the wrong length");
      }
      for (uint32_t i = 0; i < n; ++i) {
        uint32_t id = GetU32(body, 4 + i * 8);
        frame->settings.push_back(
            {static_cast<uint8_t>(id >> 24), id & 0xFFFFFF, GetU32(body, 8 + i * 8)});
      }
      return true;
    }
    case FrameType::kPing:
      if (body.size() != 4) {
        return fail("PING of the wrong length");
      }
      frame->ping_id = GetU32(body, 0);
      return true;
    case FrameType::kGoAway:
      // SPDY/2 had no status; accept both lengths.
      if (body.size() != 8 && body.size() != 4) {
        return fail("GOAWAY of the wrong length");
      }
      frame->stream_id = GetU32(body, 0) & 0x7FFFFFFF;
      frame->status = body.size() == 8 ? GetU32(body, 4) : 0;
      return true;
    case FrameType::kWindowUpdate:
      if (body.size() != 8) {
        return fail("WINDOW_UPDATE of the wrong length");
      }
      frame->stream_id = GetU32(body, 0) & 0x7FFFFFFF;
      frame->delta_window = GetU32(body, 4) & 0x7FFFFFFF;
      return true;
    case FrameType::kData:
      break;
  }
  return fail("unexpected control frame");
}

// --- Stream -----------------------------------------------------------------

std::string Stream::Header(std::string_view name) const {
  auto it = headers_.find(Lower(name));
  if (it == headers_.end()) {
    return "";
  }
  // Several values are joined with NUL; like http.Header.Get, take the first.
  return it->second.substr(0, it->second.find('\0'));
}

bool Stream::Read(std::string* data) {
  std::vector<Frame> updates;
  {
    std::unique_lock lock(session_->mu_);
    session_->cv_.wait(
        lock, [&] { return !incoming_.empty() || remote_fin_ || reset_ || session_->closed_; });
    if (incoming_.empty()) {
      return false;
    }
    *data = std::move(incoming_.front());
    incoming_.pop_front();
    buffered_ -= data->size();
    updates = session_->Consumed(*this, data->size());
    session_->cv_.notify_all();
  }
  for (const Frame& f : updates) {
    session_->WriteFrame(f);
  }
  return true;
}

bool Stream::Write(std::string_view data) {
  std::lock_guard write_lock(write_mu_);
  size_t off = 0;
  while (off < data.size()) {
    size_t n = std::min(data.size() - off, session_->opts_.write_chunk);
    {
      std::unique_lock lock(session_->mu_);
      for (;;) {
        if (reset_ || local_fin_ || session_->closed_ || session_->closing_) {
          return false;
        }
        if (!session_->peer_flow_control_) {
          break;
        }
        int64_t avail = send_window_;
        if (session_->peer_session_flow_control_) {
          avail = std::min(avail, session_->session_send_window_);
        }
        if (avail > 0) {
          n = std::min(n, static_cast<size_t>(avail));
          break;
        }
        session_->cv_.wait(lock);
      }
      // Windows are counted from the start, and enforced once the peer uses them.
      send_window_ -= static_cast<int64_t>(n);
      session_->session_send_window_ -= static_cast<int64_t>(n);
    }
    if (!session_->SendDataFrame(id_, data.substr(off, n), false)) {
      return false;
    }
    off += n;
  }
  return true;
}

void Stream::Close() {
  std::lock_guard write_lock(write_mu_);
  {
    std::lock_guard lock(session_->mu_);
    if (local_fin_ || reset_) {
      return;
    }
    local_fin_ = true;
  }
  session_->SendDataFrame(id_, {}, true);
  std::lock_guard lock(session_->mu_);
  session_->MaybeForget(id_);
}

void Stream::Reset(uint32_t status) {
  {
    std::lock_guard lock(session_->mu_);
    if (reset_) {
      return;
    }
    reset_ = true;
    incoming_.clear();
    buffered_ = 0;
    session_->MaybeForget(id_);
    session_->cv_.notify_all();
  }
  session_->SendReset(id_, status);
}

bool Stream::remote_finished() const {
  std::lock_guard lock(session_->mu_);
  return remote_fin_;
}

bool Stream::was_reset() const {
  std::lock_guard lock(session_->mu_);
  return reset_;
}

// --- Session ----------------------------------------------------------------

Session::Session(std::unique_ptr<Transport> transport, StreamValidator validate, Options opts)
    : transport_(std::move(transport)), validate_(std::move(validate)), opts_(opts) {}

Session::~Session() {
  Close();
}

void Session::Start() {
  reader_ = std::thread([this] { ReadLoop(); });
}

bool Session::WriteFrame(const Frame& f) {
  std::lock_guard lock(write_mu_);
  if (write_failed_) {
    return false;
  }
  // Encoding happens under the lock: header blocks share one zlib stream, so
  // they must reach the wire in the order they were compressed.
  if (!transport_->Write(writer_.Encode(f))) {
    write_failed_ = true;
    return false;
  }
  return true;
}

bool Session::SendDataFrame(uint32_t id, std::string_view data, bool fin) {
  Frame f;
  f.type = FrameType::kData;
  f.stream_id = id;
  f.flags = fin ? kFlagFin : 0;
  f.data.assign(data);
  return WriteFrame(f);
}

void Session::SendReset(uint32_t id, uint32_t status) {
  Frame f;
  f.type = FrameType::kRstStream;
  f.stream_id = id;
  f.status = status;
  WriteFrame(f);
}

std::vector<Frame> Session::Consumed(Stream& s, size_t n) {
  std::vector<Frame> updates;
  uint32_t threshold = std::max<uint32_t>(1, opts_.initial_window / 2);
  s.unacked_ += static_cast<uint32_t>(n);
  if (s.unacked_ >= threshold && !s.remote_fin_ && !s.reset_) {
    Frame f;
    f.type = FrameType::kWindowUpdate;
    f.stream_id = s.id_;
    f.delta_window = s.unacked_;
    s.unacked_ = 0;
    updates.push_back(f);
  }
  session_unacked_ += static_cast<uint32_t>(n);
  if (session_unacked_ >= threshold) {
    Frame f;
    f.type = FrameType::kWindowUpdate;
    f.stream_id = 0;
    f.delta_window = session_unacked_;
    session_unacked_ = 0;
    updates.push_back(f);
  }
  return updates;
}

void Session::MaybeForget(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return;
  }
  const Stream& s = *it->second;
  if (s.reset_ || (s.local_fin_ && s.remote_fin_)) {
    streams_.erase(it);
  }
}

std::shared_ptr<Stream> Session::Accept(int timeout_ms) {
  std::unique_lock lock(mu_);
  auto ready = [&] { return !accepted_.empty() || closed_ || closing_; };
  if (timeout_ms < 0) {
    cv_.wait(lock, ready);
  } else {
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready);
  }
  if (accepted_.empty()) {
    return nullptr;
  }
  std::shared_ptr<Stream> s = std::move(accepted_.front());
  accepted_.pop_front();
  return s;
}

bool Session::closed() const {
  std::lock_guard lock(mu_);
  return closed_ || closing_;
}

bool Session::peer_going_away() const {
  std::lock_guard lock(mu_);
  return peer_goaway_;
}

bool Session::WaitClosed(int timeout_ms) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return closed_; });
}

void Session::Close() {
  uint32_t last;
  bool send_goaway;
  {
    std::lock_guard lock(mu_);
    if (closing_) {
      return;
    }
    closing_ = true;
    send_goaway = !goaway_sent_ && !closed_;
    goaway_sent_ = true;
    last = last_peer_stream_;
    cv_.notify_all();
  }
  if (send_goaway) {
    Frame f;
    f.type = FrameType::kGoAway;
    f.stream_id = last;
    f.status = kGoAwayOk;
    WriteFrame(f);
  }
  // The peer hangs up once it has read what we sent; closing first could
  // turn unread input into a TCP reset that loses our last frames.
  if (reader_.joinable()) {
    WaitClosed(opts_.linger_ms);
  }
  transport_->Close();
  if (reader_.joinable()) {
    reader_.join();
  }
  EndAll();
}

void Session::EndAll() {
  std::lock_guard lock(mu_);
  closed_ = true;
  for (auto& [id, s] : streams_) {
    s->remote_fin_ = true;
  }
  cv_.notify_all();
}

void Session::ReadLoop() {
  FrameReader reader;
  std::string buf(64 << 10, '\0');
  bool fatal = false;
  while (!fatal) {
    size_t n = transport_->Read(buf.data(), buf.size());
    if (n == 0) {
      break;
    }
    reader.Feed(std::string_view(buf.data(), n));
    for (;;) {
      Frame f;
      FrameReader::Result r = reader.Next(&f);
      if (r == FrameReader::Result::kNeedMore) {
        break;
      }
      if (r == FrameReader::Result::kSkipped) {
        continue;
      }
      if (r == FrameReader::Result::kError) {
        log::Debug("spdy: protocol error from the peer: {}", reader.error());
        Frame g;
        g.type = FrameType::kGoAway;
        g.stream_id = last_peer_stream_;
        g.status = kGoAwayProtocolError;
        {
          std::lock_guard lock(mu_);
          goaway_sent_ = true;
        }
        WriteFrame(g);
        transport_->Close();
        fatal = true;
        break;
      }
      log::Debug("spdy: received frame type {} for stream {}, flags {}, {} data bytes",
                 static_cast<int>(f.type), f.stream_id, f.flags, f.data.size());
      Handle(f);
    }
  }
  log::Debug("spdy: connection ended");
  EndAll();
}

void Session::HandleSynStream(Frame& f) {
  uint32_t id = f.stream_id;
  std::shared_ptr<Stream> s;
  uint32_t refuse = 0;
  {
    std::lock_guard lock(mu_);
    if (id % 2 == 0 || id <= last_peer_stream_) {
      // Client streams have odd, increasing ids.
      refuse = kProtocolError;
    } else {
      last_peer_stream_ = id;
      if (goaway_sent_ || closing_) {
        refuse = kRefusedStream;
      } else {
        s.reset(new Stream(this, id, std::move(f.headers), peer_initial_window_));
        s->remote_fin_ = f.fin();
        s->local_fin_ = (f.flags & kFlagUnidirectional) != 0;
        streams_[id] = s;
      }
    }
  }
  if (refuse) {
    SendReset(id, refuse);
    return;
  }
  std::string err = validate_ ? validate_(*s) : std::string();
  if (!err.empty()) {
    log::Debug("spdy: stream {} rejected: {}", id, err);
    s->Reset(kCancel);
    return;
  }
  Frame reply;
  reply.type = FrameType::kSynReply;
  reply.stream_id = id;
  WriteFrame(reply);
  std::lock_guard lock(mu_);
  accepted_.push_back(std::move(s));
  cv_.notify_all();
}

void Session::Handle(Frame& f) {
  switch (f.type) {
    case FrameType::kSynStream:
      HandleSynStream(f);
      return;
    case FrameType::kSynReply:
      // We open no streams, so there is nothing to reply to.
      return;
    case FrameType::kPing:
      // Our pings would have even ids; echo the peer's (odd) ones.
      if (f.ping_id % 2 == 1) {
        WriteFrame(f);
      }
      return;
    default:
      break;
  }
  std::unique_lock lock(mu_);
  auto find = [&](uint32_t id) -> Stream* {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  };
  switch (f.type) {
    case FrameType::kRstStream:
      if (Stream* s = find(f.stream_id)) {
        s->reset_ = true;
        s->incoming_.clear();
        s->buffered_ = 0;
        MaybeForget(f.stream_id);
      }
      break;
    case FrameType::kSettings:
      for (const Setting& st : f.settings) {
        if (st.id == kSettingsInitialWindowSize) {
          int64_t delta = int64_t{st.value} - int64_t{peer_initial_window_};
          for (auto& [id, s] : streams_) {
            s->send_window_ += delta;
          }
          peer_initial_window_ = st.value;
        }
      }
      break;
    case FrameType::kGoAway:
      peer_goaway_ = true;
      break;
    case FrameType::kHeaders:
      if (Stream* s = find(f.stream_id); s && f.fin()) {
        s->remote_fin_ = true;
        MaybeForget(f.stream_id);
      }
      break;
    case FrameType::kWindowUpdate:
      if (f.stream_id == 0) {
        peer_session_flow_control_ = true;
        session_send_window_ += f.delta_window;
      } else if (Stream* s = find(f.stream_id)) {
        peer_flow_control_ = true;
        s->send_window_ += f.delta_window;
      }
      break;
    case FrameType::kData: {
      Stream* s = find(f.stream_id);
      if (!s || s->reset_ || s->remote_fin_) {
        // spdystream drops data for streams it no longer knows; so do we.
        break;
      }
      std::shared_ptr<Stream> keep = streams_[f.stream_id];
      if (!f.data.empty()) {
        s->buffered_ += f.data.size();
        s->incoming_.push_back(std::move(f.data));
      }
      if (f.fin()) {
        s->remote_fin_ = true;
        MaybeForget(f.stream_id);
      }
      cv_.notify_all();
      // Backpressure: stop reading the connection while this stream holds
      // more than it should, until the application catches up.
      cv_.wait(lock,
               [&] { return keep->buffered_ <= opts_.max_buffered || keep->reset_ || closing_; });
      break;
    }
    default:
      break;
  }
  cv_.notify_all();
}

}  // namespace spdy
}  // namespace minik::streams
