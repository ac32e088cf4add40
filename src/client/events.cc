#include "client/events.h"

#include "common/clock.h"
#include "common/log.h"

namespace minik::client {

EventRecorder::EventRecorder(std::shared_ptr<Client> client, std::string component,
                             std::string host)
    : client_(std::move(client)), component_(std::move(component)), host_(std::move(host)) {
  thread_ = std::thread([this] { Run(); });
}

EventRecorder::~EventRecorder() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void EventRecorder::Event(const json& object, const std::string& type, const std::string& reason,
                          const std::string& message) {
  std::lock_guard lock(mu_);
  if (queue_.size() > 10000) {
    return;  // a storm of events must not eat memory; drop
  }
  json ref = {{"kind", object.value("kind", "")},
              {"namespace", GetString(object, "metadata.namespace")},
              {"name", GetString(object, "metadata.name")},
              {"uid", GetString(object, "metadata.uid")},
              {"apiVersion", object.value("apiVersion", "")},
              {"resourceVersion", GetString(object, "metadata.resourceVersion")}};
  queue_.push_back(Item{std::move(ref), type, reason, message});
  cv_.notify_all();
}

void EventRecorder::Flush() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return (queue_.empty() && !busy_) || stop_; });
}

void EventRecorder::Run() {
  for (;;) {
    Item item;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) {
        return;
      }
      item = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    try {
      Write(item);
    } catch (const std::exception& e) {
      log::Debug("event {} for {}: {}", item.reason, item.ref.value("name", ""), e.what());
    }
    {
      std::lock_guard lock(mu_);
      busy_ = false;
    }
    cv_.notify_all();
  }
}

void EventRecorder::Write(const Item& item) {
  const json& ref = item.ref;
  std::string ns = ref.value("namespace", "");
  if (ns.empty()) {
    ns = "default";
  }
  std::string uid = ref.value("uid", "");
  std::string now = FormatTime(Now());
  std::string key = uid + "/" + item.reason + "/" + item.message;
  auto it = seen_.find(key);
  if (it != seen_.end() &&
      std::chrono::steady_clock::now() - it->second.at < std::chrono::minutes(10)) {
    ++it->second.count;
    try {
      client_->Patch("/api/v1/namespaces/" + it->second.ns + "/events/" + it->second.name,
                     {{"count", it->second.count}, {"lastTimestamp", now}});
      return;
    } catch (const ApiError& e) {
      if (e.code != 404) {
        throw;
      }
    }
  }
  std::string name = ref.value("name", "") + "." + RandomSuffix(10);
  json ev = {{"apiVersion", "v1"},
             {"kind", "Event"},
             {"metadata", {{"name", name}, {"namespace", ns}}},
             {"involvedObject", ref},
             {"reason", item.reason},
             {"message", item.message},
             {"source", {{"component", component_}}},
             {"firstTimestamp", now},
             {"lastTimestamp", now},
             {"count", 1},
             {"type", item.type},
             {"reportingComponent", component_},
             {"reportingInstance", host_}};
  if (!host_.empty()) {
    ev["source"]["host"] = host_;
  }
  if (ref.value("namespace", "").empty()) {
    ev["involvedObject"].erase("namespace");
  }
  client_->Post("/api/v1/namespaces/" + ns + "/events", ev);
  seen_[key] = Seen{ns, name, 1, std::chrono::steady_clock::now()};
  if (seen_.size() > 4096) {
    seen_.clear();
  }
}

}  // namespace minik::client
