#pragma once
// A small HTTPS client over libcurl, for the CLI and components that talk to
// the API server. Certificates are passed in memory, never as temp files.

#include <atomic>
#include <functional>
#include <string>

namespace minik::http {

struct ClientOptions {
  std::string ca_pem;             // trust this CA (empty: do not verify the server)
  std::string cert_pem, key_pem;  // client certificate
  long timeout_ms = 30000;
  long connect_timeout_ms = 5000;
};

struct ClientResponse {
  int status = 0;  // 0 when no response arrived; see `error`
  std::string body;
  std::string content_type;
  std::string error;
};

// One Client keeps one connection alive between requests; it is not safe to
// use from two threads at once (give each thread its own).
class Client {
 public:
  Client(std::string base_url, ClientOptions opts);
  ~Client();
  Client(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ClientResponse Do(const std::string& method, const std::string& path,
                    const std::string& body = "",
                    const std::string& content_type = "application/json",
                    const std::string& accept = "application/json");
  // Streams a response body to `on_data` until it ends, `on_data` returns false
  // or the timeout passes.
  ClientResponse Stream(const std::string& path,
                        const std::function<bool(std::string_view)>& on_data,
                        const std::atomic<bool>* cancel = nullptr);

 private:
  std::string base_;
  ClientOptions opts_;
  void* handle_ = nullptr;  // CURL*, reused so keep-alive and TLS sessions are too
};

}  // namespace minik::http
