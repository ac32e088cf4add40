#include "common/tls_conn.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace minik::tls {
namespace {

std::string SslError() {
  char buf[256];
  ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
  return buf;
}

}  // namespace

std::unique_ptr<Conn> Conn::Dial(const std::string& host, int port, const std::string& ca_pem,
                                 const std::string& cert_pem, const std::string& key_pem,
                                 int timeout_ms) {
  std::unique_ptr<Conn> c(new Conn());
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    throw Error("resolve " + host);
  }
  c->fd_ = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int rc = connect(c->fd_, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (rc != 0 && errno != EINPROGRESS) {
    throw SystemError("connect " + host + ":" + std::to_string(port), errno);
  }
  pollfd p{c->fd_, POLLOUT, 0};
  if (poll(&p, 1, timeout_ms) <= 0) {
    throw Error("connect " + host + ":" + std::to_string(port) + ": timed out");
  }
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(c->fd_, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) {
    throw SystemError("connect " + host + ":" + std::to_string(port), err);
  }
  // Blocking from here on; reads wait with poll first.
  int flags = fcntl(c->fd_, F_GETFL);
  fcntl(c->fd_, F_SETFL, flags & ~O_NONBLOCK);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  c->ctx_ = ctx;
  BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
  X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (ca) {
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca);
    X509_free(ca);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert && key) {
    SSL_CTX_use_certificate(ctx, cert);
    SSL_CTX_use_PrivateKey(ctx, key);
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  SSL* ssl = SSL_new(ctx);
  c->ssl_ = ssl;
  SSL_set_fd(ssl, c->fd_);
  SSL_set_tlsext_host_name(ssl, host.c_str());
  if (SSL_connect(ssl) != 1) {
    throw Error("TLS handshake with " + host + ":" + std::to_string(port) + ": " + SslError());
  }
  return c;
}

Conn::~Conn() {
  Close();
  if (ssl_) {
    SSL_free(static_cast<SSL*>(ssl_));
  }
  if (ctx_) {
    SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
  }
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

size_t Conn::Read(char* buf, size_t n) {
  if (!pending_.empty()) {
    size_t k = std::min(n, pending_.size());
    std::memcpy(buf, pending_.data(), k);
    pending_.erase(0, k);
    return k;
  }
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (closed_) {
        return 0;
      }
      if (SSL_pending(static_cast<SSL*>(ssl_)) > 0) {
        int k = SSL_read(static_cast<SSL*>(ssl_), buf, static_cast<int>(n));
        return k > 0 ? static_cast<size_t>(k) : 0;
      }
    }
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, 1000);
    if (r < 0 && errno != EINTR) {
      return 0;
    }
    if (r > 0) {
      std::lock_guard lock(mu_);
      if (closed_) {
        return 0;
      }
      int k = SSL_read(static_cast<SSL*>(ssl_), buf, static_cast<int>(n));
      if (k > 0) {
        return static_cast<size_t>(k);
      }
      int e = SSL_get_error(static_cast<SSL*>(ssl_), k);
      if (e != SSL_ERROR_WANT_READ) {
        return 0;
      }
    }
  }
}

bool Conn::Write(std::string_view data) {
  std::lock_guard lock(mu_);
  size_t off = 0;
  while (off < data.size() && !closed_) {
    int k =
        SSL_write(static_cast<SSL*>(ssl_), data.data() + off, static_cast<int>(data.size() - off));
    if (k <= 0) {
      return false;
    }
    off += static_cast<size_t>(k);
  }
  return !closed_;
}

bool Conn::WaitReadable(int timeout_ms) {
  if (!pending_.empty()) {
    return true;
  }
  {
    std::lock_guard lock(mu_);
    if (SSL_pending(static_cast<SSL*>(ssl_)) > 0) {
      return true;
    }
  }
  pollfd p{fd_, POLLIN, 0};
  return poll(&p, 1, timeout_ms) > 0;
}

void Conn::Close() {
  std::lock_guard lock(mu_);
  if (!closed_) {
    closed_ = true;
    if (fd_ >= 0) {
      ::shutdown(fd_, SHUT_RDWR);
    }
  }
}

int Conn::ReadResponseHead(http::Headers* headers, std::string* reason) {
  std::string data;
  char buf[4096];
  size_t end;
  while ((end = data.find("\r\n\r\n")) == std::string::npos) {
    size_t k = Read(buf, sizeof(buf));
    if (k == 0 || data.size() > 65536) {
      throw Error("no HTTP response from the peer");
    }
    data.append(buf, k);
  }
  pending_ = data.substr(end + 4) + pending_;
  std::string head = data.substr(0, end);
  size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  int code = 0;
  auto sp = status_line.find(' ');
  if (sp != std::string::npos) {
    code = std::atoi(status_line.c_str() + sp + 1);
    auto sp2 = status_line.find(' ', sp + 1);
    if (reason && sp2 != std::string::npos) {
      *reason = status_line.substr(sp2 + 1);
    }
  }
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    std::string line = head.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(' '));
      (*headers)[line.substr(0, colon)] = v;
    }
    if (e == std::string::npos) {
      break;
    }
    pos = e + 2;
  }
  return code;
}

}  // namespace minik::tls
