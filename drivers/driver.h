#pragma once
// The Driver seam: where a node lives. A driver creates a node for a profile,
// starts `minik node-agent` in it, stops and deletes it, and tells what state
// it is in. Which nodes exist is read back from the driver itself (processes
// and files for `native`, container labels for `docker`, VM files for `qemu`).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace minik::drivers {

// Whether a driver can run here, and what the user can do when it cannot.
struct Availability {
  bool installed = false;
  bool healthy = false;
  std::string reason;  // why not, in one line
  std::string fix;     // what to run or change, in one line
  bool usable() const { return installed && healthy; }
};

struct NodeConfig {
  std::string profile;
  std::string profile_dir;   // $MINIK_HOME/profiles/<profile>
  std::string minik_binary;  // the binary to run inside the node
  std::string ca_cert_pem, ca_key_pem;
  uint16_t apiserver_host_port = 0;  // where the host reaches the API server (127.0.0.1)
  std::string store = "sqlite";
  int hollow_nodes = 0;
  bool kubelet = true;
  uint16_t kubelet_port = 10250;
  // Flags for the node's components, "COMPONENT.FLAG=VALUE" (minik start --extra-config).
  std::vector<std::string> extra_config;
};

enum class NodeState { kNonexistent, kStopped, kStarting, kRunning, kError };
const char* NodeStateName(NodeState s);

struct NodeStatus {
  NodeState host = NodeState::kNonexistent;
  // Components the node-agent reports: name -> "Running", "Restarting", "Stopped".
  std::vector<std::pair<std::string, std::string>> components;
  std::string message;
};

class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::string name() const = 0;
  virtual Availability Check() const = 0;
  // Creates the node when it does not exist and starts its node-agent.
  virtual void Start(const NodeConfig& config) = 0;
  // Stops every process of the node and keeps its data.
  virtual void Stop(const std::string& profile, const std::string& profile_dir) = 0;
  // Stops the node and removes it with all its data.
  virtual void Delete(const std::string& profile, const std::string& profile_dir) = 0;
  virtual NodeStatus Status(const std::string& profile, const std::string& profile_dir) = 0;
  // Where the node's logs are, for error messages.
  virtual std::string LogHint(const std::string& profile, const std::string& profile_dir) = 0;
};

// Drivers by name; a name cannot be registered twice.
std::unique_ptr<Driver> NewDriver(const std::string& name);
std::vector<std::string> DriverNames();
// The best usable driver here, in order of preference, with the reasons the
// others were passed over.
std::string PickDriver(std::vector<std::string>* passed_over);

}  // namespace minik::drivers
