#include <functional>
#include <map>

#include "common/error.h"
#include "driver.h"

namespace minik::drivers {

std::unique_ptr<Driver> NewNativeDriver();

namespace {

const std::map<std::string, std::function<std::unique_ptr<Driver>()>>& Factories() {
  static const std::map<std::string, std::function<std::unique_ptr<Driver>()>> f = {
      {"native", NewNativeDriver},
  };
  return f;
}

// Preference when the user does not choose: isolation first, as minikube does.
const std::vector<std::string> kPreference = {"docker", "qemu", "native"};

}  // namespace

const char* NodeStateName(NodeState s) {
  switch (s) {
    case NodeState::kNonexistent:
      return "Nonexistent";
    case NodeState::kStopped:
      return "Stopped";
    case NodeState::kStarting:
      return "Starting";
    case NodeState::kRunning:
      return "Running";
    case NodeState::kError:
      return "Error";
  }
  return "Unknown";
}

std::unique_ptr<Driver> NewDriver(const std::string& name) {
  auto it = Factories().find(name);
  if (it == Factories().end()) {
    std::string known;
    for (const auto& [n, _] : Factories()) {
      known += (known.empty() ? "" : ", ") + n;
    }
    throw Error("unknown driver '" + name + "' (available: " + known + ")");
  }
  return it->second();
}

std::vector<std::string> DriverNames() {
  std::vector<std::string> names;
  for (const auto& [n, _] : Factories()) {
    names.push_back(n);
  }
  return names;
}

std::string PickDriver(std::vector<std::string>* passed_over) {
  for (const auto& name : kPreference) {
    if (!Factories().count(name)) {
      continue;
    }
    Availability a = NewDriver(name)->Check();
    if (a.usable()) {
      return name;
    }
    if (passed_over) {
      passed_over->push_back(name + ": " + a.reason + (a.fix.empty() ? "" : " (" + a.fix + ")"));
    }
  }
  return "";
}

}  // namespace minik::drivers
