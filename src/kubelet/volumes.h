#pragma once
// Pod volumes on the node: emptyDir (disk, or tmpfs for medium Memory),
// hostPath (with its type checked), configMap, secret, downwardAPI and
// projected (files written atomically through a `..data` symlink, as the
// kubelet does, and refreshed when the sources change), and
// persistentVolumeClaim (the bound volume's hostPath). subPath mounts are
// resolved inside the volume and may not escape it through `..` or symlinks.

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "client/client.h"
#include "common/json.h"

namespace minik::kubelet {

// Service account tokens a pod's projected volumes hold, by volume, path,
// audience and lifetime. A token is requested again when 80% of its
// lifetime or 24 hours have passed, as the kubelet's token manager does.
class TokenCache {
 public:
  struct Entry {
    std::string token;
    std::chrono::system_clock::time_point issued, expires;
  };
  // The cached token for `key`, or nullopt when absent or due for renewal.
  std::optional<std::string> Fresh(const std::string& key,
                                   std::chrono::system_clock::time_point now) const;
  void Put(const std::string& key, Entry e);

 private:
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

struct VolumeContext {
  std::shared_ptr<client::Client> client;
  std::string pod_dir;
  TokenCache* tokens = nullptr;  // null: a new token on every call
};

// A prepared volume: where it is on the node.
struct PreparedVolume {
  std::string path;
  bool read_only = false;
};

// Prepares every volume of `pod` (idempotent; refreshes projected contents).
// Throws minik::Error naming the volume when one cannot be made, e.g. a
// configMap that does not exist (unless optional).
std::map<std::string, PreparedVolume> PrepareVolumes(const VolumeContext& ctx, const json& pod);
// Unmounts what PrepareVolumes mounted (memory emptyDirs) and removes the volumes.
void CleanupVolumes(const std::string& pod_dir);

// The host path for a volume mount: the volume's path, or the subPath inside
// it (created as a directory when missing). Throws when the subPath escapes.
std::string ResolveSubPath(const std::string& volume_path, const std::string& sub_path);

// The value of a downward API fieldRef (metadata.name, metadata.labels['x'], status.podIP, ...).
std::string FieldRefValue(const json& pod, const std::string& field_path);

}  // namespace minik::kubelet
