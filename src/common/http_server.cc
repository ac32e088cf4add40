#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "common/error.h"
#include "common/http.h"
#include "common/log.h"

namespace minik::http {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Stream = ssl::stream<tcp::socket>;

bool CaseLess::operator()(const std::string& a, const std::string& b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) <
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::string Request::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

std::string Request::Param(const std::string& param, const std::string& def) const {
  auto it = query.find(param);
  return it == query.end() ? def : it->second;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() + 0 && i + 2 <= s.size() - 1 + 0 &&
        std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string PercentEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::multimap<std::string, std::string> ParseQuery(std::string_view q) {
  std::multimap<std::string, std::string> out;
  size_t pos = 0;
  while (pos < q.size()) {
    size_t amp = q.find('&', pos);
    std::string_view part =
        q.substr(pos, amp == std::string_view::npos ? q.size() - pos : amp - pos);
    if (!part.empty()) {
      size_t eq = part.find('=');
      if (eq == std::string_view::npos) {
        out.emplace(PercentDecode(part), "");
      } else {
        out.emplace(PercentDecode(part.substr(0, eq)), PercentDecode(part.substr(eq + 1)));
      }
    }
    if (amp == std::string_view::npos) {
      break;
    }
    pos = amp + 1;
  }
  return out;
}

namespace {

// The raw connection after an upgrade. OpenSSL's SSL object must not be used
// by two threads at once, so reads wait for readability without the lock and
// then read under it; writes take the same lock.
class UpgradedStream : public RawStream {
 public:
  UpgradedStream(Stream& s, std::string pending) : stream_(s), pending_(std::move(pending)) {}
  ~UpgradedStream() override { Close(); }

  size_t Read(char* buf, size_t n) override {
    if (!pending_.empty()) {
      size_t k = std::min(n, pending_.size());
      std::memcpy(buf, pending_.data(), k);
      pending_.erase(0, k);
      return k;
    }
    for (;;) {
      if (closed_) {
        return 0;
      }
      {
        // Try a read that cannot block before waiting on the socket: the TLS
        // engine may already hold whole records (in OpenSSL's BIO pair or
        // Asio's input buffer) that polling the socket cannot see. Clients
        // that write many small records (Go's SPDY framer writes each field
        // separately) would otherwise stall until their next packet.
        std::lock_guard lock(mu_);
        auto& socket = stream_.lowest_layer();
        beast::error_code ec, ignored;
        socket.non_blocking(true, ignored);
        size_t k = stream_.read_some(asio::buffer(buf, n), ec);
        socket.non_blocking(false, ignored);
        if (!ec) {
          return k;
        }
        if (ec != asio::error::would_block && ec != asio::error::try_again) {
          closed_ = true;
          return 0;
        }
      }
      WaitSocket(1000);
    }
  }

  bool Write(std::string_view data) override {
    std::lock_guard lock(mu_);
    if (closed_) {
      return false;
    }
    beast::error_code ec;
    asio::write(stream_, asio::buffer(data.data(), data.size()), ec);
    if (ec) {
      closed_ = true;
    }
    return !ec;
  }

  bool WaitReadable(int timeout_ms) override {
    if (!pending_.empty()) {
      return true;
    }
    {
      std::lock_guard lock(mu_);
      SSL* ssl = stream_.native_handle();
      // Decrypted bytes, or records read from the socket but not yet decrypted.
      if (SSL_pending(ssl) > 0 || BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0) {
        return true;
      }
    }
    return WaitSocket(timeout_ms);
  }

  void Close() override {
    bool was = closed_.exchange(true);
    if (!was) {
      beast::error_code ec;
      stream_.lowest_layer().shutdown(tcp::socket::shutdown_both, ec);
    }
  }

 private:
  bool WaitSocket(int timeout_ms) {
    pollfd p{stream_.lowest_layer().native_handle(), POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
  }
  Stream& stream_;
  std::string pending_;
  std::mutex mu_;
  std::atomic<bool> closed_{false};
};

class Writer : public ResponseWriter {
 public:
  Writer(Stream& s, unsigned version, bool keep_alive, beast::flat_buffer* buffer = nullptr)
      : stream_(s), version_(version), keep_alive_(keep_alive), buffer_(buffer) {}

  void Send(int status, const Headers& headers, std::string body) override {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), version_};
    for (auto& [k, v] : headers) {
      res.set(k, v);
    }
    res.keep_alive(keep_alive_);
    res.body() = std::move(body);
    res.prepare_payload();
    beast::error_code ec;
    bhttp::write(stream_, res, ec);
    sent_ = true;
    failed_ = failed_ || ec.failed();
  }

  bool StartStream(int status, const Headers& headers) override {
    bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(status), version_};
    for (auto& [k, v] : headers) {
      res.set(k, v);
    }
    res.keep_alive(keep_alive_);
    res.chunked(true);
    bhttp::response_serializer<bhttp::empty_body> sr{res};
    beast::error_code ec;
    bhttp::write_header(stream_, sr, ec);
    sent_ = true;
    streaming_ = true;
    failed_ = failed_ || ec.failed();
    return !failed_;
  }

  bool WriteChunk(std::string_view data) override {
    if (failed_ || data.empty()) {
      return !failed_;
    }
    beast::error_code ec;
    asio::write(stream_, bhttp::make_chunk(asio::buffer(data.data(), data.size())), ec);
    failed_ = ec.failed();
    return !failed_;
  }

  void EndStream() override {
    if (!failed_) {
      beast::error_code ec;
      asio::write(stream_, bhttp::make_chunk_last(), ec);
      failed_ = ec.failed();
    }
    streaming_ = false;
  }

  bool ClientGone() override {
    if (failed_) {
      return true;
    }
    pollfd p{stream_.lowest_layer().native_handle(), POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) > 0 && p.revents) {
      // During a response the client sends nothing more unless it is closing.
      failed_ = true;
    }
    return failed_;
  }

  bool sent() const override { return sent_; }
  bool failed() const { return failed_; }
  bool streaming() const { return streaming_; }
  bool upgraded() const { return upgraded_; }

  std::unique_ptr<RawStream> Upgrade(int status, const Headers& headers) override {
    bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(status), version_};
    for (auto& [k, v] : headers) {
      res.set(k, v);
    }
    beast::error_code ec;
    bhttp::write(stream_, res, ec);
    sent_ = true;
    upgraded_ = true;
    failed_ = failed_ || ec.failed();
    // Bytes the client sent after its request are the first of the new protocol.
    std::string pending;
    if (buffer_ && buffer_->size() > 0) {
      auto data = buffer_->data();
      pending.assign(static_cast<const char*>(data.data()), data.size());
      buffer_->consume(buffer_->size());
    }
    return std::make_unique<UpgradedStream>(stream_, std::move(pending));
  }

 private:
  Stream& stream_;
  unsigned version_;
  bool keep_alive_;
  beast::flat_buffer* buffer_;
  bool sent_ = false;
  bool failed_ = false;
  bool streaming_ = false;
  bool upgraded_ = false;
};

}  // namespace

struct Server::Impl {
  ServerOptions opts;
  Handler handler;
  asio::io_context io;
  ssl::context ctx{ssl::context::tls_server};
  std::unique_ptr<tcp::acceptor> acceptor;
  std::thread accept_thread;
  std::mutex mu;
  std::condition_variable cv;
  std::set<tcp::socket*> sockets;
  size_t active = 0;
  bool stopping = false;

  void AcceptLoop() {
    for (;;) {
      auto sock = std::make_unique<tcp::socket>(io);
      beast::error_code ec;
      acceptor->accept(*sock, ec);
      if (ec) {
        std::lock_guard lock(mu);
        if (stopping) {
          return;
        }
        if (ec == asio::error::no_descriptors) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        continue;
      }
      std::unique_lock lock(mu);
      if (stopping) {
        return;
      }
      ++active;
      lock.unlock();
      std::thread([this, s = std::move(sock)]() mutable { Serve(std::move(s)); }).detach();
    }
  }

  void Serve(std::unique_ptr<tcp::socket> sock) {
    Stream stream(std::move(*sock), ctx);
    {
      std::lock_guard lock(mu);
      sockets.insert(&stream.next_layer());
    }
    beast::error_code ec;
    stream.next_layer().set_option(tcp::no_delay(true), ec);
    std::string remote;
    try {
      remote = stream.next_layer().remote_endpoint().address().to_string();
    } catch (const std::exception&) {
    }
    bool too_many = false;
    {
      std::lock_guard lock(mu);
      too_many = active > opts.max_connections;
    }
    stream.handshake(ssl::stream_base::server, ec);
    if (!ec) {
      ServeConnection(stream, remote, too_many);
    }
    beast::error_code ignored;
    stream.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
    {
      std::lock_guard lock(mu);
      sockets.erase(&stream.next_layer());
    }
    stream.next_layer().close(ignored);
    std::lock_guard lock(mu);
    --active;
    cv.notify_all();
  }

  void ServeConnection(Stream& stream, const std::string& remote, bool too_many) {
    Request base;
    base.remote = remote;
    SSL* ssl = stream.native_handle();
    if (X509* peer = SSL_get1_peer_certificate(ssl)) {
      if (SSL_get_verify_result(ssl) == X509_V_OK) {
        base.authenticated = true;
        X509_NAME* name = X509_get_subject_name(peer);
        for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
          X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
          int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
          ASN1_STRING* d = X509_NAME_ENTRY_get_data(e);
          std::string v(reinterpret_cast<const char*>(ASN1_STRING_get0_data(d)),
                        static_cast<size_t>(ASN1_STRING_length(d)));
          if (nid == NID_commonName) {
            base.user = v;
          } else if (nid == NID_organizationName) {
            base.groups.push_back(v);
          }
        }
      }
      X509_free(peer);
    }
    beast::flat_buffer buffer;
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(opts.max_body_bytes);
      parser.header_limit(64 * 1024);
      beast::error_code ec;
      bhttp::read(stream, buffer, parser, ec);
      if (ec == bhttp::error::body_limit) {
        SendError(
            stream, 413,
            "the request body is larger than " + std::to_string(opts.max_body_bytes) + " bytes");
        return;
      }
      if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
          ec == ssl::error::stream_truncated || ec == asio::error::connection_reset ||
          ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) {
        return;
      }
      if (ec) {
        SendError(stream, 400, "malformed HTTP request: " + ec.message());
        return;
      }
      auto& msg = parser.get();
      if (too_many) {
        SendError(stream, 429, "too many connections; retry later");
        return;
      }
      Request req = base;
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      auto q = req.target.find('?');
      req.path = PercentDecode(std::string_view(req.target).substr(0, q));
      if (q != std::string::npos) {
        req.query = ParseQuery(std::string_view(req.target).substr(q + 1));
      }
      for (auto& f : msg) {
        // Repeated headers (X-Stream-Protocol-Version, ...) join as one comma-separated value.
        std::string& v = req.headers[std::string(f.name_string())];
        v += (v.empty() ? "" : ", ") + std::string(f.value());
      }
      req.body = std::move(msg.body());
      bool keep_alive = msg.keep_alive();
      Writer w(stream, msg.version(), keep_alive, &buffer);
      try {
        handler(req, w);
      } catch (const std::exception& e) {
        log::Error("{} {}: {}", req.method, req.target, e.what());
        if (!w.sent()) {
          w.Send(500, {{"Content-Type", "application/json"}},
                 opts.error_body ? opts.error_body(500, e.what()) : e.what());
        } else {
          return;
        }
      }
      if (!w.sent()) {
        w.Send(500, {}, "no response");
      }
      if (w.upgraded()) {
        return;  // the handler owned the connection; it is done with it
      }
      if (w.streaming()) {
        w.EndStream();
      }
      if (w.failed() || !keep_alive) {
        return;
      }
    }
  }

  void SendError(Stream& stream, int status, const std::string& message) {
    Writer w(stream, 11, false);
    w.Send(status, {{"Content-Type", "application/json"}},
           opts.error_body ? opts.error_body(status, message) : message);
  }
};

Server::Server(ServerOptions opts, Handler handler) : impl_(std::make_unique<Impl>()) {
  impl_->opts = std::move(opts);
  impl_->handler = std::move(handler);
}

Server::~Server() {
  Stop();
}

uint16_t Server::Start() {
  auto& ctx = impl_->ctx;
  const auto& o = impl_->opts;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  try {
    ctx.use_certificate_chain(asio::buffer(o.cert_pem));
    ctx.use_private_key(asio::buffer(o.key_pem), ssl::context::pem);
    if (!o.client_ca_pem.empty()) {
      ctx.add_certificate_authority(asio::buffer(o.client_ca_pem));
      ctx.set_verify_mode(ssl::verify_peer);
      // Anonymous clients are let through the handshake; the handler answers 401.
      SSL_CTX_set_verify(ctx.native_handle(), SSL_VERIFY_PEER,
                         [](int, X509_STORE_CTX*) { return 1; });
    }
  } catch (const std::exception& e) {
    throw Error(std::string("load serving certificate: ") + e.what());
  }
  SSL_CTX_set_session_id_context(ctx.native_handle(),
                                 reinterpret_cast<const unsigned char*>("minik"), 5);
  beast::error_code ec;
  auto addr = asio::ip::make_address(o.address, ec);
  if (ec) {
    throw Error("listen address '" + o.address + "': " + ec.message());
  }
  impl_->acceptor = std::make_unique<tcp::acceptor>(impl_->io);
  tcp::endpoint ep(addr, o.port);
  impl_->acceptor->open(ep.protocol(), ec);
  if (!ec) {
    impl_->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    impl_->acceptor->bind(ep, ec);
  }
  if (!ec) {
    impl_->acceptor->listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    throw Error("listen on " + o.address + ":" + std::to_string(o.port) + ": " + ec.message());
  }
  uint16_t port = impl_->acceptor->local_endpoint().port();
  impl_->accept_thread = std::thread([this] { impl_->AcceptLoop(); });
  return port;
}

void Server::Stop() {
  if (!impl_ || !impl_->acceptor) {
    return;
  }
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) {
      return;
    }
    impl_->stopping = true;
    beast::error_code ec;
    // Closing the acceptor does not wake a blocked accept(); shutting the socket down does.
    ::shutdown(impl_->acceptor->native_handle(), SHUT_RDWR);
    for (auto* s : impl_->sockets) {
      s->shutdown(tcp::socket::shutdown_both, ec);
    }
  }
  if (impl_->accept_thread.joinable()) {
    impl_->accept_thread.join();
  }
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait_for(lock, std::chrono::seconds(10), [&] { return impl_->active == 0; });
}

}  // namespace minik::http
