// The Kubernetes layers (exec/attach and port-forward) over in-memory
// connections, with hand-built WebSocket and SPDY client frames, and a real
// TCP echo server on loopback behind the port-forward dialer.

#include "kubelet/streams/remotecommand.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <thread>

#include "common/base64.h"
#include "fake_stream.h"
#include "kubelet/streams/portforward.h"
#include "kubelet/streams/spdy.h"
#include "kubelet/streams/websocket.h"

using namespace minik;
using namespace minik::streams;
using minik::testing::FakeResponseWriter;
using minik::testing::PipeStream;
namespace ws = minik::streams::websocket;

namespace {

const std::array<uint8_t, 4> kMask = {1, 2, 3, 4};

http::Request WebSocketRequest(const std::string& protocols) {
  http::Request req;
  req.method = "GET";
  req.headers = {{"Upgrade", "websocket"},
                 {"Connection", "Upgrade"},
                 {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                 {"Sec-WebSocket-Version", "13"},
                 {"Sec-WebSocket-Protocol", protocols}};
  return req;
}

http::Request SpdyRequest(const std::string& protocols) {
  http::Request req;
  req.method = "POST";
  req.headers = {{"Upgrade", "SPDY/3.1"}, {"Connection", "Upgrade"}};
  if (!protocols.empty()) {
    req.headers["X-Stream-Protocol-Version"] = protocols;
  }
  return req;
}

// A WebSocket client end over the fake writer's pipe.
struct WsClient {
  PipeStream* conn;
  ws::FrameParser parser{1 << 24};

  void Send(ws::Opcode op, std::string_view payload) {
    conn->Write(ws::EncodeFrame(op, payload, true, &kMask));
  }
  void SendChannel(uint8_t channel, std::string_view data) {
    Send(ws::Opcode::kBinary, std::string(1, static_cast<char>(channel)) + std::string(data));
  }
  ws::Frame Next() {
    for (;;) {
      ws::Frame f;
      ws::FrameParser::Result r = parser.Next(&f);
      if (r == ws::FrameParser::Result::kFrame) {
        return f;
      }
      REQUIRE(r == ws::FrameParser::Result::kNeedMore);
      REQUIRE(conn->WaitReadable(5000));
      char buf[65536];
      size_t n = conn->Read(buf, sizeof buf);
      REQUIRE(n > 0);
      parser.Feed(std::string_view(buf, n));
    }
  }
};

// A SPDY client end over the fake writer's pipe (or inside WebSocket messages).
struct SpdyClient {
  explicit SpdyClient(PipeStream* c, WsClient* t = nullptr) : conn(c), tunnel(t) {}
  PipeStream* conn;
  WsClient* tunnel;
  spdy::FrameWriter writer;
  spdy::FrameReader reader;

  void Send(const spdy::Frame& f) {
    std::string bytes = writer.Encode(f);
    if (tunnel) {
      tunnel->Send(ws::Opcode::kBinary, bytes);
    } else {
      conn->Write(bytes);
    }
  }
  void Open(uint32_t id, spdy::HeaderBlock h) {
    spdy::Frame f;
    f.type = spdy::FrameType::kSynStream;
    f.stream_id = id;
    f.headers = std::move(h);
    Send(f);
  }
  void Data(uint32_t id, std::string data, bool fin = false) {
    spdy::Frame f;
    f.type = spdy::FrameType::kData;
    f.stream_id = id;
    f.data = std::move(data);
    f.flags = fin ? spdy::kFlagFin : 0;
    Send(f);
  }
  // The next frame, skipping window updates; false on EOF or timeout.
  bool Next(spdy::Frame* f, int timeout_ms = 5000) {
    for (;;) {
      spdy::FrameReader::Result r = reader.Next(f);
      if (r == spdy::FrameReader::Result::kFrame) {
        if (f->type == spdy::FrameType::kWindowUpdate) {
          continue;
        }
        return true;
      }
      REQUIRE(r == spdy::FrameReader::Result::kNeedMore);
      if (tunnel) {
        ws::Frame m = tunnel->Next();
        if (m.opcode == ws::Opcode::kClose) {
          return false;
        }
        REQUIRE(m.opcode == ws::Opcode::kBinary);
        reader.Feed(m.payload);
        continue;
      }
      if (!conn->WaitReadable(timeout_ms)) {
        return false;
      }
      char buf[65536];
      size_t n = conn->Read(buf, sizeof buf);
      if (n == 0) {
        return false;
      }
      reader.Feed(std::string_view(buf, n));
    }
  }
};

// A TCP echo server on 127.0.0.1, one thread per connection.
class EchoServer {
 public:
  EchoServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    accept_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) {
          return;
        }
        conns_.emplace_back([c] {
          char buf[4096];
          ssize_t n;
          while ((n = ::read(c, buf, sizeof buf)) > 0) {
            ::send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
          }
          ::close(c);
        });
      }
    });
  }
  ~EchoServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    accept_.join();
    for (std::thread& t : conns_) {
      t.join();
    }
  }
  uint16_t port() const { return port_; }

  int Dial() const {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(s);
      return -1;
    }
    return s;
  }

 private:
  int fd_;
  uint16_t port_ = 0;
  std::thread accept_;
  std::vector<std::thread> conns_;
};

// Port 80 is the echo server; anything else is refused.
PortDialer EchoDialer(const EchoServer& echo) {
  return [&echo](uint16_t port, std::string* error) {
    if (port != 80) {
      *error = "dial tcp4 127.0.0.1:" + std::to_string(port) + ": connect: connection refused";
      return -1;
    }
    return echo.Dial();
  };
}

}  // namespace

TEST_CASE("Exec: Status JSON is byte for byte the kubelet's", "[exec]") {
  CHECK(SuccessStatusJson() == R"({"metadata":{},"status":"Success"})");
  CHECK(ExitCodeStatusJson(3, ExitCodeMessage({"sh", "-c", "exit 3"}, 3)) ==
        R"({"metadata":{},"status":"Failure","message":"command terminated with non-zero exit )"
        R"(code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode",)"
        R"("details":{"causes":[{"reason":"ExitCode","message":"3"}]}})");
  CHECK(InternalErrorStatusJson("container \"x\" <not> found") ==
        R"({"metadata":{},"status":"Failure","message":"Internal error occurred: container )"
        R"(\"x\" \u003cnot\u003e found","reason":"InternalError","details":{"causes":[{"message":)"
        R"("container \"x\" \u003cnot\u003e found"}]},"code":500})");
}

TEST_CASE("Exec: options come from the query as the kubelet reads them", "[exec]") {
  http::Request req;
  req.query = http::ParseQuery("stdin=true&stdout=1&stderr=true&tty=true&command=sh");
  std::string error;
  std::optional<ExecOptions> o = ParseExecOptions(req, &error);
  REQUIRE(o);
  CHECK(o->want_stdin);
  CHECK(o->want_stdout);
  CHECK_FALSE(o->want_stderr);  // dropped with a tty
  CHECK(o->tty);
  req.query = http::ParseQuery("command=ls&stdout=false");
  CHECK_FALSE(ParseExecOptions(req, &error));
  CHECK(error == "you must specify at least 1 of stdin, stdout, stderr");
}

TEST_CASE("Exec over WebSocket v5: stdin, its close signal, resize, output, status", "[exec]") {
  FakeResponseWriter w;
  http::Request req = WebSocketRequest("v5.channel.k8s.io");
  ExecOptions opts{true, true, true, true};
  std::unique_ptr<ExecSession> s = ExecSession::Accept(req, w, opts);
  REQUIRE(s);
  CHECK(w.status == 101);
  CHECK(w.headers["Sec-WebSocket-Protocol"] == "v5.channel.k8s.io");
  CHECK(s->protocol() == "v5.channel.k8s.io");
  WsClient c{w.client.get()};
  // The empty "connection established" message on the lowest writable channel.
  ws::Frame first = c.Next();
  CHECK(first.opcode == ws::Opcode::kBinary);
  CHECK(first.payload == std::string("\x01", 1));

  c.SendChannel(0, "hello\n");
  c.SendChannel(4, R"({"Width":80,"Height":24})");
  c.SendChannel(4, "{\"Width\":100,");
  c.SendChannel(4, "\"Height\":30}\n");
  c.Send(ws::Opcode::kPing, "hb");
  c.SendChannel(255, std::string(1, '\0'));
  std::string data;
  REQUIRE(s->ReadStdin(&data));
  CHECK(data == "hello\n");
  CHECK_FALSE(s->ReadStdin(&data));
  TerminalSize size;
  REQUIRE(s->NextResize(&size));
  CHECK(size.width == 80);
  CHECK(size.height == 24);
  REQUIRE(s->NextResize(&size));
  CHECK(size.width == 100);
  CHECK(size.height == 30);

  REQUIRE(s->WriteStdout("out"));
  REQUIRE(s->WriteStderr("err"));
  ws::Frame pong = c.Next();
  CHECK(pong.opcode == ws::Opcode::kPong);
  CHECK(c.Next().payload == "\x01out");
  CHECK(c.Next().payload ==
        "\x02"
        "err");

  std::thread finisher([&] { s->Finish(3, ExitCodeMessage({"sh", "-c", "exit 3"}, 3)); });
  ws::Frame status = c.Next();
  CHECK(status.payload ==
        "\x03" + ExitCodeStatusJson(3, ExitCodeMessage({"sh", "-c", "exit 3"}, 3)));
  ws::Frame close = c.Next();
  CHECK(close.opcode == ws::Opcode::kClose);
  CHECK(close.payload == std::string("\x03\xe8", 2));
  c.Send(ws::Opcode::kClose, std::string("\x03\xe8", 2));
  finisher.join();
  CHECK_FALSE(s->client_gone());
}

TEST_CASE("Exec over WebSocket: base64 protocol and the client going away", "[exec]") {
  FakeResponseWriter w;
  http::Request req = WebSocketRequest("base64.channel.k8s.io");
  ExecOptions opts{true, true, false, false};
  std::unique_ptr<ExecSession> s = ExecSession::Accept(req, w, opts);
  REQUIRE(s);
  WsClient c{w.client.get()};
  ws::Frame first = c.Next();
  CHECK(first.opcode == ws::Opcode::kText);
  CHECK(first.payload == "1");
  c.Send(ws::Opcode::kText, "0" + base64::Encode("hi there"));
  std::string data;
  REQUIRE(s->ReadStdin(&data));
  CHECK(data == "hi there");
  REQUIRE(s->WriteStdout("back"));
  CHECK(c.Next().payload == "1" + base64::Encode("back"));
  // stderr was not asked for: writes are dropped, as on an ignored channel.
  CHECK(s->WriteStderr("dropped"));
  // The client leaves without a close: stdin ends and the session notices.
  c.conn->Close();
  CHECK_FALSE(s->ReadStdin(&data));
  CHECK(s->client_gone());
  CHECK_FALSE(s->WriteStdout("nobody"));
  s->Finish(1);
}

TEST_CASE("Exec over SPDY: streams by type, stdin FIN, status, half-closes, GOAWAY", "[exec]") {
  FakeResponseWriter w;
  http::Request req = SpdyRequest("v5.channel.k8s.io, v4.channel.k8s.io, channel.k8s.io");
  ExecOptions opts{true, true, true, false};
  SpdyClient c{w.client.get()};
  std::unique_ptr<ExecSession> s;
  std::thread acceptor([&] { s = ExecSession::Accept(req, w, opts); });
  // The client opens its streams once it has the 101, as spdystream does.
  while (w.status == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  c.Open(1, {{"streamtype", "error"}});
  c.Open(3, {{"streamtype", "stdin"}});
  c.Open(5, {{"streamtype", "stdout"}});
  c.Open(7, {{"streamtype", "stderr"}});
  acceptor.join();
  REQUIRE(s);
  CHECK(w.status == 101);
  CHECK(w.headers["Upgrade"] == "SPDY/3.1");
  CHECK(w.headers["X-Stream-Protocol-Version"] == "v5.channel.k8s.io");
  CHECK(s->transport() == "spdy");
  for (int i = 0; i < 4; ++i) {
    spdy::Frame f;
    REQUIRE(c.Next(&f));
    CHECK(f.type == spdy::FrameType::kSynReply);
  }
  c.Data(3, "input", true);
  std::string data;
  REQUIRE(s->ReadStdin(&data));
  CHECK(data == "input");
  CHECK_FALSE(s->ReadStdin(&data));
  REQUIRE(s->WriteStdout("output"));
  spdy::Frame f;
  REQUIRE(c.Next(&f));
  CHECK(f.stream_id == 5);
  CHECK(f.data == "output");

  std::thread finisher([&] { s->Finish(0); });
  REQUIRE(c.Next(&f));
  CHECK(f.stream_id == 1);
  CHECK(f.data == SuccessStatusJson());
  std::map<uint32_t, bool> fins;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(c.Next(&f));
    CHECK(f.type == spdy::FrameType::kData);
    CHECK(f.fin());
    fins[f.stream_id] = true;
  }
  CHECK(fins == std::map<uint32_t, bool>{{1, true}, {5, true}, {7, true}});
  REQUIRE(c.Next(&f));
  CHECK(f.type == spdy::FrameType::kGoAway);
  CHECK(f.stream_id == 7);
  c.conn->Close();
  finisher.join();
}

TEST_CASE("Exec over SPDY: protocol negotiation failures", "[exec]") {
  ExecOptions opts{false, true, false, false};
  {
    FakeResponseWriter w;
    http::Request req = SpdyRequest("");
    std::string error;
    CHECK_FALSE(ExecSession::Accept(req, w, opts, &error));
    CHECK(w.status == 400);
    CHECK(error == "unable to upgrade: X-Stream-Protocol-Version is required");
  }
  {
    FakeResponseWriter w;
    http::Request req = SpdyRequest("v9.channel.k8s.io");
    CHECK_FALSE(ExecSession::Accept(req, w, opts));
    CHECK(w.status == 403);
    CHECK_THAT(w.headers["X-Accepted-Stream-Protocol-Versions"],
               Catch::Contains("v4.channel.k8s.io"));
  }
  {
    FakeResponseWriter w;
    http::Request req = SpdyRequest("v4.channel.k8s.io");
    req.headers["Upgrade"] = "h2c";
    CHECK_FALSE(ExecSession::Accept(req, w, opts));
    CHECK(w.status == 400);
    CHECK_THAT(w.body, Catch::Contains("missing upgrade headers"));
  }
}

TEST_CASE("Port-forward over SPDY: pairs by requestID, relayed, errors reported", "[portforward]") {
  EchoServer echo;
  FakeResponseWriter w;
  http::Request req = SpdyRequest("portforward.k8s.io");
  PortForwardOptions opts;
  opts.pod_name = "web";
  opts.pod_uid = "1234";
  std::unique_ptr<PortForwardSession> pf = PortForwardSession::Accept(req, w, opts);
  REQUIRE(pf);
  CHECK(w.headers["X-Stream-Protocol-Version"] == "portforward.k8s.io");
  std::thread server([&] { pf->Serve(EchoDialer(echo)); });
  SpdyClient c{w.client.get()};

  // Two connections at once, their streams interleaved, as kubectl opens
  // them: error stream first (closed at once: the client never writes on
  // it), then data.
  c.Open(1, {{"streamtype", "error"}, {"port", "80"}, {"requestid", "0"}});
  c.Data(1, "", true);
  c.Open(3, {{"streamtype", "error"}, {"port", "80"}, {"requestid", "1"}});
  c.Data(3, "", true);
  c.Open(5, {{"streamtype", "data"}, {"port", "80"}, {"requestid", "1"}});
  c.Open(7, {{"streamtype", "data"}, {"port", "80"}, {"requestid", "0"}});
  // A refused port, and a stream the kubelet would reject.
  c.Open(9, {{"streamtype", "error"}, {"port", "81"}, {"requestid", "2"}});
  c.Open(11, {{"streamtype", "data"}, {"port", "81"}, {"requestid", "2"}});
  c.Open(13, {{"streamtype", "data"}, {"port", "0"}});
  c.Data(5, "to one");
  c.Data(7, "to zero");

  std::map<uint32_t, std::string> data;
  std::map<uint32_t, bool> fin;
  bool rejected = false;
  spdy::Frame f;
  auto done = [&] {
    return data[5] == "to one" && data[7] == "to zero" && fin[9] && fin[11] && rejected;
  };
  while (!done()) {
    REQUIRE(c.Next(&f));
    if (f.type == spdy::FrameType::kData) {
      data[f.stream_id] += f.data;
      fin[f.stream_id] = fin[f.stream_id] || f.fin();
    } else if (f.type == spdy::FrameType::kRstStream) {
      CHECK(f.stream_id == 13);
      rejected = true;
    }
  }
  CHECK(data[9] ==
        "error forwarding port 81 to pod web, uid 1234: dial tcp4 127.0.0.1:81: "
        "connect: connection refused");
  CHECK_FALSE(fin[5]);
  CHECK_FALSE(fin[1]);

  // The client finishes sending on connection 0: the echo server sees EOF and
  // closes, and both of the pair's streams are finished with nothing on error.
  c.Data(7, "", true);
  while (!(fin[7] && fin[1])) {
    REQUIRE(c.Next(&f));
    if (f.type == spdy::FrameType::kData) {
      data[f.stream_id] += f.data;
      fin[f.stream_id] = fin[f.stream_id] || f.fin();
    }
  }
  CHECK(data[1].empty());
  CHECK(data[7] == "to zero");

  // Connection 1 is still open.
  c.Data(5, " again");
  while (data[5] != "to one again") {
    REQUIRE(c.Next(&f));
    if (f.type == spdy::FrameType::kData) {
      data[f.stream_id] += f.data;
    }
  }
  pf->Stop();
  REQUIRE(c.Next(&f));
  while (f.type != spdy::FrameType::kGoAway) {
    REQUIRE(c.Next(&f));
  }
  c.conn->Close();
  server.join();
}

TEST_CASE("Port-forward: SPDY tunneled in WebSocket binary messages", "[portforward]") {
  EchoServer echo;
  FakeResponseWriter w;
  http::Request req = WebSocketRequest("SPDY/3.1+portforward.k8s.io");
  std::unique_ptr<PortForwardSession> pf = PortForwardSession::Accept(req, w, {});
  REQUIRE(pf);
  CHECK(w.status == 101);
  CHECK(w.headers["Sec-WebSocket-Protocol"] == "SPDY/3.1+portforward.k8s.io");
  CHECK(pf->transport() == "websocket+spdy");
  std::thread server([&] { pf->Serve(EchoDialer(echo)); });
  WsClient tunnel{w.client.get()};
  SpdyClient c{w.client.get(), &tunnel};
  c.Open(1, {{"streamtype", "error"}, {"port", "80"}, {"requestid", "0"}});
  c.Data(1, "", true);
  c.Open(3, {{"streamtype", "data"}, {"port", "80"}, {"requestid", "0"}});
  std::string big(200 << 10, 'z');
  c.Data(3, big);
  std::string got;
  spdy::Frame f;
  while (got.size() < big.size()) {
    REQUIRE(c.Next(&f));
    if (f.type == spdy::FrameType::kData && f.stream_id == 3) {
      got += f.data;
    }
  }
  CHECK(got == big);
  // kubectl's TunnelingConnection.Close: a normal WebSocket close ends it all.
  tunnel.Send(ws::Opcode::kClose, std::string("\x03\xe8", 2));
  server.join();
}

TEST_CASE("Port-forward over WebSocket channels (the Python client's protocol)", "[portforward]") {
  EchoServer echo;
  FakeResponseWriter w;
  http::Request req = WebSocketRequest("v4.channel.k8s.io");
  req.query = http::ParseQuery("ports=80,81");
  std::unique_ptr<PortForwardSession> pf = PortForwardSession::Accept(req, w, {"web", "9"});
  REQUIRE(pf);
  CHECK(pf->protocol() == "v4.channel.k8s.io");
  std::thread server([&] { pf->Serve(EchoDialer(echo)); });
  WsClient c{w.client.get()};
  std::map<int, std::string> channels;
  auto collect = [&](auto pred) {
    while (!pred()) {
      ws::Frame m = c.Next();
      REQUIRE(m.opcode == ws::Opcode::kBinary);
      REQUIRE_FALSE(m.payload.empty());
      channels[static_cast<uint8_t>(m.payload[0])] += m.payload.substr(1);
    }
  };
  // First the port numbers, little-endian, on every channel.
  collect([&] { return channels.size() == 4 && channels[3].size() >= 2; });
  CHECK(channels[0] == std::string("\x50\x00", 2));
  CHECK(channels[1] == std::string("\x50\x00", 2));
  CHECK(channels[2] == std::string("\x51\x00", 2));
  CHECK(channels[3].substr(0, 2) == std::string("\x51\x00", 2));
  collect([&] { return channels[3].size() > 2; });
  CHECK(channels[3].substr(2) ==
        "error forwarding port 81 to pod web, uid 9: dial tcp4 127.0.0.1:81: connect: "
        "connection refused");
  c.SendChannel(0, "echo me");
  collect([&] { return channels[0].size() >= 2 + 7; });
  CHECK(channels[0].substr(2) == "echo me");
  c.Send(ws::Opcode::kClose, std::string("\x03\xe8", 2));
  server.join();

  FakeResponseWriter w2;
  http::Request bad = WebSocketRequest("v4.channel.k8s.io");
  std::string error;
  CHECK_FALSE(PortForwardSession::Accept(bad, w2, {}, &error));
  CHECK(w2.status == 400);
  CHECK(error == "query parameter \"ports\" is required");
}
