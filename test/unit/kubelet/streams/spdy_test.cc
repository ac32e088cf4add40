// SPDY/3.1 framing, header compression and the server session, driven with
// hand-built client frames over an in-memory connection.

#include "kubelet/streams/spdy.h"

#include <zlib.h>

#include <catch2/catch.hpp>

#include <thread>

#include "fake_stream.h"

using namespace minik;
using namespace minik::streams;
using namespace minik::streams::spdy;
using minik::testing::MakePipePair;
using minik::testing::PipeStream;

namespace {

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) {
    s.push_back(static_cast<char>(c));
  }
  return s;
}

// The client end of a session: its own compressor for what it sends and
// decompressor for what it receives, as spdystream keeps them.
struct Client {
  std::unique_ptr<PipeStream> conn;
  FrameWriter writer;
  FrameReader reader;

  void Send(const Frame& f) { conn->Write(writer.Encode(f)); }
  void SendRaw(std::string_view bytes) { conn->Write(bytes); }

  // The next frame from the server within `timeout_ms`; false on timeout or EOF.
  bool Next(Frame* f, int timeout_ms = 5000) {
    for (;;) {
      FrameReader::Result r = reader.Next(f);
      if (r == FrameReader::Result::kFrame) {
        return true;
      }
      REQUIRE(r != FrameReader::Result::kError);
      if (r == FrameReader::Result::kSkipped) {
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
  Frame Expect(FrameType type) {
    Frame f;
    for (;;) {
      REQUIRE(Next(&f));
      // Window updates may come at any time; the tests that want them ask.
      if (f.type == type || f.type != FrameType::kWindowUpdate) {
        break;
      }
    }
    REQUIRE(static_cast<int>(f.type) == static_cast<int>(type));
    return f;
  }

  void Open(uint32_t id, HeaderBlock headers, bool fin = false) {
    Frame f;
    f.type = FrameType::kSynStream;
    f.stream_id = id;
    f.headers = std::move(headers);
    f.flags = fin ? kFlagFin : 0;
    Send(f);
  }
  void Data(uint32_t id, std::string data, bool fin = false) {
    Frame f;
    f.type = FrameType::kData;
    f.stream_id = id;
    f.data = std::move(data);
    f.flags = fin ? kFlagFin : 0;
    Send(f);
  }
};

struct Fixture {
  std::unique_ptr<Session> session;
  Client client;

  explicit Fixture(Session::StreamValidator validate = nullptr, Session::Options opts = {}) {
    opts.linger_ms = 500;
    auto [server, client_end] = MakePipePair();
    client.conn = std::move(client_end);
    session =
        std::make_unique<Session>(RawStreamTransport(std::move(server)), std::move(validate), opts);
    session->Start();
  }
};

}  // namespace

TEST_CASE("SPDY: the header dictionary is SPDY/3's", "[spdy]") {
  std::string_view d = HeaderDictionary();
  CHECK(d.size() == 1423);
  CHECK(d.substr(0, 11) == std::string_view("\0\0\0\x07options", 11));
  CHECK(d.substr(d.size() - 6) == "enq=0.");
  CHECK(adler32(1, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size())) ==
        0xe3c6a7c2);
}

TEST_CASE("SPDY: header blocks encode as counted, length-prefixed pairs", "[spdy]") {
  HeaderBlock h = {{"port", "80"}};
  CHECK(EncodeHeaderBlock(h) ==
        Bytes({0, 0, 0, 1, 0, 0, 0, 4, 'p', 'o', 'r', 't', 0, 0, 0, 2, '8', '0'}));
  HeaderBlock back;
  std::string error;
  REQUIRE(DecodeHeaderBlock(EncodeHeaderBlock({{"StreamType", "error"}, {"port", "8080"}}), &back,
                            &error));
  CHECK(back["streamtype"] == "error");
  CHECK(back["port"] == "8080");
  CHECK_FALSE(DecodeHeaderBlock(Bytes({0, 0, 0, 1, 0, 0, 0, 9, 'x'}), &back, &error));
}

TEST_CASE("SPDY: one zlib stream per direction, with the dictionary", "[spdy]") {
  HeaderCompressor c;
  HeaderDecompressor d;
  HeaderBlock h = {{"streamtype", "data"}, {"port", "8080"}, {"requestid", "0"}};
  std::string block = EncodeHeaderBlock(h);
  std::string first = c.Compress(block);
  // A zlib header announcing a preset dictionary (FDICT) whose Adler-32 is SPDY/3's.
  REQUIRE(first.size() > 6);
  CHECK((static_cast<uint8_t>(first[1]) & 0x20) != 0);
  CHECK(first.substr(2, 4) == Bytes({0xe3, 0xc6, 0xa7, 0xc2}));
  // Every block ends with a sync flush, so it decodes on its own.
  CHECK(first.substr(first.size() - 4) == Bytes({0x00, 0x00, 0xff, 0xff}));
  std::string second = c.Compress(block);
  // The stream's history makes the same block much cheaper the second time.
  CHECK(second.size() < first.size());
  std::string third = c.Compress(EncodeHeaderBlock({}));

  std::string out, error;
  REQUIRE(d.Decompress(first, &out, &error));
  CHECK(out == block);
  REQUIRE(d.Decompress(second, &out, &error));
  CHECK(out == block);
  REQUIRE(d.Decompress(third, &out, &error));
  CHECK(out == EncodeHeaderBlock({}));

  // A block from another stream cannot be read out of order.
  HeaderDecompressor fresh;
  CHECK_FALSE(fresh.Decompress(second, &out, &error));
}

TEST_CASE("SPDY: frames encode to the wire layout and parse back", "[spdy]") {
  FrameWriter w;
  Frame ping;
  ping.type = FrameType::kPing;
  ping.ping_id = 1;
  CHECK(w.Encode(ping) == Bytes({0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1}));
  Frame rst;
  rst.type = FrameType::kRstStream;
  rst.stream_id = 1;
  rst.status = kCancel;
  CHECK(w.Encode(rst) == Bytes({0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 5}));
  Frame wu;
  wu.type = FrameType::kWindowUpdate;
  wu.stream_id = 3;
  wu.delta_window = 1000;
  CHECK(w.Encode(wu) == Bytes({0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 3, 0xe8}));
  Frame ga;
  ga.type = FrameType::kGoAway;
  ga.stream_id = 5;
  CHECK(w.Encode(ga) == Bytes({0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 0}));
  Frame data;
  data.type = FrameType::kData;
  data.stream_id = 1;
  data.flags = kFlagFin;
  data.data = "hi";
  CHECK(w.Encode(data) == Bytes({0, 0, 0, 1, 1, 0, 0, 2, 'h', 'i'}));
  Frame settings;
  settings.type = FrameType::kSettings;
  settings.settings = {{0, kSettingsInitialWindowSize, 65536}};
  CHECK(w.Encode(settings) ==
        Bytes({0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0}));

  Frame syn;
  syn.type = FrameType::kSynStream;
  syn.stream_id = 7;
  syn.priority = 3;
  syn.flags = kFlagFin;
  syn.headers = {{"streamtype", "stdin"}};
  std::string wire = w.Encode(syn);
  CHECK(wire.substr(0, 4) == Bytes({0x80, 3, 0, 1}));
  CHECK(static_cast<uint8_t>(wire[16]) == (3 << 5));

  // Parse everything back, fed a byte at a time, with an unknown control
  // frame (type 10, CREDENTIAL) in the middle, which is skipped.
  std::string all = w.Encode(ping) + w.Encode(rst) + wire +
                    Bytes({0x80, 3, 0, 10, 0, 0, 0, 2, 0, 0}) + w.Encode(wu) + w.Encode(data) +
                    w.Encode(settings) + w.Encode(ga);
  FrameReader r;
  std::vector<Frame> got;
  int skipped = 0;
  for (char c : all) {
    r.Feed(std::string_view(&c, 1));
    Frame f;
    for (;;) {
      FrameReader::Result res = r.Next(&f);
      REQUIRE(res != FrameReader::Result::kError);
      if (res == FrameReader::Result::kNeedMore) {
        break;
      }
      if (res == FrameReader::Result::kSkipped) {
        ++skipped;
        continue;
      }
      got.push_back(f);
    }
  }
  CHECK(skipped == 1);
  REQUIRE(got.size() == 7);
  CHECK(got[0].type == FrameType::kPing);
  CHECK(got[0].ping_id == 1);
  CHECK(got[1].status == kCancel);
  CHECK(got[2].type == FrameType::kSynStream);
  CHECK(got[2].stream_id == 7);
  CHECK(got[2].priority == 3);
  CHECK(got[2].fin());
  CHECK(got[2].headers == HeaderBlock{{"streamtype", "stdin"}});
  CHECK(got[3].delta_window == 1000);
  CHECK(got[4].data == "hi");
  CHECK(got[4].fin());
  REQUIRE(got[5].settings.size() == 1);
  CHECK(got[5].settings[0].id == kSettingsInitialWindowSize);
  CHECK(got[5].settings[0].value == 65536);
  CHECK(got[6].type == FrameType::kGoAway);
  CHECK(got[6].stream_id == 5);

  FrameReader bad;
  bad.Feed(Bytes({0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1}));
  Frame f;
  CHECK(bad.Next(&f) == FrameReader::Result::kError);
}

TEST_CASE("SPDY session: streams are replied to, carry data both ways and finish", "[spdy]") {
  Fixture fx;
  Client& c = fx.client;
  c.Open(1, {{"streamtype", "stdin"}, {"port", "80"}});
  std::shared_ptr<Stream> s = fx.session->Accept(5000);
  REQUIRE(s);
  CHECK(s->id() == 1);
  CHECK(s->Header("streamType") == "stdin");
  CHECK(s->Header("Port") == "80");
  Frame reply = c.Expect(FrameType::kSynReply);
  CHECK(reply.stream_id == 1);
  CHECK(reply.headers.empty());
  CHECK_FALSE(reply.fin());

  c.Data(1, "hello ");
  c.Data(1, "world", true);
  std::string got, chunk;
  while (s->Read(&chunk)) {
    got += chunk;
  }
  CHECK(got == "hello world");
  CHECK(s->remote_finished());

  REQUIRE(s->Write("out"));
  Frame d = c.Expect(FrameType::kData);
  CHECK(d.stream_id == 1);
  CHECK(d.data == "out");
  s->Close();
  Frame fin = c.Expect(FrameType::kData);
  CHECK(fin.fin());
  CHECK(fin.data.empty());
  CHECK_FALSE(s->Write("after fin"));

  // The client's pings (odd ids) are echoed.
  Frame ping;
  ping.type = FrameType::kPing;
  ping.ping_id = 9;
  c.Send(ping);
  CHECK(c.Expect(FrameType::kPing).ping_id == 9);

  // Close: GOAWAY naming the last stream, then the connection ends.
  std::thread closer([&] { fx.session->Close(); });
  Frame ga = c.Expect(FrameType::kGoAway);
  CHECK(ga.stream_id == 1);
  CHECK(ga.status == kGoAwayOk);
  c.conn->Close();
  closer.join();
  CHECK(fx.session->closed());
}

TEST_CASE("SPDY session: rejected, invalid and reset streams", "[spdy]") {
  Fixture fx([](const Stream& s) -> std::string {
    return s.Header("port").empty() ? "\"port\" header is required" : "";
  });
  Client& c = fx.client;
  c.Open(1, {{"streamtype", "data"}});
  Frame rst = c.Expect(FrameType::kRstStream);
  CHECK(rst.stream_id == 1);
  CHECK(rst.status == kCancel);

  // Client stream ids are odd and increasing.
  c.Open(4, {{"port", "1"}});
  rst = c.Expect(FrameType::kRstStream);
  CHECK(rst.stream_id == 4);
  CHECK(rst.status == kProtocolError);

  c.Open(5, {{"port", "1"}});
  std::shared_ptr<Stream> s = fx.session->Accept(5000);
  REQUIRE(s);
  c.Expect(FrameType::kSynReply);
  std::thread reader([&] {
    std::string chunk;
    CHECK_FALSE(s->Read(&chunk));
  });
  Frame reset;
  reset.type = FrameType::kRstStream;
  reset.stream_id = 5;
  reset.status = kCancel;
  c.Send(reset);
  reader.join();
  CHECK(s->was_reset());
  CHECK_FALSE(s->Write("x"));

  // Data for a stream that is gone is dropped; the session carries on.
  c.Data(5, "late");
  c.Open(7, {{"port", "2"}});
  REQUIRE(fx.session->Accept(5000));
  CHECK(c.Expect(FrameType::kSynReply).stream_id == 7);
  // A malformed frame ends the session with GOAWAY(PROTOCOL_ERROR).
  c.SendRaw(Bytes({0x80, 3, 0, 9, 0, 0, 0, 4, 0, 0, 0, 1}));
  Frame ga = c.Expect(FrameType::kGoAway);
  CHECK(ga.status == kGoAwayProtocolError);
  CHECK(fx.session->WaitClosed(5000));
}

TEST_CASE("SPDY session: receive windows are replenished as data is consumed", "[spdy]") {
  Fixture fx;
  Client& c = fx.client;
  c.Open(1, {});
  std::shared_ptr<Stream> s = fx.session->Accept(5000);
  REQUIRE(s);
  c.Expect(FrameType::kSynReply);
  // 48 KiB in 16 KiB frames: consuming the first 32 KiB (half the 64 KiB
  // window) earns a WINDOW_UPDATE for the stream and one for the session.
  for (int i = 0; i < 3; ++i) {
    c.Data(1, std::string(16 << 10, 'x'));
  }
  std::string chunk;
  REQUIRE(s->Read(&chunk));
  Frame f;
  CHECK_FALSE(c.Next(&f, 200));
  REQUIRE(s->Read(&chunk));
  uint32_t stream_delta = 0, session_delta = 0;
  for (int i = 0; i < 2; ++i) {
    REQUIRE(c.Next(&f));
    REQUIRE(f.type == FrameType::kWindowUpdate);
    (f.stream_id == 0 ? session_delta : stream_delta) = f.delta_window;
  }
  CHECK(stream_delta == 32 << 10);
  CHECK(session_delta == 32 << 10);
  REQUIRE(s->Read(&chunk));
}

TEST_CASE("SPDY session: our writes honour the peer's windows once it shows it uses them",
          "[spdy]") {
  Session::Options opts;
  opts.write_chunk = 16 << 10;
  Fixture fx(nullptr, opts);
  Client& c = fx.client;
  c.Open(1, {});
  std::shared_ptr<Stream> s = fx.session->Accept(5000);
  REQUIRE(s);
  c.Expect(FrameType::kSynReply);

  // Like spdystream, the client has sent no WINDOW_UPDATE: writes are not held back.
  REQUIRE(s->Write(std::string(100 << 10, 'a')));
  size_t got = 0;
  while (got < (100u << 10)) {
    got += c.Expect(FrameType::kData).data.size();
  }

  // Now the client says it does flow control: the window left is
  // 64 KiB - 100 KiB + 1 KiB < 0, so the next write waits for more.
  Frame wu;
  wu.type = FrameType::kWindowUpdate;
  wu.stream_id = 1;
  wu.delta_window = 1 << 10;
  c.Send(wu);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::atomic<bool> written{false};
  std::thread writer([&] {
    CHECK(s->Write(std::string(10 << 10, 'b')));
    written = true;
  });
  Frame f;
  CHECK_FALSE(c.Next(&f, 300));
  CHECK_FALSE(written);
  wu.delta_window = (35 << 10) + (4 << 10);  // back to +4 KiB
  c.Send(wu);
  got = 0;
  std::string data;
  while (got < (10u << 10)) {
    Frame d = c.Expect(FrameType::kData);
    CHECK(d.data.size() <= (4u << 10));
    got += d.data.size();
    if (got < (10u << 10) && got % (4 << 10) == 0) {
      wu.delta_window = 4 << 10;
      c.Send(wu);
    }
  }
  writer.join();
  CHECK(written);
}
