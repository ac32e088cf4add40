#pragma once
// The Runtime seam: an OCI runtime binary (runc by default, crun when it is
// installed and chosen) driving containers from OCI bundles. Only the kubelet
// uses it; every call goes through the exec helper, so failures read like
// `runc start web-7f9c: exit 1: <stderr>`.

#include <memory>
#include <string>
#include <vector>

namespace minik::kubelet {

struct ContainerState {
  std::string id;
  std::string status;  // "created", "running", "stopped", "paused"; "" when unknown
  int pid = 0;
  std::string bundle;
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  virtual std::string name() const = 0;  // "runc", "crun"
  // The runtime's version line, for the node's containerRuntimeVersion.
  virtual std::string Version() const = 0;
  virtual void Start(const std::string& id) = 0;
  virtual void Kill(const std::string& id, int signal, bool all = false) = 0;
  // Removes a stopped container (force: also a running one).
  virtual void Delete(const std::string& id, bool force = false) = 0;
  virtual ContainerState State(const std::string& id) const = 0;
  virtual std::vector<ContainerState> List() const = 0;
  // The argv that creates a container from `bundle` (run by the container
  // shim, which owns the container's stdio), and that runs `process.json` in
  // a running container (`exec`).
  virtual std::vector<std::string> CreateArgv(const std::string& id, const std::string& bundle,
                                              const std::string& pid_file) const = 0;
  virtual std::vector<std::string> ExecArgv(const std::string& id, const std::string& process_json,
                                            bool tty) const = 0;
};

// `name` is "runc" or "crun" (or "" for the first installed); `root` is the
// runtime's state directory (kept per node). Throws minik::Error when absent.
std::unique_ptr<Runtime> NewOciRuntime(const std::string& name, const std::string& root);

}  // namespace minik::kubelet
