#include "api/printers.h"

#include "common/clock.h"

namespace minik::api {

std::string HumanDuration(long long seconds) {
  if (seconds < -1) {
    return "<invalid>";
  }
  if (seconds < 0) {
    return "0s";
  }
  if (seconds < 120) {
    return std::to_string(seconds) + "s";
  }
  long long minutes = seconds / 60;
  if (minutes < 10) {
    long long s = seconds % 60;
    return s == 0 ? std::to_string(minutes) + "m"
                  : std::to_string(minutes) + "m" + std::to_string(s) + "s";
  }
  if (minutes < 180) {
    return std::to_string(minutes) + "m";
  }
  long long hours = seconds / 3600;
  if (hours < 8) {
    long long m = minutes % 60;
    return m == 0 ? std::to_string(hours) + "h"
                  : std::to_string(hours) + "h" + std::to_string(m) + "m";
  }
  if (hours < 48) {
    return std::to_string(hours) + "h";
  }
  if (hours < 24 * 8) {
    long long h = hours % 24;
    return h == 0 ? std::to_string(hours / 24) + "d"
                  : std::to_string(hours / 24) + "d" + std::to_string(h) + "h";
  }
  if (hours < 24 * 365 * 2) {
    return std::to_string(hours / 24) + "d";
  }
  if (hours < 24 * 365 * 8) {
    long long dy = (hours / 24) % 365;
    return dy == 0 ? std::to_string(hours / 24 / 365) + "y"
                   : std::to_string(hours / 24 / 365) + "y" + std::to_string(dy) + "d";
  }
  return std::to_string(hours / 24 / 365) + "y";
}

std::string Age(const json& timestamp) {
  SystemTime t;
  if (!timestamp.is_string() || !ParseTime(timestamp.get<std::string>(), &t)) {
    return "<unknown>";
  }
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(Now() - t).count();
  return HumanDuration(secs);
}

std::string Join(const json& strings, const std::string& sep, const std::string& empty) {
  std::string out;
  if (strings.is_array()) {
    for (const auto& s : strings) {
      if (s.is_string()) {
        out += (out.empty() ? "" : sep) + s.get<std::string>();
      }
    }
  }
  return out.empty() ? empty : out;
}

std::string FormatLabels(const json& labels, const std::string& empty) {
  std::string out;
  if (labels.is_object()) {
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      out += (out.empty() ? "" : ",") + it.key() + "=" +
             (it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
    }
  }
  return out.empty() ? empty : out;
}

std::string FormatSelector(const json& selector) {
  if (!selector.is_object()) {
    return "<none>";
  }
  std::string out;
  if (auto ml = selector.find("matchLabels"); ml != selector.end() && ml->is_object()) {
    out = FormatLabels(*ml, "");
  }
  if (auto me = selector.find("matchExpressions"); me != selector.end() && me->is_array()) {
    for (const auto& e : *me) {
      std::string key = e.value("key", "");
      std::string op = e.value("operator", "");
      std::string vals = Join(e.value("values", json::array()), ",", "");
      std::string part;
      if (op == "In") {
        part = key + " in (" + vals + ")";
      } else if (op == "NotIn") {
        part = key + " notin (" + vals + ")";
      } else if (op == "Exists") {
        part = key;
      } else if (op == "DoesNotExist") {
        part = "!" + key;
      }
      out += (out.empty() ? "" : ",") + part;
    }
  }
  return out.empty() ? "<none>" : out;
}

int64_t Int(const json& obj, const char* dotted, int64_t def) {
  const json* v = Find(obj, dotted);
  return v && v->is_number_integer() ? v->get<int64_t>() : def;
}

std::string PodStatusReason(const json& pod) {
  const json& status = pod.contains("status") ? pod["status"] : json::object();
  std::string reason = status.value("phase", "");
  if (status.contains("reason") && status["reason"].is_string() &&
      !status["reason"].get<std::string>().empty()) {
    reason = status["reason"];
  }
  bool initializing = false;
  const json init_specs =
      Find(pod, "spec.initContainers") ? *Find(pod, "spec.initContainers") : json::array();
  const json init_statuses = status.value("initContainerStatuses", json::array());
  for (size_t i = 0; i < init_statuses.size(); ++i) {
    const json& c = init_statuses[i];
    const json state = c.value("state", json::object());
    bool restartable =
        i < init_specs.size() && init_specs[i].value("restartPolicy", "") == "Always";
    if (state.contains("terminated") && state["terminated"].value("exitCode", 0) == 0) {
      continue;
    }
    if (restartable && c.value("started", false)) {
      continue;
    }
    if (state.contains("terminated")) {
      const json& t = state["terminated"];
      std::string r = t.value("reason", "");
      if (r.empty()) {
        r = t.value("signal", 0) != 0 ? "Signal:" + std::to_string(t.value("signal", 0))
                                      : "ExitCode:" + std::to_string(t.value("exitCode", 0));
      }
      reason = "Init:" + r;
    } else if (state.contains("waiting") && !state["waiting"].value("reason", "").empty() &&
               state["waiting"].value("reason", "") != "PodInitializing") {
      reason = "Init:" + state["waiting"].value("reason", "");
    } else {
      reason = "Init:" + std::to_string(i) + "/" + std::to_string(init_specs.size());
    }
    initializing = true;
    break;
  }
  if (!initializing) {
    bool has_running = false;
    const json statuses = status.value("containerStatuses", json::array());
    for (auto it = statuses.rbegin(); it != statuses.rend(); ++it) {
      const json state = it->value("state", json::object());
      if (state.contains("waiting") && !state["waiting"].value("reason", "").empty()) {
        reason = state["waiting"].value("reason", "");
      } else if (state.contains("terminated")) {
        const json& t = state["terminated"];
        std::string r = t.value("reason", "");
        if (r.empty()) {
          r = t.value("signal", 0) != 0 ? "Signal:" + std::to_string(t.value("signal", 0))
                                        : "ExitCode:" + std::to_string(t.value("exitCode", 0));
        }
        reason = r;
      } else if (it->value("ready", false) && state.contains("running")) {
        has_running = true;
      }
    }
    if (reason == "Completed" && has_running) {
      bool ready = false;
      for (const auto& c : status.value("conditions", json::array())) {
        if (c.value("type", "") == "Ready" && c.value("status", "") == "True") {
          ready = true;
        }
      }
      reason = ready ? "Running" : "NotReady";
    }
  }
  if (pod.contains("metadata") && pod["metadata"].contains("deletionTimestamp") &&
      !pod["metadata"]["deletionTimestamp"].is_null()) {
    reason = status.value("reason", "") == "NodeLost" ? "Unknown" : "Terminating";
  }
  return reason;
}

}  // namespace minik::api
