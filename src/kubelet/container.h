#pragma once
// One container of a pod on disk: its directories, its OCI bundle (the
// config.json a runtime reads), and how its state is read back from the
// shim's files and the runtime.

#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "kubelet/images/image_store.h"

namespace minik::kubelet {

// Where a node keeps things (all under the node's root).
struct Paths {
  std::string root;
  std::string node;  // the node's name: its pods' cgroups are under /minik/<node>
  std::string CgroupParent() const { return "/minik/" + node; }
  std::string PodCgroup(const std::string& uid) const { return CgroupParent() + "/pod" + uid; }
  std::string PodDir(const std::string& uid) const { return root + "/kubelet/pods/" + uid; }
  std::string Netns(const std::string& uid) const { return root + "/run/netns/" + uid; }
  std::string RuntimeRoot() const { return root + "/run/runtime"; }
  std::string ImagesDir() const { return root + "/images"; }
  std::string CniDir() const { return root + "/cni"; }
  // /var/log/pods/<ns>_<name>_<uid>/<container>/<attempt>.log, under the node's root.
  std::string PodLogDir(const std::string& ns, const std::string& name,
                        const std::string& uid) const {
    return root + "/log/pods/" + ns + "_" + name + "_" + uid;
  }
  std::string ContainerDir(const std::string& uid, const std::string& name, int attempt) const {
    return PodDir(uid) + "/containers/" + name + "/" + std::to_string(attempt);
  }
};

// The runtime's id of a container attempt.
std::string ContainerId(const std::string& pod_uid, const std::string& name, int attempt);

struct Mount {
  std::string source, destination;
  bool read_only = false;
  std::string type = "bind";  // or tmpfs
  std::vector<std::string> options;
};

struct ContainerPlan {
  std::string id;
  std::string dir;  // state, bundle and rootfs
  std::string log_path;
  std::vector<std::string> args;  // after merging with the image's entrypoint and cmd
  std::vector<std::string> env;
  std::string cwd = "/";
  int uid = 0, gid = 0;
  std::vector<int> extra_gids;
  std::vector<Mount> mounts;
  std::string hostname;
  std::string netns;
  bool privileged = false;
  bool read_only_rootfs = false;
  std::vector<std::string> caps_add, caps_drop;
  int64_t memory_limit = 0;     // bytes, 0 = none
  int64_t cpu_limit_milli = 0;  // 0 = none
  int64_t cpu_request_milli = 0;
  std::string cgroup_path;
  bool stdin_open = false;
  bool tty = false;
};

// Command and args as Kubernetes merges them with the image: command replaces
// the entrypoint (and drops the image's cmd), args replace the cmd.
std::vector<std::string> MergeCommand(const json& container, const images::ImageConfig& image);
// $(VAR) references expanded from `env` as Kubernetes does ($$ escapes).
std::string ExpandVars(const std::string& s,
                       const std::vector<std::pair<std::string, std::string>>& env);

// Writes `<dir>/config.json` for the plan; the rootfs is `<dir>/rootfs`.
void WriteBundle(const ContainerPlan& plan);

// Mounts the image's layers as the container's rootfs (overlayfs, upper and
// work directories under `dir`); idempotent.
void MountRootfs(const std::string& dir, const std::vector<std::string>& layers);
void UnmountRootfs(const std::string& dir);

// What became of a container attempt, from its shim's files.
struct ContainerRun {
  bool created = false;
  bool exited = false;
  int pid = 0;
  int exit_code = 0;
  int signal = 0;
  std::string finished_at;
  std::string error;  // the runtime's error when creating failed
};
ContainerRun ReadRun(const std::string& dir);

// The OOM kills the memory controller counted in the cgroup `path` (relative
// to the hierarchy's root, as in the OCI spec): `oom_kill` in memory.events
// (cgroup v2) or memory.oom_control (v1). 0 when the cgroup is gone.
int OomKills(const std::string& path);
// The memory working set of the cgroup `path` (usage less inactive file
// pages, as the kubelet counts it for eviction), or -1 when it is unknown.
int64_t MemoryWorkingSet(const std::string& path);
// Removes the cgroup `path` and every cgroup below it, deepest first, in
// every mounted hierarchy (v1 and v2); cgroups that still hold processes stay.
// With `recursive` false, only `path` itself goes, and only when empty.
void RemoveCgroupTree(const std::string& path, bool recursive = true);

}  // namespace minik::kubelet
