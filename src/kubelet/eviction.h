#pragma once
// Node-pressure eviction, as the kubelet's eviction manager does it: hard
// thresholds on eviction signals (`--eviction-hard`, Kubernetes' syntax and
// defaults), observed every housekeeping interval; a crossed threshold puts
// the node under MemoryPressure or DiskPressure and evicts pods one at a time,
// ranked the way Kubernetes ranks them, until the signal recovers.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace minik::kubelet::eviction {

enum class Signal {
  kMemoryAvailable,    // memory.available: MemAvailable of the node
  kNodefsAvailable,    // nodefs.available: free bytes of the node's directory
  kNodefsInodesFree,   // nodefs.inodesFree
  kImagefsAvailable,   // imagefs.available: free bytes of the image store
  kImagefsInodesFree,  // imagefs.inodesFree
};
const char* SignalName(Signal s);
// The resource a signal measures, as eviction messages and pod requests name it.
const char* SignalResource(Signal s);  // "memory", "ephemeral-storage" or "inodes"
bool IsMemory(Signal s);

struct Threshold {
  Signal signal;
  int64_t quantity = -1;  // bytes (or inodes), or -1 when a percentage
  double percentage = 0;  // of capacity, 0..100
  std::string text;       // as written, for messages
  // The value below which the threshold is crossed, given the capacity.
  int64_t Value(int64_t capacity) const;
};

// "memory.available<100Mi,nodefs.available<10%": a comma-separated list of
// SIGNAL<QUANTITY or SIGNAL<PERCENT%. Throws Error naming the bad entry.
std::vector<Threshold> ParseThresholds(const std::string& spec);
constexpr const char* kDefaultHard =
    "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%";

struct Observation {
  int64_t available = 0;
  int64_t capacity = 0;
};
// The node's signals: memory from /proc/meminfo, nodefs from the filesystem
// of `node_dir`, imagefs from that of `images_dir`.
std::map<Signal, Observation> ObserveNode(const std::string& node_dir,
                                          const std::string& images_dir);

// The thresholds that `observed` crosses.
std::vector<Threshold> Crossed(const std::vector<Threshold>& thresholds,
                               const std::map<Signal, Observation>& observed);

// A pod that may be evicted, with its use of the resource under pressure.
struct Candidate {
  std::string uid;
  int64_t usage = 0;    // bytes
  int64_t request = 0;  // bytes requested (sum of its containers)
  int32_t priority = 0;
};
// The order in which to evict: pods using more than they requested first, then
// lower priority, then the largest use above the request.
void Rank(std::vector<Candidate>* pods);

// What a directory tree holds on its own filesystem (as `du -x`: mounts below
// it, such as a container's root filesystem or a tmpfs, are not counted).
struct DiskUse {
  int64_t bytes = 0;
  int64_t inodes = 0;
};
DiskUse DiskUsage(const std::string& dir);

}  // namespace minik::kubelet::eviction
