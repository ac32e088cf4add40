// The `native` driver: the node is the host itself, with no isolation. The
// node's files live under the profile (`<profile>/node`), its node-agent is a
// session leader whose PID is kept in `<profile>/node/node-agent.pid`.

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "common/json.h"
#include "drivers/driver.h"

namespace minik::drivers {
namespace {

std::string NodeDir(const std::string& profile_dir) {
  return profile_dir + "/node";
}
std::string PidFile(const std::string& profile_dir) {
  return NodeDir(profile_dir) + "/node-agent.pid";
}

int ReadPid(const std::string& profile_dir) {
  try {
    return std::stoi(fs::ReadFile(PidFile(profile_dir)));
  } catch (const std::exception&) {
    return 0;
  }
}

// The PID file names our node-agent only if that process runs minik node-agent.
bool IsOurAgent(int pid, const std::string& profile_dir) {
  if (!exec::ProcessAlive(pid)) {
    return false;
  }
  std::string cmdline;
  try {
    cmdline = fs::ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  } catch (const Error&) {
    return false;
  }
  return cmdline.find("node-agent") != std::string::npos &&
         cmdline.find(NodeDir(profile_dir)) != std::string::npos;
}

class NativeDriver : public Driver {
 public:
  std::string name() const override { return "native"; }

  Availability Check() const override {
    Availability a;
    a.installed = true;
    a.healthy = geteuid() == 0;
    if (!a.healthy) {
      a.reason = "the native driver runs containers on this host and needs root";
      a.fix = "run `sudo minik start --driver=native`";
    }
    return a;
  }

  void Start(const NodeConfig& c) override {
    std::string node = NodeDir(c.profile_dir);
    if (IsOurAgent(ReadPid(c.profile_dir), c.profile_dir)) {
      return;  // already running
    }
    fs::MakeDirs(node + "/certs", 0700);
    fs::MakeDirs(node + "/logs");
    fs::WriteFileAtomic(node + "/certs/ca.crt", c.ca_cert_pem, 0644);
    fs::WriteFileAtomic(node + "/certs/ca.key", c.ca_key_pem, 0600);
    exec::Spawn spec;
    spec.argv = {c.minik_binary,     "node-agent",
                 "--node-dir",       node,
                 "--apiserver-port", std::to_string(c.apiserver_host_port),
                 "--store",          c.store,
                 "--hollow-nodes",   std::to_string(c.hollow_nodes),
                 "--node-name",      c.profile,
                 "--kubelet-port",   std::to_string(c.kubelet_port)};
    if (!c.kubelet) {
      spec.argv.push_back("--no-kubelet");
    }
    for (const auto& e : c.extra_config) {
      spec.argv.push_back("--extra-config=" + e);
    }
    spec.log_file = node + "/logs/node-agent.log";
    spec.new_session = true;
    int pid = exec::StartProcess(spec);
    fs::WriteFileAtomic(PidFile(c.profile_dir), std::to_string(pid) + "\n");
    // Fail fast when the agent dies at once (bad flags, unwritable files).
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (!exec::ProcessAlive(pid)) {
      throw Error("the node-agent exited right after starting; see " + spec.log_file);
    }
  }

  void Stop(const std::string& profile, const std::string& profile_dir) override {
    int pid = ReadPid(profile_dir);
    if (!IsOurAgent(pid, profile_dir)) {
      return;
    }
    kill(pid, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (exec::ProcessAlive(pid)) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::unlink(PidFile(profile_dir).c_str());
  }

  void Delete(const std::string& profile, const std::string& profile_dir) override {
    Stop(profile, profile_dir);
    // The node-agent cleans up when it stops; if it died, do it here.
    if (fs::Exists(NodeDir(profile_dir) + "/run")) {
      exec::Command cleanup;
      cleanup.argv = {exec::SelfExe(),      "node-cleanup", "--node-dir",
                      NodeDir(profile_dir), "--node-name",  profile};
      exec::Result r = exec::Run(cleanup);
      if (!r.ok()) {
        throw Error("clean up node " + profile + ": " + exec::Describe(cleanup, r));
      }
    }
    fs::RemoveAll(NodeDir(profile_dir));
  }

  NodeStatus Status(const std::string& profile, const std::string& profile_dir) override {
    NodeStatus s;
    if (!fs::Exists(NodeDir(profile_dir))) {
      return s;
    }
    int pid = ReadPid(profile_dir);
    s.host = IsOurAgent(pid, profile_dir) ? NodeState::kRunning : NodeState::kStopped;
    if (s.host == NodeState::kRunning) {
      try {
        json st = json::parse(fs::ReadFile(NodeDir(profile_dir) + "/status.json"));
        json comps = st.value("components", json::object());
        for (auto& [name, c] : comps.items()) {
          s.components.emplace_back(name, c.value("state", "Unknown"));
        }
      } catch (const std::exception&) {
        s.message = "the node-agent has not reported yet";
      }
    }
    return s;
  }

  std::string LogHint(const std::string& profile, const std::string& profile_dir) override {
    return NodeDir(profile_dir) + "/logs/";
  }
};

}  // namespace

std::unique_ptr<Driver> NewNativeDriver() {
  return std::make_unique<NativeDriver>();
}

}  // namespace minik::drivers
