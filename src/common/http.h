#pragma once
// An HTTPS/1.1 server: one thread per connection with blocking I/O, which keeps
// handlers plain sequential code (a watch is a loop that writes chunks). The
// Beast and Asio templates stay inside http_server.cc.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace minik::http {

struct CaseLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using Headers = std::map<std::string, std::string, CaseLess>;

struct Request {
  std::string method;
  std::string target;  // as sent: path and query
  std::string path;    // percent-decoded, without the query
  std::multimap<std::string, std::string> query;
  Headers headers;
  std::string body;
  std::string remote;
  // Set when the client presented a certificate signed by the client CA
  // (user = CN, groups = O), or by the handler for other credentials.
  bool authenticated = false;
  std::string user;
  std::vector<std::string> groups;
  std::string uid;
  std::map<std::string, std::vector<std::string>> extra;

  std::string Header(const std::string& name) const;
  bool Has(const std::string& param) const { return query.count(param) > 0; }
  std::string Param(const std::string& param, const std::string& def = "") const;
};

// A connection taken over after an HTTP upgrade (WebSocket, SPDY): raw bytes
// both ways over TLS. One thread may read while another writes.
class RawStream {
 public:
  virtual ~RawStream() = default;
  // Blocks until some bytes arrive; 0 when the peer closed or on error.
  virtual size_t Read(char* buf, size_t n) = 0;
  // Writes everything; false when the peer is gone.
  virtual bool Write(std::string_view data) = 0;
  // Waits up to `timeout_ms` for bytes to read; true when Read would not block.
  virtual bool WaitReadable(int timeout_ms) = 0;
  // Shuts the connection down; a blocked Read returns 0.
  virtual void Close() = 0;
};

// How a handler answers: once with Send, as a chunked stream, or by switching
// protocols (101) and taking the connection over.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual void Send(int status, const Headers& headers, std::string body) = 0;
  // Starts a chunked response; false when the client is gone.
  virtual bool StartStream(int status, const Headers& headers) = 0;
  virtual bool WriteChunk(std::string_view data) = 0;
  virtual void EndStream() = 0;
  // True when the client closed its side (checked without blocking).
  virtual bool ClientGone() = 0;
  virtual bool sent() const = 0;
  // Sends `status` (101 Switching Protocols) with `headers` and hands the
  // connection over; it is closed when the returned stream is destroyed.
  virtual std::unique_ptr<RawStream> Upgrade(int status, const Headers& headers) = 0;
};

using Handler = std::function<void(Request&, ResponseWriter&)>;

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;  // 0 picks a free port
  std::string cert_pem, key_pem;
  std::string client_ca_pem;  // empty: no client certificates are requested
  size_t max_body_bytes = 3 * 1024 * 1024;
  size_t max_connections = 4096;
  // Renders the body of an error the server answers by itself (413, 400, 429).
  std::function<std::string(int status, const std::string& message)> error_body;
};

class Server {
 public:
  Server(ServerOptions opts, Handler handler);
  ~Server();
  // Binds and starts accepting; returns the bound port. Throws minik::Error.
  uint16_t Start();
  // Stops accepting, closes every connection and waits for handlers to return.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string PercentDecode(std::string_view s);
std::string PercentEncode(std::string_view s);
std::multimap<std::string, std::string> ParseQuery(std::string_view q);

}  // namespace minik::http
