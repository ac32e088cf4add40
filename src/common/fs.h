#pragma once
// Small file helpers whose errors name the path and the operation.

#include <sys/types.h>
#include <string>

namespace minik::fs {

std::string ReadFile(const std::string& path);
// Writes `data` to `path` through a temporary file and rename, so readers see
// the old or the new content, never half of it; the file gets `mode`.
void WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode = 0644);
bool Exists(const std::string& path);
void MakeDirs(const std::string& path, mode_t mode = 0755);
void RemoveAll(const std::string& path);
std::string HomeDir();
// True when another filesystem is mounted at `path` (its device differs from
// its parent's: overlay, tmpfs, proc; not a bind mount within one filesystem).
// Cheaper than reading /proc/self/mounts, which is long on a busy node.
bool IsMountPoint(const std::string& path);

}  // namespace minik::fs
