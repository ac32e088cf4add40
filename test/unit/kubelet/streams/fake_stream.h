#pragma once
// In-memory connections for the stream protocol tests: a pair of RawStream
// ends joined by two pipes, and a ResponseWriter whose Upgrade hands out one
// end while the test keeps the other.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "common/http.h"

namespace minik::testing {

// One direction of bytes.
class Pipe {
 public:
  void Write(std::string_view data) {
    std::lock_guard lock(mu_);
    if (!closed_) {
      data_.append(data);
    }
    cv_.notify_all();
  }
  // Blocks for bytes; 0 once closed and drained.
  size_t Read(char* buf, size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !data_.empty() || closed_; });
    size_t k = std::min(n, data_.size());
    std::copy_n(data_.data(), k, buf);
    data_.erase(0, k);
    return k;
  }
  bool WaitReadable(int timeout_ms) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                        [&] { return !data_.empty() || closed_; });
  }
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  bool closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string data_;
  bool closed_ = false;
};

class PipeStream : public http::RawStream {
 public:
  PipeStream(std::shared_ptr<Pipe> in, std::shared_ptr<Pipe> out)
      : in_(std::move(in)), out_(std::move(out)) {}
  ~PipeStream() override { Close(); }
  size_t Read(char* buf, size_t n) override { return in_->Read(buf, n); }
  bool Write(std::string_view data) override {
    if (out_->closed()) {
      return false;
    }
    out_->Write(data);
    return true;
  }
  bool WaitReadable(int timeout_ms) override { return in_->WaitReadable(timeout_ms); }
  void Close() override {
    in_->Close();
    out_->Close();
  }

  // Test helpers: everything that arrives within `timeout_ms`.
  std::string ReadFor(int timeout_ms) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      if (!in_->WaitReadable(std::max(left, 1))) {
        break;
      }
      char buf[65536];
      size_t n = in_->Read(buf, sizeof buf);
      if (n == 0) {
        break;
      }
      out.append(buf, n);
    }
    return out;
  }

 private:
  std::shared_ptr<Pipe> in_, out_;
};

inline std::pair<std::unique_ptr<PipeStream>, std::unique_ptr<PipeStream>> MakePipePair() {
  auto a = std::make_shared<Pipe>();
  auto b = std::make_shared<Pipe>();
  return {std::make_unique<PipeStream>(a, b), std::make_unique<PipeStream>(b, a)};
}

// Records what a handler answered; Upgrade hands out the server end of a pipe
// pair and keeps the client end for the test.
class FakeResponseWriter : public http::ResponseWriter {
 public:
  FakeResponseWriter() {
    auto ends = MakePipePair();
    server_ = std::move(ends.first);
    client = std::move(ends.second);
  }
  void Send(int s, const http::Headers& h, std::string b) override {
    status = s;
    headers = h;
    body = std::move(b);
    sent_ = true;
  }
  bool StartStream(int, const http::Headers&) override { return false; }
  bool WriteChunk(std::string_view) override { return false; }
  void EndStream() override {}
  bool ClientGone() override { return false; }
  bool sent() const override { return sent_; }
  std::unique_ptr<http::RawStream> Upgrade(int s, const http::Headers& h) override {
    status = s;
    headers = h;
    sent_ = true;
    return std::move(server_);
  }

  std::atomic<int> status{0};
  http::Headers headers;
  std::string body;
  std::unique_ptr<PipeStream> client;

 private:
  std::unique_ptr<PipeStream> server_;
  bool sent_ = false;
};

}  // namespace minik::testing
