#include "kubelet/streams/portforward.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "common/base64.h"
#include "common/log.h"
#include "kubelet/streams/spdy.h"
#include "kubelet/streams/stream_util.h"
#include "kubelet/streams/websocket.h"

namespace minik::streams {

namespace {

using Clock = std::chrono::steady_clock;

// How long a closing session waits for the client to hang up.
constexpr int kLingerMs = 5'000;
// Bytes a WebSocket channel may hold before the reader stops reading.
constexpr size_t kMaxChannelBuffered = 4 << 20;

// The client side of one forwarded connection's data, whatever carries it.
class DataChannel {
 public:
  virtual ~DataChannel() = default;
  // Bytes from the client; false once it is done sending.
  virtual bool Read(std::string* data) = 0;
  // Bytes to the client; false once it is gone.
  virtual bool Write(std::string_view data) = 0;
  // The pod is done sending.
  virtual void CloseWrite() = 0;
  // Gives up on the client's side: a blocked Read returns false.
  virtual void Abort() = 0;
};

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Relays between the client's channel and the pod's socket until both
// directions are done, or one is and the other stays idle for `grace_ms`, or
// `stop` is set. Half-closes are passed on: the client's end of data becomes a
// write shutdown of the socket, the pod's end a CloseWrite of the channel.
void Relay(DataChannel& ch, int fd, int grace_ms, const std::atomic<bool>& stop) {
  std::atomic<bool> up_done{false};
  std::thread up([&] {
    std::string data;
    while (ch.Read(&data)) {
      if (!WriteAll(fd, data)) {
        break;
      }
    }
    ::shutdown(fd, SHUT_WR);
    up_done = true;
  });
  std::string buf(32 << 10, '\0');
  bool idle_after_half_close = false;
  while (!stop) {
    pollfd p{fd, POLLIN, 0};
    bool half_closed = up_done;
    int r = ::poll(&p, 1, half_closed ? grace_ms : 200);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r == 0) {
      if (half_closed) {
        idle_after_half_close = true;
        break;
      }
      continue;
    }
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;
    }
    if (n <= 0 || !ch.Write(std::string_view(buf.data(), static_cast<size_t>(n)))) {
      break;
    }
  }
  if (idle_after_half_close) {
    log::Debug("port-forward: pod stayed idle after the client finished sending");
  }
  ch.CloseWrite();
  // The client normally ends its side once it has seen ours end.
  auto deadline = Clock::now() + std::chrono::milliseconds(grace_ms);
  while (!up_done && !stop && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!up_done) {
    ch.Abort();
    ::shutdown(fd, SHUT_RDWR);
  }
  up.join();
}

std::string ForwardError(const PortForwardOptions& opts, uint16_t port, const std::string& why) {
  return fmt::format("error forwarding port {} to pod {}, uid {}: {}", port, opts.pod_name,
                     opts.pod_uid, why);
}

std::optional<uint16_t> ParsePort(const std::string& s, std::string* error) {
  unsigned long v = 0;
  bool ok = !s.empty() && s.size() <= 5 && s.find_first_not_of("0123456789") == std::string::npos;
  if (ok) {
    v = std::stoul(s);
    ok = v <= 0xFFFF;
  }
  if (!ok) {
    *error = fmt::format("unable to parse \"{}\" as a port: invalid syntax", s);
    return std::nullopt;
  }
  if (v < 1) {
    *error = fmt::format("port \"{}\" must be > 0", s);
    return std::nullopt;
  }
  return static_cast<uint16_t>(v);
}

// --- SPDY (plain or tunneled in WebSocket) -----------------------------------------

class SpdyDataChannel : public DataChannel {
 public:
  explicit SpdyDataChannel(std::shared_ptr<spdy::Stream> s) : s_(std::move(s)) {}
  bool Read(std::string* data) override { return s_->Read(data); }
  bool Write(std::string_view data) override { return s_->Write(data); }
  void CloseWrite() override { s_->Close(); }
  void Abort() override { s_->Reset(spdy::kCancel); }

 private:
  std::shared_ptr<spdy::Stream> s_;
};

// Checks a new stream's headers as the kubelet's httpStreamReceived.
std::string ValidatePortForwardStream(const spdy::Stream& s) {
  std::string port = s.Header("port");
  if (port.empty()) {
    return "\"port\" header is required";
  }
  std::string why;
  if (!ParsePort(port, &why)) {
    return why;
  }
  std::string type = s.Header("streamType");
  if (type.empty()) {
    return "\"streamType\" header is required";
  }
  if (type != "error" && type != "data") {
    return fmt::format("invalid stream type \"{}\"", type);
  }
  return "";
}

class SpdyPortForwardSession : public PortForwardSession {
 public:
  SpdyPortForwardSession(std::unique_ptr<spdy::Session> session, std::string protocol,
                         std::string_view transport, PortForwardOptions opts)
      : session_(std::move(session)),
        protocol_(std::move(protocol)),
        transport_(transport),
        opts_(std::move(opts)) {}

  ~SpdyPortForwardSession() override { session_->Close(); }

  const std::string& protocol() const override { return protocol_; }
  std::string_view transport() const override { return transport_; }

  void Serve(const PortDialer& dial) override {
    struct Pair {
      std::shared_ptr<spdy::Stream> data, error;
      Clock::time_point created;
    };
    std::map<std::string, Pair> pending;
    struct Worker {
      std::thread thread;
      std::shared_ptr<std::atomic<bool>> done;
    };
    std::vector<Worker> workers;
    while (!stop_) {
      std::shared_ptr<spdy::Stream> s = session_->Accept(250);
      auto now = Clock::now();
      for (auto it = pending.begin(); it != pending.end();) {
        if (now - it->second.created <
            std::chrono::milliseconds(opts_.stream_creation_timeout_ms)) {
          ++it;
          continue;
        }
        std::string msg = fmt::format("(conn={}, request={}) timed out waiting for streams",
                                      static_cast<const void*>(session_.get()), it->first);
        log::Warn("port-forward: {}", msg);
        for (auto* st : {&it->second.error, &it->second.data}) {
          if (*st) {
            if (st == &it->second.error) {
              (*st)->Write(msg);
            }
            (*st)->Close();
          }
        }
        it = pending.erase(it);
      }
      // Reap connections that are over, so a long session does not pile up threads.
      for (auto it = workers.begin(); it != workers.end();) {
        if (*it->done) {
          it->thread.join();
          it = workers.erase(it);
        } else {
          ++it;
        }
      }
      if (!s) {
        if (session_->closed()) {
          break;
        }
        continue;
      }
      std::string id = RequestId(*s);
      std::string type = s->Header("streamType");
      auto [it, created] = pending.try_emplace(id, Pair{nullptr, nullptr, now});
      Pair& p = it->second;
      std::shared_ptr<spdy::Stream>& slot = type == "error" ? p.error : p.data;
      if (slot) {
        std::string msg = fmt::format(
            "error processing stream for request {}: {} stream already assigned", id, type);
        log::Warn("port-forward: {}", msg);
        if (p.error) {
          p.error->Write(msg);
        }
        continue;
      }
      slot = s;
      if (p.data && p.error) {
        auto done = std::make_shared<std::atomic<bool>>(false);
        workers.push_back({std::thread([this, p, done, &dial] {
                             Forward(p.data, p.error, dial);
                             *done = true;
                           }),
                           done});
        pending.erase(it);
      }
    }
    stop_ = true;
    session_->Close();
    for (Worker& w : workers) {
      w.thread.join();
    }
  }

  // Serve notices within its poll interval; relays check the flag too.
  void Stop() override { stop_ = true; }

 private:
  // The kubelet pairs streams by `requestID`; for old clients without it,
  // an error stream's id names the pair, and its data stream follows by 2.
  static std::string RequestId(const spdy::Stream& s) {
    std::string id = s.Header("requestID");
    if (!id.empty()) {
      return id;
    }
    return std::to_string(s.Header("streamType") == "data" ? s.id() - 2 : s.id());
  }

  void Forward(const std::shared_ptr<spdy::Stream>& data,
               const std::shared_ptr<spdy::Stream>& error, const PortDialer& dial) {
    std::string why;
    std::optional<uint16_t> port = ParsePort(data->Header("port"), &why);
    int fd = port ? dial(*port, &why) : -1;
    if (fd < 0) {
      std::string msg = ForwardError(opts_, port.value_or(0), why);
      log::Warn("port-forward: {}", msg);
      error->Write(msg);
    } else {
      SpdyDataChannel ch(data);
      Relay(ch, fd, opts_.half_close_grace_ms, stop_);
      ::close(fd);
    }
    error->Close();
    data->Close();
  }

  std::unique_ptr<spdy::Session> session_;
  std::string protocol_;
  std::string_view transport_;
  PortForwardOptions opts_;
  std::atomic<bool> stop_{false};
};

// --- WebSocket channels --------------------------------------------------------------

class WebSocketPortForwardSession;

class WebSocketDataChannel : public DataChannel {
 public:
  WebSocketDataChannel(WebSocketPortForwardSession* session, uint8_t channel)
      : session_(session), channel_(channel) {}
  bool Read(std::string* data) override;
  bool Write(std::string_view data) override;
  // The kubelet sends nothing when the pod is done: the channel just stays quiet.
  void CloseWrite() override {}
  void Abort() override { Close(); }

  // From the session's reader.
  void Push(std::string data) {
    std::unique_lock lock(mu_);
    if (closed_) {
      return;
    }
    bytes_ += data.size();
    queue_.push_back(std::move(data));
    cv_.notify_all();
    cv_.wait(lock, [&] { return bytes_ <= kMaxChannelBuffered || closed_; });
  }
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  WebSocketPortForwardSession* session_;
  uint8_t channel_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  size_t bytes_ = 0;
  bool closed_ = false;
};

class WebSocketPortForwardSession : public PortForwardSession {
 public:
  WebSocketPortForwardSession(std::unique_ptr<websocket::Connection> ws,
                              std::vector<uint16_t> ports, PortForwardOptions opts)
      : ws_(std::move(ws)), ports_(std::move(ports)), opts_(std::move(opts)) {
    binary_ = ws_->protocol() != "v4.base64.channel.k8s.io";
    for (size_t i = 0; i < ports_.size(); ++i) {
      channels_.push_back(
          std::make_unique<WebSocketDataChannel>(this, static_cast<uint8_t>(2 * i)));
    }
  }

  ~WebSocketPortForwardSession() override { End(); }

  const std::string& protocol() const override { return ws_->protocol(); }
  std::string_view transport() const override { return "websocket"; }

  void Serve(const PortDialer& dial) override {
    for (size_t i = 0; i < ports_.size(); ++i) {
      std::string port_bytes = {static_cast<char>(ports_[i] & 0xFF),
                                static_cast<char>(ports_[i] >> 8)};
      Send(static_cast<uint8_t>(2 * i), port_bytes);
      Send(static_cast<uint8_t>(2 * i + 1), port_bytes);
    }
    reader_ = std::thread([this] { ReadLoop(); });
    std::vector<std::thread> workers;
    for (size_t i = 0; i < ports_.size(); ++i) {
      workers.emplace_back([this, i, &dial] {
        std::string why;
        int fd = dial(ports_[i], &why);
        if (fd < 0) {
          std::string msg = ForwardError(opts_, ports_[i], why);
          log::Warn("port-forward: {}", msg);
          Send(static_cast<uint8_t>(2 * i + 1), msg);
          return;
        }
        Relay(*channels_[i], fd, opts_.half_close_grace_ms, stop_);
        ::close(fd);
      });
    }
    for (std::thread& t : workers) {
      t.join();
    }
    End();
  }

  void Stop() override {
    stop_ = true;
    ws_->SendClose(websocket::kCloseNormal);
    for (auto& ch : channels_) {
      ch->Close();
    }
  }

  bool Send(uint8_t channel, std::string_view data) {
    std::string frame;
    if (binary_) {
      frame.push_back(static_cast<char>(channel));
      frame.append(data);
      return ws_->Write(websocket::Opcode::kBinary, frame);
    }
    frame.push_back(static_cast<char>('0' + channel));
    frame += base64::Encode(data);
    return ws_->Write(websocket::Opcode::kText, frame);
  }

 private:
  void ReadLoop() {
    while (std::optional<websocket::Message> m = ws_->Read()) {
      if (m->data.empty()) {
        continue;
      }
      uint8_t channel = static_cast<uint8_t>(m->data[0]);
      std::string payload = m->data.substr(1);
      if (!binary_) {
        channel = static_cast<uint8_t>(channel - '0');
        std::optional<std::string> decoded = base64::Decode(payload);
        if (!decoded) {
          continue;
        }
        payload = std::move(*decoded);
      }
      // Only data channels (even) are readable; error channels are write-only.
      if (channel % 2 == 0 && channel / 2 < channels_.size()) {
        channels_[channel / 2]->Push(std::move(payload));
      }
    }
    for (auto& ch : channels_) {
      ch->Close();
    }
    std::lock_guard lock(mu_);
    reader_done_ = true;
    cv_.notify_all();
  }

  void End() {
    {
      std::lock_guard lock(mu_);
      if (ended_) {
        return;
      }
      ended_ = true;
    }
    ws_->SendClose(websocket::kCloseNormal);
    if (reader_.joinable()) {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(kLingerMs), [&] { return reader_done_; });
    }
    ws_->Shutdown();
    for (auto& ch : channels_) {
      ch->Close();
    }
    if (reader_.joinable()) {
      reader_.join();
    }
  }

  std::unique_ptr<websocket::Connection> ws_;
  std::vector<uint16_t> ports_;
  PortForwardOptions opts_;
  bool binary_ = true;
  std::vector<std::unique_ptr<WebSocketDataChannel>> channels_;
  std::thread reader_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool reader_done_ = false;
  bool ended_ = false;
};

bool WebSocketDataChannel::Read(std::string* data) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
  if (queue_.empty()) {
    return false;
  }
  *data = std::move(queue_.front());
  queue_.pop_front();
  bytes_ -= data->size();
  cv_.notify_all();
  return true;
}

bool WebSocketDataChannel::Write(std::string_view data) {
  return session_->Send(channel_, data);
}

}  // namespace

std::optional<std::vector<uint16_t>> ParsePortForwardPorts(const http::Request& req,
                                                           std::string* error) {
  std::vector<uint16_t> ports;
  auto [begin, end] = req.query.equal_range("ports");
  if (begin == end) {
    *error = "query parameter \"ports\" is required";
    return std::nullopt;
  }
  for (auto it = begin; it != end; ++it) {
    if (it->second.empty()) {
      *error = "query parameter \"ports\" cannot be empty";
      return std::nullopt;
    }
    for (const std::string& p : SplitHeaderList(it->second)) {
      std::optional<uint16_t> port = ParsePort(p, error);
      if (!port) {
        return std::nullopt;
      }
      ports.push_back(*port);
    }
  }
  return ports;
}

std::unique_ptr<PortForwardSession> PortForwardSession::Accept(http::Request& req,
                                                               http::ResponseWriter& w,
                                                               PortForwardOptions opts,
                                                               std::string* error) {
  std::string why;
  auto failed = [&]() -> std::unique_ptr<PortForwardSession> {
    if (error) {
      *error = why;
    }
    return nullptr;
  };
  std::string tunneled = std::string(kSpdyTunnelingPrefix) + std::string(kPortForwardProtocolV1);
  if (websocket::IsWebSocketRequest(req)) {
    std::vector<std::string> offered = websocket::RequestedProtocols(req);
    if (std::find(offered.begin(), offered.end(), tunneled) != offered.end()) {
      std::unique_ptr<websocket::Connection> ws = websocket::Accept(req, w, {tunneled}, &why);
      if (!ws) {
        return failed();
      }
      auto session = std::make_unique<spdy::Session>(WebSocketTransport(std::move(ws)),
                                                     ValidatePortForwardStream);
      session->Start();
      return std::make_unique<SpdyPortForwardSession>(std::move(session),
                                                      std::string(kPortForwardProtocolV1),
                                                      "websocket+spdy", std::move(opts));
    }
    std::optional<std::vector<uint16_t>> ports = ParsePortForwardPorts(req, &why);
    if (!ports) {
      w.Send(400, {{"Content-Type", "text/plain; charset=utf-8"}}, why + "\n");
      return failed();
    }
    std::unique_ptr<websocket::Connection> ws =
        websocket::Accept(req, w, {"v4.channel.k8s.io", "v4.base64.channel.k8s.io", ""}, &why);
    if (!ws) {
      return failed();
    }
    return std::make_unique<WebSocketPortForwardSession>(std::move(ws), std::move(*ports),
                                                         std::move(opts));
  }
  std::optional<std::string> protocol =
      NegotiateSpdyUpgrade(req, w, {std::string(kPortForwardProtocolV1)}, &why);
  if (!protocol) {
    return failed();
  }
  std::unique_ptr<http::RawStream> raw = w.Upgrade(101, SpdyUpgradeHeaders(*protocol));
  auto session = std::make_unique<spdy::Session>(RawStreamTransport(std::move(raw)),
                                                 ValidatePortForwardStream);
  session->Start();
  return std::make_unique<SpdyPortForwardSession>(std::move(session), *protocol, "spdy",
                                                  std::move(opts));
}

}  // namespace minik::streams
