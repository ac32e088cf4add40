#pragma once
// Events for what controllers do, as `kubectl describe` shows them. Recording
// never blocks a controller: events are queued and written by one thread;
// repeats of the same reason and message for the same object within ten
// minutes bump `count` and `lastTimestamp` of the first event.

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "client/client.h"

namespace minik::client {

class EventRecorder {
 public:
  EventRecorder(std::shared_ptr<Client> client, std::string component, std::string host = "");
  ~EventRecorder();
  // `type` is "Normal" or "Warning".
  void Event(const json& object, const std::string& type, const std::string& reason,
             const std::string& message);
  // Blocks until everything queued so far is written (tests, shutdown).
  void Flush();

 private:
  struct Item {
    // The object's involvedObject fields, not the object: a queue of a
    // thousand events must not hold a thousand pods.
    json ref;
    std::string type, reason, message;
  };
  void Run();
  void Write(const Item& item);

  std::shared_ptr<Client> client_;
  std::string component_, host_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false;
  bool busy_ = false;
  // (uid, reason, message) -> (event namespace/name, count, first seen)
  struct Seen {
    std::string ns, name;
    int count = 1;
    std::chrono::steady_clock::time_point at;
  };
  std::map<std::string, Seen> seen_;
  std::thread thread_;
};

}  // namespace minik::client
