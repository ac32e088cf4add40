#include "kubelet/streams/remotecommand.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "common/base64.h"
#include "common/log.h"
#include "kubelet/streams/spdy.h"
#include "kubelet/streams/stream_util.h"
#include "kubelet/streams/websocket.h"

namespace minik::streams {

namespace {

constexpr uint8_t kStdinChannel = 0;
constexpr uint8_t kStdoutChannel = 1;
constexpr uint8_t kStderrChannel = 2;
constexpr uint8_t kErrorChannel = 3;
constexpr uint8_t kResizeChannel = 4;
// v5: a message on this channel says the client closed the stream named by its payload.
constexpr uint8_t kCloseChannel = 255;

constexpr std::string_view kBase64V1 = "base64.channel.k8s.io";
constexpr std::string_view kBase64V4 = "v4.base64.channel.k8s.io";

// How long the kubelet waits for a SPDY client to open its streams.
constexpr int kStreamCreationTimeoutMs = 30'000;
// How long Finish waits for the client to hang up after the close.
constexpr int kLingerMs = 5'000;
// Stdin a client may send ahead of the reader before we stop reading the connection.
constexpr size_t kMaxStdinBuffered = 4 << 20;

std::string NonZeroExitMessage(int exit_code, std::string_view message) {
  return "command terminated with non-zero exit code: " +
         (message.empty() ? fmt::format("error executing command, exit code {}", exit_code)
                          : std::string(message));
}

// Splits the JSON objects (TerminalSize) that clients write back to back on the
// resize stream, and decodes each as Go's encoding/json would (field names
// matched case-insensitively).
class ResizeDecoder {
 public:
  // Appends bytes; returns the sizes completed by them.
  std::vector<TerminalSize> Feed(std::string_view bytes) {
    std::vector<TerminalSize> out;
    buf_.append(bytes);
    size_t start = 0;
    int depth = 0;
    bool in_string = false, escaped = false;
    size_t object_start = std::string::npos;
    for (size_t i = 0; i < buf_.size(); ++i) {
      char c = buf_[i];
      if (in_string) {
        if (escaped) {
          escaped = false;
        } else if (c == '\\') {
          escaped = true;
        } else if (c == '"') {
          in_string = false;
        }
        continue;
      }
      if (c == '"') {
        in_string = true;
      } else if (c == '{') {
        if (depth++ == 0) {
          object_start = i;
        }
      } else if (c == '}' && depth > 0 && --depth == 0) {
        Decode(std::string_view(buf_).substr(object_start, i + 1 - object_start), &out);
        start = i + 1;
      } else if (depth == 0 && c != ' ' && c != '\n' && c != '\r' && c != '\t') {
        // Garbage between objects: skip it, as a new decoder would after an error.
        start = i + 1;
      }
    }
    buf_.erase(0, depth > 0 ? object_start : start);
    if (buf_.size() > 64 << 10) {
      buf_.clear();
    }
    return out;
  }

 private:
  static void Decode(std::string_view text, std::vector<TerminalSize>* out) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) {
      return;
    }
    TerminalSize size;
    for (auto& [key, value] : j.items()) {
      std::string k = key;
      std::transform(k.begin(), k.end(), k.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      if (!value.is_number_unsigned() || value.get<uint64_t>() > 0xFFFF) {
        continue;
      }
      if (k == "width") {
        size.width = value.get<uint16_t>();
      } else if (k == "height") {
        size.height = value.get<uint16_t>();
      }
    }
    out->push_back(size);
  }

  std::string buf_;
};

// --- WebSocket ----------------------------------------------------------------

class WebSocketExecSession : public ExecSession {
 public:
  WebSocketExecSession(std::unique_ptr<websocket::Connection> ws, const ExecOptions& opts)
      : ws_(std::move(ws)), opts_(opts) {
    const std::string& p = ws_->protocol();
    binary_ = p != kBase64V1 && p != kBase64V4;
    json_status_ = p == kStreamProtocolV5 || p == kStreamProtocolV4 || p == kBase64V4;
    close_signal_ = p == kStreamProtocolV5;
  }

  ~WebSocketExecSession() override { End(); }

  void Start() {
    // The kubelet sends an empty message on the lowest writable channel to
    // tell the client the connection is established.
    uint8_t first = opts_.want_stdout   ? kStdoutChannel
                    : opts_.want_stderr ? kStderrChannel
                                        : kErrorChannel;
    Send(first, {});
    reader_ = std::thread([this] { ReadLoop(); });
  }

  const std::string& protocol() const override { return ws_->protocol(); }
  std::string_view transport() const override { return "websocket"; }
  const ExecOptions& options() const override { return opts_; }

  bool ReadStdin(std::string* data) override {
    if (!opts_.want_stdin) {
      return false;
    }
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !stdin_.empty() || stdin_closed_; });
    if (stdin_.empty()) {
      return false;
    }
    *data = std::move(stdin_.front());
    stdin_.pop_front();
    stdin_bytes_ -= data->size();
    cv_.notify_all();
    return true;
  }

  bool WriteStdout(std::string_view data) override {
    return !opts_.want_stdout || Send(kStdoutChannel, data);
  }
  bool WriteStderr(std::string_view data) override {
    return !opts_.want_stderr || Send(kStderrChannel, data);
  }

  bool NextResize(TerminalSize* size) override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !resizes_.empty() || reader_done_ || ending_; });
    if (resizes_.empty()) {
      return false;
    }
    *size = resizes_.front();
    resizes_.pop_front();
    return true;
  }

  bool client_gone() const override {
    std::lock_guard lock(mu_);
    return reader_done_ && !ending_;
  }

  void Finish(int exit_code, std::string_view message) override {
    if (finished_.exchange(true)) {
      return;
    }
    if (json_status_) {
      Send(kErrorChannel,
           exit_code == 0 ? SuccessStatusJson() : ExitCodeStatusJson(exit_code, message));
    } else if (exit_code != 0) {
      // Before v4 the error channel carried only a failure's message.
      Send(kErrorChannel, NonZeroExitMessage(exit_code, message));
    }
    End();
  }

  void FinishWithError(std::string_view message) override {
    if (finished_.exchange(true)) {
      return;
    }
    Send(kErrorChannel, json_status_ ? InternalErrorStatusJson(message)
                                     : "Internal error occurred: " + std::string(message));
    End();
  }

 private:
  bool Send(uint8_t channel, std::string_view data) {
    std::string frame;
    if (binary_) {
      frame.reserve(data.size() + 1);
      frame.push_back(static_cast<char>(channel));
      frame.append(data);
      return ws_->Write(websocket::Opcode::kBinary, frame);
    }
    frame.push_back(static_cast<char>('0' + channel));
    frame += base64::Encode(data);
    return ws_->Write(websocket::Opcode::kText, frame);
  }

  void ReadLoop() {
    ResizeDecoder resize;
    while (std::optional<websocket::Message> m = ws_->Read()) {
      // Like the kubelet, take text and binary messages alike.
      if (m->data.empty()) {
        continue;
      }
      uint8_t channel = static_cast<uint8_t>(m->data[0]);
      std::string payload = m->data.substr(1);
      if (!binary_) {
        channel = static_cast<uint8_t>(channel - '0');
        std::optional<std::string> decoded = base64::Decode(payload);
        if (!decoded) {
          log::Debug("exec: invalid base64 on channel {}", channel);
          continue;
        }
        payload = std::move(*decoded);
      }
      if (close_signal_ && channel == kCloseChannel) {
        if (payload.size() == 1 && static_cast<uint8_t>(payload[0]) == kStdinChannel) {
          std::lock_guard lock(mu_);
          stdin_closed_ = true;
          cv_.notify_all();
        }
        continue;
      }
      if (channel == kStdinChannel && opts_.want_stdin) {
        std::unique_lock lock(mu_);
        if (stdin_closed_) {
          continue;
        }
        stdin_bytes_ += payload.size();
        stdin_.push_back(std::move(payload));
        cv_.notify_all();
        cv_.wait(lock, [&] { return stdin_bytes_ <= kMaxStdinBuffered || ending_; });
      } else if (channel == kResizeChannel) {
        std::vector<TerminalSize> sizes = resize.Feed(payload);
        std::lock_guard lock(mu_);
        resizes_.insert(resizes_.end(), sizes.begin(), sizes.end());
        cv_.notify_all();
      }
    }
    std::lock_guard lock(mu_);
    reader_done_ = true;
    stdin_closed_ = true;
    cv_.notify_all();
  }

  // Closes the WebSocket with 1000, so kubectl reads EOF rather than an
  // error, and waits for the client's answering close before hanging up.
  void End() {
    {
      std::lock_guard lock(mu_);
      if (ending_) {
        return;
      }
      ending_ = true;
      stdin_closed_ = true;
      cv_.notify_all();
    }
    ws_->SendClose(websocket::kCloseNormal);
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(kLingerMs), [&] { return reader_done_; });
    }
    ws_->Shutdown();
    if (reader_.joinable()) {
      reader_.join();
    }
  }

  std::unique_ptr<websocket::Connection> ws_;
  ExecOptions opts_;
  bool binary_ = true;
  bool json_status_ = true;
  bool close_signal_ = false;
  std::thread reader_;
  std::atomic<bool> finished_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> stdin_;
  size_t stdin_bytes_ = 0;
  bool stdin_closed_ = false;
  std::deque<TerminalSize> resizes_;
  bool reader_done_ = false;
  bool ending_ = false;
};

// --- SPDY ---------------------------------------------------------------------

int ProtocolVersion(std::string_view p) {
  if (p == kStreamProtocolV5) {
    return 5;
  }
  if (p == kStreamProtocolV4) {
    return 4;
  }
  if (p == kStreamProtocolV3) {
    return 3;
  }
  if (p == kStreamProtocolV2) {
    return 2;
  }
  return 1;
}

class SpdyExecSession : public ExecSession {
 public:
  SpdyExecSession(std::unique_ptr<spdy::Session> session, std::string protocol,
                  const ExecOptions& opts)
      : session_(std::move(session)), protocol_(std::move(protocol)), opts_(opts) {}

  ~SpdyExecSession() override { End(); }

  // Waits for the streams the client must open, as the kubelet's
  // waitForStreams: error, plus one per requested stream, plus resize for a
  // tty from v3 on. Streams of unknown types are accepted but not counted.
  bool WaitForStreams(std::string* error) {
    int version = ProtocolVersion(protocol_);
    int expected = 1 + opts_.want_stdin + opts_.want_stdout + opts_.want_stderr +
                   (opts_.tty && version >= 3 ? 1 : 0);
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kStreamCreationTimeoutMs);
    int received = 0;
    while (received < expected) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      std::shared_ptr<spdy::Stream> s =
          left > 0 ? session_->Accept(static_cast<int>(left)) : nullptr;
      if (!s) {
        *error = session_->closed() ? "connection closed before the client created its streams"
                                    : "timed out waiting for client to create streams";
        return false;
      }
      std::string type = s->Header("streamType");
      if (type == "error") {
        error_ = s;
      } else if (type == "stdin") {
        stdin_ = s;
      } else if (type == "stdout") {
        stdout_ = s;
      } else if (type == "stderr") {
        stderr_ = s;
      } else if (type == "resize" && version >= 3) {
        resize_ = s;
      } else {
        log::Debug("exec: unexpected stream type {:?}", type);
        continue;
      }
      ++received;
    }
    return true;
  }

  const std::string& protocol() const override { return protocol_; }
  std::string_view transport() const override { return "spdy"; }
  const ExecOptions& options() const override { return opts_; }

  bool ReadStdin(std::string* data) override {
    if (!stdin_ || finished_) {
      return false;
    }
    return stdin_->Read(data);
  }

  bool WriteStdout(std::string_view data) override {
    return !opts_.want_stdout || !stdout_ || stdout_->Write(data);
  }
  bool WriteStderr(std::string_view data) override {
    return !opts_.want_stderr || !stderr_ || stderr_->Write(data);
  }

  bool NextResize(TerminalSize* size) override {
    std::lock_guard lock(resize_mu_);
    while (pending_resizes_.empty()) {
      std::string chunk;
      if (!resize_ || !resize_->Read(&chunk)) {
        return false;
      }
      std::vector<TerminalSize> sizes = resize_decoder_.Feed(chunk);
      pending_resizes_.insert(pending_resizes_.end(), sizes.begin(), sizes.end());
    }
    *size = pending_resizes_.front();
    pending_resizes_.pop_front();
    return true;
  }

  bool client_gone() const override { return !finished_ && session_->closed(); }

  void Finish(int exit_code, std::string_view message) override {
    if (finished_.exchange(true)) {
      return;
    }
    if (error_) {
      if (ProtocolVersion(protocol_) >= 4) {
        error_->Write(exit_code == 0 ? SuccessStatusJson()
                                     : ExitCodeStatusJson(exit_code, message));
      } else if (exit_code != 0) {
        error_->Write(NonZeroExitMessage(exit_code, message));
      }
    }
    End();
  }

  void FinishWithError(std::string_view message) override {
    if (finished_.exchange(true)) {
      return;
    }
    if (error_) {
      error_->Write(ProtocolVersion(protocol_) >= 4
                        ? InternalErrorStatusJson(message)
                        : "Internal error occurred: " + std::string(message));
    }
    End();
  }

 private:
  // Half-closes what we wrote (the client reads to EOF on stdout, stderr and
  // error), then GOAWAY and a bounded wait for the client to hang up.
  void End() {
    finished_ = true;
    for (auto* s : {&stdout_, &stderr_, &error_}) {
      if (*s) {
        (*s)->Close();
      }
    }
    session_->Close();
  }

  std::unique_ptr<spdy::Session> session_;
  std::string protocol_;
  ExecOptions opts_;
  std::shared_ptr<spdy::Stream> error_, stdin_, stdout_, stderr_, resize_;
  std::atomic<bool> finished_{false};
  std::mutex resize_mu_;
  ResizeDecoder resize_decoder_;
  std::deque<TerminalSize> pending_resizes_;
};

}  // namespace

// --- Status -------------------------------------------------------------------

std::string SuccessStatusJson() {
  return R"({"metadata":{},"status":"Success"})";
}

std::string ExitCodeStatusJson(int exit_code, std::string_view message) {
  return fmt::format(
      R"({{"metadata":{{}},"status":"Failure","message":{},"reason":"NonZeroExitCode",)"
      R"("details":{{"causes":[{{"reason":"ExitCode","message":"{}"}}]}}}})",
      GoJsonString(NonZeroExitMessage(exit_code, message)), exit_code);
}

std::string InternalErrorStatusJson(std::string_view message) {
  return fmt::format(
      R"({{"metadata":{{}},"status":"Failure","message":{},"reason":"InternalError",)"
      R"("details":{{"causes":[{{"message":{}}}]}},"code":500}})",
      GoJsonString("Internal error occurred: " + std::string(message)), GoJsonString(message));
}

std::string ExitCodeMessage(const std::vector<std::string>& command, int exit_code) {
  std::string joined;
  for (size_t i = 0; i < command.size(); ++i) {
    joined += (i ? " " : "") + command[i];
  }
  return fmt::format("error executing command [{}], exit code {}", joined, exit_code);
}

std::optional<ExecOptions> ParseExecOptions(const http::Request& req, std::string* error) {
  auto flag = [&](const char* name) {
    std::string v = req.Param(name);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    return v == "1" || v == "true";
  };
  ExecOptions o;
  o.tty = flag("tty");
  o.want_stdin = flag("stdin");
  o.want_stdout = flag("stdout");
  o.want_stderr = flag("stderr") && !o.tty;
  if (!o.want_stdin && !o.want_stdout && !o.want_stderr) {
    if (error) {
      *error = "you must specify at least 1 of stdin, stdout, stderr";
    }
    return std::nullopt;
  }
  return o;
}

std::unique_ptr<ExecSession> ExecSession::Accept(http::Request& req, http::ResponseWriter& w,
                                                 const ExecOptions& opts, std::string* error) {
  std::string why;
  if (websocket::IsWebSocketRequest(req)) {
    std::vector<std::string> supported = {
        std::string(kStreamProtocolV5), std::string(kStreamProtocolV4), std::string(kBase64V4),
        std::string(kStreamProtocolV1), std::string(kBase64V1),         ""};
    std::unique_ptr<websocket::Connection> ws = websocket::Accept(req, w, supported, &why);
    if (!ws) {
      if (error) {
        *error = why;
      }
      return nullptr;
    }
    auto s = std::make_unique<WebSocketExecSession>(std::move(ws), opts);
    s->Start();
    return s;
  }

  std::vector<std::string> supported = {
      std::string(kStreamProtocolV5), std::string(kStreamProtocolV4),
      std::string(kStreamProtocolV3), std::string(kStreamProtocolV2),
      std::string(kStreamProtocolV1)};
  std::optional<std::string> protocol = NegotiateSpdyUpgrade(req, w, supported, &why);
  if (!protocol) {
    if (error) {
      *error = why;
    }
    return nullptr;
  }
  std::unique_ptr<http::RawStream> raw = w.Upgrade(101, SpdyUpgradeHeaders(*protocol));
  auto session = std::make_unique<spdy::Session>(RawStreamTransport(std::move(raw)),
                                                 [](const spdy::Stream&) { return std::string(); });
  session->Start();
  auto s = std::make_unique<SpdyExecSession>(std::move(session), *protocol, opts);
  if (!s->WaitForStreams(&why)) {
    log::Warn("exec: {}", why);
    if (error) {
      *error = why;
    }
    return nullptr;
  }
  return s;
}

}  // namespace minik::streams
