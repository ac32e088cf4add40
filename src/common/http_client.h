#pragma once
// A small HTTPS client over libcurl, for the CLI and components that talk to
// the API server. Certificates are passed in memory, never as temp files.

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace minik::http {

struct ClientOptions {
  std::string ca_pem;             // trust this CA (empty: do not verify the server)
  bool system_cas = false;        // verify the server against the system's CAs (`ca_pem` unused)
  std::string cert_pem, key_pem;  // client certificate
  long timeout_ms = 30000;
  long connect_timeout_ms = 5000;
  std::string user_agent;  // sent when not empty
};

struct ClientResponse {
  int status = 0;  // 0 when no response arrived; see `error`
  std::string body;
  std::string content_type;
  std::string error;
  // Filled by Client::Send only: the headers of the last response (after redirects)
  // and the URL that answered.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string effective_url;
  // A response header's value (name compared without case), "" when absent.
  std::string Header(std::string_view name) const;
};

// A request to a server that is not minik's (an image registry, a token
// service): its own headers, redirects, response headers, and a body that can
// be streamed.
// (Named ClientRequest: http::Request is the server's request, in common/http.h.)
struct ClientRequest {
  std::string method = "GET";
  std::string url;  // absolute ("https://..."), or a path appended to the client's base URL
  std::vector<std::pair<std::string, std::string>> headers;  // {"Authorization", "Bearer x"}
  std::string body;
  bool follow_redirects = false;  // credentials are not sent on to another host
  // A 2xx response body goes here instead of into `body`; returning false aborts.
  std::function<bool(std::string_view)> on_data;
  // -1: the client's timeout; 0: none, but a transfer slower than 1 KiB/s for 60 s fails.
  long timeout_ms = -1;
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
  // Sends an arbitrary request. `status` is 0 when no response arrived; `error`
  // is set whenever the transfer failed, also when a body was cut short after
  // its status arrived.
  ClientResponse Send(const ClientRequest& req);

 private:
  std::string base_;
  ClientOptions opts_;
  void* handle_ = nullptr;  // CURL*, reused so keep-alive and TLS sessions are too
};

}  // namespace minik::http
