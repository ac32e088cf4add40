#include "common/http_client.h"

#include <curl/curl.h>

#include <strings.h>

#include <memory>
#include <mutex>

namespace minik::http {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct StreamState {
  std::string* body;
  const std::function<bool(std::string_view)>* on_data;
  const std::atomic<bool>* cancel;
};

// Called by curl about once a second even when no data flows, so a cancelled
// stream ends promptly.
int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* st = static_cast<StreamState*>(user);
  return st->cancel && st->cancel->load() ? 1 : 0;
}

size_t OnWrite(char* ptr, size_t size, size_t n, void* user) {
  auto* st = static_cast<StreamState*>(user);
  if (st->on_data) {
    return (*st->on_data)(std::string_view(ptr, size * n)) ? size * n : 0;
  }
  st->body->append(ptr, size * n);
  return size * n;
}

void SetBlob(CURL* c, CURLoption opt, const std::string& s) {
  curl_blob b{const_cast<char*>(s.data()), s.size(), CURL_BLOB_COPY};
  curl_easy_setopt(c, opt, &b);
}

void SetTls(CURL* h, const ClientOptions& opts) {
  if (opts.system_cas) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  } else if (opts.ca_pem.empty()) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  } else {
    SetBlob(h, CURLOPT_CAINFO_BLOB, opts.ca_pem);
  }
}

ClientResponse Perform(CURL* h, const std::string& url, const ClientOptions& opts,
                       const std::string& method, const std::string& body,
                       const std::string& content_type, const std::string& accept,
                       const std::function<bool(std::string_view)>* on_data,
                       const std::atomic<bool>* cancel = nullptr) {
  GlobalInit();
  ClientResponse r;
  StreamState st{&r.body, on_data, cancel};
  if (cancel) {
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &st);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  } else {
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 1L);
  }
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  if (!opts.user_agent.empty()) {
    curl_easy_setopt(h, CURLOPT_USERAGENT, opts.user_agent.c_str());
  }
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnWrite);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &st);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, opts.timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, opts.connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  SetTls(h, opts);
  if (!opts.cert_pem.empty()) {
    SetBlob(h, CURLOPT_SSLCERT_BLOB, opts.cert_pem);
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    SetBlob(h, CURLOPT_SSLKEY_BLOB, opts.key_pem);
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  }
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, ("Accept: " + accept).c_str());
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    headers = curl_slist_append(headers, ("Content-Type: " + content_type).c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  } else {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, -1L);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method == "GET" ? nullptr : method.c_str());
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(h);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  r.status = static_cast<int>(status);
  char* ct = nullptr;
  curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
  if (ct) {
    r.content_type = ct;
  }
  if (rc != CURLE_OK &&
      !(on_data && (rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK))) {
    r.error = curl_easy_strerror(rc);
    if (rc != CURLE_OPERATION_TIMEDOUT || !on_data) {
      r.status = r.status ? r.status : 0;
    }
  }
  return r;
}

struct SendState {
  CURL* h;
  ClientResponse* r;
  const ClientRequest* req;
  int status = -1;  // of the response whose body is arriving, read once per response
  bool aborted = false;
};

// A status line starts each response's headers (several when redirects are
// followed); only the last response's headers are kept.
size_t OnSendHeader(char* ptr, size_t size, size_t n, void* user) {
  auto* st = static_cast<SendState*>(user);
  std::string_view line(ptr, size * n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  if (line.substr(0, 5) == "HTTP/") {
    st->r->headers.clear();
    st->status = -1;
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    st->r->headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  return size * n;
}

size_t OnSendData(char* ptr, size_t size, size_t n, void* user) {
  auto* st = static_cast<SendState*>(user);
  if (st->status < 0) {
    long status = 0;
    curl_easy_getinfo(st->h, CURLINFO_RESPONSE_CODE, &status);
    st->status = static_cast<int>(status);
  }
  std::string_view data(ptr, size * n);
  if (st->req->on_data && st->status >= 200 && st->status < 300) {
    if (!st->req->on_data(data)) {
      st->aborted = true;
      return 0;
    }
    return size * n;
  }
  // Error bodies are kept for the message, but not without bound.
  if (st->r->body.size() < (1 << 20)) {
    st->r->body.append(data);
  }
  return size * n;
}

}  // namespace

std::string ClientResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) {
      return v;
    }
  }
  return "";
}

Client::Client(std::string base_url, ClientOptions opts)
    : base_(std::move(base_url)), opts_(std::move(opts)) {
  GlobalInit();
  handle_ = curl_easy_init();
}

Client::~Client() {
  if (handle_) {
    curl_easy_cleanup(static_cast<CURL*>(handle_));
  }
}

Client::Client(Client&& o) noexcept
    : base_(std::move(o.base_)), opts_(std::move(o.opts_)), handle_(o.handle_) {
  o.handle_ = nullptr;
}

ClientResponse Client::Do(const std::string& method, const std::string& path,
                          const std::string& body, const std::string& content_type,
                          const std::string& accept) {
  return Perform(static_cast<CURL*>(handle_), base_ + path, opts_, method, body, content_type,
                 accept, nullptr);
}

ClientResponse Client::Stream(const std::string& path,
                              const std::function<bool(std::string_view)>& on_data,
                              const std::atomic<bool>* cancel) {
  return Perform(static_cast<CURL*>(handle_), base_ + path, opts_, "GET", "", "",
                 "application/json", &on_data, cancel);
}

ClientResponse Client::Send(const ClientRequest& req) {
  auto* h = static_cast<CURL*>(handle_);
  ClientResponse r;
  SendState st{h, &r, &req};
  std::string url = req.url.find("://") != std::string::npos ? req.url : base_ + req.url;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnSendData);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &st);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnSendHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &st);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, req.follow_redirects ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
  // Registries redirect blob downloads to storage that must not receive their
  // credentials; curl drops Authorization when the host changes unless told otherwise.
  curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
  long timeout = req.timeout_ms < 0 ? opts_.timeout_ms : req.timeout_ms;
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, timeout == 0 ? 1024L : 0L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, timeout == 0 ? 60L : 0L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, opts_.connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  SetTls(h, opts_);
  if (!opts_.cert_pem.empty()) {
    SetBlob(h, CURLOPT_SSLCERT_BLOB, opts_.cert_pem);
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    SetBlob(h, CURLOPT_SSLKEY_BLOB, opts_.key_pem);
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  }
  curl_slist* headers = nullptr;
  for (const auto& [k, v] : req.headers) {
    headers = curl_slist_append(headers, (k + ": " + v).c_str());
  }
  if (req.method == "GET" || req.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, -1L);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_NOBODY, req.method == "HEAD" ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, nullptr);
  } else {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    // curl would otherwise add `Expect: 100-continue` to large bodies and wait for it.
    headers = curl_slist_append(headers, "Expect:");
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(h);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  // Leave the handle as Do and Stream expect it.
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, nullptr);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, nullptr);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 0L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 0L);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  r.status = static_cast<int>(status);
  char* ct = nullptr;
  curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
  if (ct) {
    r.content_type = ct;
  }
  char* eff = nullptr;
  curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
  if (eff) {
    r.effective_url = eff;
  }
  if (rc != CURLE_OK) {
    r.error = st.aborted ? "aborted by the receiver" : curl_easy_strerror(rc);
  }
  return r;
}

}  // namespace minik::http
