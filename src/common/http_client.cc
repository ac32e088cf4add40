#include "common/http_client.h"

#include <curl/curl.h>

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
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnWrite);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &st);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, opts.timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, opts.connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  if (opts.ca_pem.empty()) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  } else {
    SetBlob(h, CURLOPT_CAINFO_BLOB, opts.ca_pem);
  }
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

}  // namespace

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

}  // namespace minik::http
