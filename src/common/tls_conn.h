#pragma once
// A raw TLS client connection (OpenSSL), for relaying upgraded protocols the
// API server proxies to a kubelet (exec, attach, port-forward). One thread may
// read while another writes.

#include <memory>
#include <mutex>
#include <string>

#include "common/http.h"

namespace minik::tls {

class Conn : public http::RawStream {
 public:
  // Connects to host:port, verifying the server against `ca_pem` and
  // presenting the client certificate. Throws minik::Error.
  static std::unique_ptr<Conn> Dial(const std::string& host, int port, const std::string& ca_pem,
                                    const std::string& cert_pem, const std::string& key_pem,
                                    int timeout_ms = 5000);
  ~Conn() override;
  size_t Read(char* buf, size_t n) override;
  bool Write(std::string_view data) override;
  bool WaitReadable(int timeout_ms) override;
  void Close() override;

  // Reads an HTTP response head (status line and headers, up to the blank
  // line); bytes read past it are kept for Read. Returns the status code.
  int ReadResponseHead(http::Headers* headers, std::string* reason);

 private:
  Conn() = default;
  void* ctx_ = nullptr;  // SSL_CTX*
  void* ssl_ = nullptr;  // SSL*
  int fd_ = -1;
  std::mutex mu_;
  std::string pending_;
  bool closed_ = false;
};

}  // namespace minik::tls
