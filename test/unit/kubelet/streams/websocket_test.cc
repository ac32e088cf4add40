// WebSocket (RFC 6455) server side, driven with hand-built client frames.

#include "kubelet/streams/websocket.h"

#include <catch2/catch.hpp>

#include <thread>

#include "fake_stream.h"

using namespace minik;
using namespace minik::streams::websocket;
using minik::testing::FakeResponseWriter;
using minik::testing::MakePipePair;
using minik::testing::PipeStream;

namespace {

const std::array<uint8_t, 4> kMask = {0x37, 0xfa, 0x21, 0x3d};

// The next frame the server wrote, waiting up to 5 s.
Frame NextFrame(PipeStream& client, FrameParser& parser) {
  for (;;) {
    Frame f;
    FrameParser::Result r = parser.Next(&f);
    if (r == FrameParser::Result::kFrame) {
      return f;
    }
    REQUIRE(r == FrameParser::Result::kNeedMore);
    REQUIRE(client.WaitReadable(5000));
    char buf[4096];
    size_t n = client.Read(buf, sizeof buf);
    REQUIRE(n > 0);
    parser.Feed(std::string_view(buf, n));
  }
}

uint16_t CloseCode(const Frame& f) {
  REQUIRE(f.opcode == Opcode::kClose);
  REQUIRE(f.payload.size() >= 2);
  return static_cast<uint16_t>((static_cast<uint8_t>(f.payload[0]) << 8) |
                               static_cast<uint8_t>(f.payload[1]));
}

std::string ClosePayload(uint16_t code, std::string_view reason = {}) {
  std::string p = {static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  return p + std::string(reason);
}

struct Pair {
  std::unique_ptr<Connection> server;
  std::unique_ptr<PipeStream> client;
};

Pair Open(Connection::Options opts = {}) {
  auto [server, client] = MakePipePair();
  return {std::make_unique<Connection>(std::move(server), "v5.channel.k8s.io", opts),
          std::move(client)};
}

http::Request HandshakeRequest(std::string protocols) {
  http::Request req;
  req.method = "GET";
  req.headers = {{"Upgrade", "websocket"},
                 {"Connection", "keep-alive, Upgrade"},
                 {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                 {"Sec-WebSocket-Version", "13"}};
  if (!protocols.empty()) {
    req.headers["Sec-WebSocket-Protocol"] = protocols;
  }
  return req;
}

}  // namespace

TEST_CASE("WebSocket: accept key from RFC 6455 section 1.3", "[websocket]") {
  CHECK(AcceptKey("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("WebSocket: frames encode and parse, masked and unmasked, all length forms",
          "[websocket]") {
  // RFC 6455 section 5.7: a masked "Hello" from a client.
  std::string hello = EncodeFrame(Opcode::kText, "Hello", true, &kMask);
  CHECK(hello == std::string("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11));
  // And the unmasked one a server sends.
  CHECK(EncodeFrame(Opcode::kText, "Hello") == std::string("\x81\x05Hello", 7));

  for (size_t len : {0, 125, 126, 65535, 65536, 200000}) {
    std::string payload(len, 'x');
    std::string wire = EncodeFrame(Opcode::kBinary, payload, false, &kMask);
    if (len == 126) {
      CHECK(static_cast<uint8_t>(wire[1]) == (0x80 | 126));
    }
    if (len == 65536) {
      CHECK(static_cast<uint8_t>(wire[1]) == (0x80 | 127));
    }
    FrameParser parser(1 << 20);
    // Byte by byte for the small ones: the parser must wait for whole frames.
    Frame f;
    if (len <= 126) {
      for (size_t i = 0; i + 1 < wire.size(); ++i) {
        parser.Feed(wire.substr(i, 1));
        REQUIRE(parser.Next(&f) == FrameParser::Result::kNeedMore);
      }
      parser.Feed(wire.substr(wire.size() - 1));
    } else {
      parser.Feed(wire);
    }
    REQUIRE(parser.Next(&f) == FrameParser::Result::kFrame);
    CHECK_FALSE(f.fin);
    CHECK(f.masked);
    CHECK(f.opcode == Opcode::kBinary);
    CHECK(f.payload == payload);
  }

  FrameParser small(100);
  small.Feed(EncodeFrame(Opcode::kBinary, std::string(101, 'x')));
  Frame f;
  CHECK(small.Next(&f) == FrameParser::Result::kError);
  CHECK(small.error_code() == kCloseMessageTooBig);
}

TEST_CASE("WebSocket: fragmented messages are reassembled around a ping", "[websocket]") {
  Pair c = Open();
  c.client->Write(EncodeFrame(Opcode::kText, "Hel", false, &kMask));
  c.client->Write(EncodeFrame(Opcode::kPing, "are you there", true, &kMask));
  c.client->Write(EncodeFrame(Opcode::kContinuation, "lo", false, &kMask));
  c.client->Write(EncodeFrame(Opcode::kContinuation, ", world", true, &kMask));
  c.client->Write(EncodeFrame(Opcode::kBinary, std::string("\x00\x01", 2), true, &kMask));

  std::optional<Message> m = c.server->Read();
  REQUIRE(m);
  CHECK(m->type == Opcode::kText);
  CHECK(m->data == "Hello, world");
  m = c.server->Read();
  REQUIRE(m);
  CHECK(m->type == Opcode::kBinary);
  CHECK(m->data == std::string("\x00\x01", 2));

  // The ping was answered with a pong carrying its payload, unmasked.
  FrameParser parser(1 << 20);
  Frame pong = NextFrame(*c.client, parser);
  CHECK(pong.opcode == Opcode::kPong);
  CHECK_FALSE(pong.masked);
  CHECK(pong.payload == "are you there");

  REQUIRE(c.server->Write(Opcode::kBinary, "\x01out"));
  Frame out = NextFrame(*c.client, parser);
  CHECK(out.opcode == Opcode::kBinary);
  CHECK(out.fin);
  CHECK_FALSE(out.masked);
  CHECK(out.payload == "\x01out");
}

TEST_CASE("WebSocket: the close handshake echoes the status", "[websocket]") {
  Pair c = Open();
  c.client->Write(EncodeFrame(Opcode::kClose, ClosePayload(1000, "bye"), true, &kMask));
  CHECK_FALSE(c.server->Read());
  CHECK(c.server->peer_closed());
  CHECK(c.server->peer_close_code() == 1000);
  FrameParser parser(1 << 20);
  CHECK(CloseCode(NextFrame(*c.client, parser)) == 1000);
  CHECK_FALSE(c.server->Write(Opcode::kBinary, "late"));

  // A server-initiated close: later writes fail, the reader waits for the answer.
  Pair d = Open();
  REQUIRE(d.server->SendClose(kCloseNormal));
  CHECK_FALSE(d.server->Write(Opcode::kBinary, "late"));
  FrameParser p2(1 << 20);
  CHECK(CloseCode(NextFrame(*d.client, p2)) == kCloseNormal);
  d.client->Write(EncodeFrame(Opcode::kClose, ClosePayload(1000), true, &kMask));
  CHECK_FALSE(d.server->Read());
  CHECK(d.server->peer_close_code() == 1000);
  // An empty close body means "no status".
  Pair e = Open();
  e.client->Write(EncodeFrame(Opcode::kClose, "", true, &kMask));
  CHECK_FALSE(e.server->Read());
  CHECK(e.server->peer_close_code() == kCloseNoStatus);
}

TEST_CASE("WebSocket: protocol violations fail the connection with the right status",
          "[websocket]") {
  struct Case {
    const char* name;
    std::string wire;
    uint16_t code;
  };
  std::string reserved = EncodeFrame(Opcode::kBinary, "x", true, &kMask);
  reserved[0] = static_cast<char>(reserved[0] | 0x40);
  std::string big_control = EncodeFrame(Opcode::kPing, std::string(126, 'p'), true, &kMask);
  std::vector<Case> cases = {
      {"unmasked client frame", EncodeFrame(Opcode::kBinary, "x"), kCloseProtocolError},
      {"reserved bit", reserved, kCloseProtocolError},
      {"continuation first", EncodeFrame(Opcode::kContinuation, "x", true, &kMask),
       kCloseProtocolError},
      {"fragmented ping", EncodeFrame(Opcode::kPing, "x", false, &kMask), kCloseProtocolError},
      {"long ping", big_control, kCloseProtocolError},
      {"new message inside a fragmented one",
       EncodeFrame(Opcode::kText, "a", false, &kMask) +
           EncodeFrame(Opcode::kText, "b", true, &kMask),
       kCloseProtocolError},
      {"unknown opcode", EncodeFrame(static_cast<Opcode>(0x3), "x", true, &kMask),
       kCloseProtocolError},
      {"invalid UTF-8 text", EncodeFrame(Opcode::kText, "\xc3\x28", true, &kMask),
       kCloseInvalidPayload},
      {"close with the reserved status 1005",
       EncodeFrame(Opcode::kClose, ClosePayload(1005), true, &kMask), kCloseProtocolError},
      {"one-byte close", EncodeFrame(Opcode::kClose, "\x03", true, &kMask), kCloseProtocolError},
  };
  for (const Case& tc : cases) {
    INFO(tc.name);
    Connection::Options opts;
    Pair c = Open(opts);
    c.client->Write(tc.wire);
    CHECK_FALSE(c.server->Read());
    FrameParser parser(1 << 20);
    CHECK(CloseCode(NextFrame(*c.client, parser)) == tc.code);
  }

  // A message over the limit.
  Connection::Options small;
  small.max_message_bytes = 10;
  Pair c = Open(small);
  c.client->Write(EncodeFrame(Opcode::kBinary, "123456", false, &kMask));
  c.client->Write(EncodeFrame(Opcode::kContinuation, "789012", true, &kMask));
  CHECK_FALSE(c.server->Read());
  FrameParser parser(1 << 20);
  CHECK(CloseCode(NextFrame(*c.client, parser)) == kCloseMessageTooBig);

  // UTF-8 split between fragments is valid once the message is whole.
  Pair u = Open();
  u.client->Write(EncodeFrame(Opcode::kText, "\xe2\x82", false, &kMask));
  u.client->Write(EncodeFrame(Opcode::kContinuation, "\xac", true, &kMask));
  std::optional<Message> m = u.server->Read();
  REQUIRE(m);
  CHECK(m->data == "\xe2\x82\xac");
}

TEST_CASE("WebSocket: UTF-8 and base64 helpers", "[websocket]") {
  CHECK(IsValidUtf8("plain ascii"));
  CHECK(IsValidUtf8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"));
  CHECK(IsValidUtf8("\xf0\x9f\x98\x80"));
  CHECK_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  CHECK_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  CHECK_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  CHECK_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
}

TEST_CASE("WebSocket: handshake negotiates the client's first supported protocol", "[websocket]") {
  std::vector<std::string> supported = {"v5.channel.k8s.io", "v4.channel.k8s.io", ""};
  {
    FakeResponseWriter w;
    http::Request req = HandshakeRequest("v4.channel.k8s.io, v5.channel.k8s.io");
    CHECK(IsWebSocketRequest(req));
    std::unique_ptr<Connection> c = Accept(req, w, supported);
    REQUIRE(c);
    CHECK(w.status == 101);
    CHECK(w.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(w.headers["Sec-WebSocket-Protocol"] == "v4.channel.k8s.io");
    CHECK(w.headers["Upgrade"] == "websocket");
    CHECK(c->protocol() == "v4.channel.k8s.io");
  }
  {
    // No protocol offered: accepted as "" and none echoed.
    FakeResponseWriter w;
    http::Request req = HandshakeRequest("");
    std::unique_ptr<Connection> c = Accept(req, w, supported);
    REQUIRE(c);
    CHECK(w.headers.count("Sec-WebSocket-Protocol") == 0);
  }
  {
    FakeResponseWriter w;
    http::Request req = HandshakeRequest("v9.channel.k8s.io");
    std::string error;
    CHECK_FALSE(Accept(req, w, supported, &error));
    CHECK(w.status == 403);
    CHECK_THAT(error, Catch::Contains("not supported"));
  }
  {
    FakeResponseWriter w;
    http::Request req = HandshakeRequest("v5.channel.k8s.io");
    req.headers["Sec-WebSocket-Version"] = "8";
    CHECK_FALSE(Accept(req, w, supported));
    CHECK(w.status == 426);
    CHECK(w.headers["Sec-WebSocket-Version"] == "13");
  }
  {
    FakeResponseWriter w;
    http::Request req = HandshakeRequest("v5.channel.k8s.io");
    req.headers["Sec-WebSocket-Key"] = "c2hvcnQ=";
    CHECK_FALSE(Accept(req, w, supported));
    CHECK(w.status == 400);
  }
  {
    http::Request req = HandshakeRequest("");
    req.headers["Connection"] = "keep-alive";
    CHECK_FALSE(IsWebSocketRequest(req));
  }
}

TEST_CASE("WebSocket: one reader and several writers at once", "[websocket]") {
  Pair c = Open();
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        c.server->Write(Opcode::kBinary, std::string(1000 + t, static_cast<char>('a' + t)));
      }
    });
  }
  for (std::thread& t : writers) {
    t.join();
  }
  FrameParser parser(1 << 20);
  int counts[4] = {0, 0, 0, 0};
  for (int i = 0; i < 800; ++i) {
    Frame f = NextFrame(*c.client, parser);
    int t = f.payload[0] - 'a';
    REQUIRE(t >= 0);
    REQUIRE(t < 4);
    CHECK(f.payload == std::string(1000 + t, static_cast<char>('a' + t)));
    ++counts[t];
  }
  CHECK(counts[0] == 200);
  CHECK(counts[3] == 200);
}
