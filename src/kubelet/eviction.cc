#include "kubelet/eviction.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/quantity.h"
#include "common/error.h"

namespace minik::kubelet::eviction {

namespace {

const std::pair<Signal, const char*> kSignals[] = {
    {Signal::kMemoryAvailable, "memory.available"},
    {Signal::kNodefsAvailable, "nodefs.available"},
    {Signal::kNodefsInodesFree, "nodefs.inodesFree"},
    {Signal::kImagefsAvailable, "imagefs.available"},
    {Signal::kImagefsInodesFree, "imagefs.inodesFree"},
};

std::string Trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t");
  size_t b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

void ObserveFs(const std::string& dir, Observation* bytes, Observation* inodes) {
  struct statvfs v;
  if (statvfs(dir.c_str(), &v) != 0) {
    return;
  }
  bytes->available = static_cast<int64_t>(v.f_bavail) * static_cast<int64_t>(v.f_frsize);
  bytes->capacity = static_cast<int64_t>(v.f_blocks) * static_cast<int64_t>(v.f_frsize);
  inodes->available = static_cast<int64_t>(v.f_favail);
  inodes->capacity = static_cast<int64_t>(v.f_files);
}

}  // namespace

const char* SignalName(Signal s) {
  for (const auto& [sig, name] : kSignals) {
    if (sig == s) {
      return name;
    }
  }
  return "?";
}

const char* SignalResource(Signal s) {
  switch (s) {
    case Signal::kMemoryAvailable:
      return "memory";
    case Signal::kNodefsInodesFree:
    case Signal::kImagefsInodesFree:
      return "inodes";
    default:
      return "ephemeral-storage";
  }
}

bool IsMemory(Signal s) {
  return s == Signal::kMemoryAvailable;
}

int64_t Threshold::Value(int64_t capacity) const {
  if (quantity >= 0) {
    return quantity;
  }
  return static_cast<int64_t>(std::llround(static_cast<double>(capacity) * percentage / 100.0));
}

std::vector<Threshold> ParseThresholds(const std::string& spec) {
  std::vector<Threshold> out;
  std::stringstream in(spec);
  std::string entry;
  while (std::getline(in, entry, ',')) {
    entry = Trim(entry);
    if (entry.empty()) {
      continue;
    }
    auto lt = entry.find('<');
    if (lt == std::string::npos) {
      throw Error("eviction threshold \"" + entry +
                  "\": expected SIGNAL<QUANTITY, e.g. memory.available<100Mi");
    }
    std::string name = Trim(entry.substr(0, lt)), value = Trim(entry.substr(lt + 1));
    Threshold t{};
    bool known = false;
    for (const auto& [sig, n] : kSignals) {
      if (name == n) {
        t.signal = sig;
        known = true;
      }
    }
    if (!known) {
      throw Error("eviction threshold \"" + entry + "\": unknown signal \"" + name +
                  "\" (known: memory.available, nodefs.available, nodefs.inodesFree, "
                  "imagefs.available, imagefs.inodesFree)");
    }
    t.text = entry;
    if (!value.empty() && value.back() == '%') {
      char* end = nullptr;
      std::string num = value.substr(0, value.size() - 1);
      double p = std::strtod(num.c_str(), &end);
      if (num.empty() || *end != '\0' || !(p >= 0 && p <= 100)) {
        throw Error("eviction threshold \"" + entry + "\": the percentage must be 0% to 100%");
      }
      t.percentage = p;
    } else {
      auto milli = api::ParseQuantityMilli(value);
      if (!milli || *milli < 0) {
        throw Error("eviction threshold \"" + entry + "\": \"" + value +
                    "\" is not a quantity (e.g. 100Mi, 1Gi) or a percentage (e.g. 10%)");
      }
      t.quantity = *milli / 1000;
    }
    out.push_back(t);
  }
  return out;
}

std::map<Signal, Observation> ObserveNode(const std::string& node_dir,
                                          const std::string& images_dir) {
  std::map<Signal, Observation> out;
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  int64_t kib = 0;
  Observation mem;
  while (meminfo >> key >> kib) {
    std::getline(meminfo, unit);
    if (key == "MemTotal:") {
      mem.capacity = kib * 1024;
    } else if (key == "MemAvailable:") {
      mem.available = kib * 1024;
    }
  }
  out[Signal::kMemoryAvailable] = mem;
  ObserveFs(node_dir, &out[Signal::kNodefsAvailable], &out[Signal::kNodefsInodesFree]);
  ObserveFs(images_dir, &out[Signal::kImagefsAvailable], &out[Signal::kImagefsInodesFree]);
  return out;
}

std::vector<Threshold> Crossed(const std::vector<Threshold>& thresholds,
                               const std::map<Signal, Observation>& observed) {
  std::vector<Threshold> out;
  for (const auto& t : thresholds) {
    auto it = observed.find(t.signal);
    if (it == observed.end() || it->second.capacity <= 0) {
      continue;  // not observable here
    }
    if (it->second.available < t.Value(it->second.capacity)) {
      out.push_back(t);
    }
  }
  return out;
}

void Rank(std::vector<Candidate>* pods) {
  std::stable_sort(pods->begin(), pods->end(), [](const Candidate& a, const Candidate& b) {
    bool a_over = a.usage > a.request, b_over = b.usage > b.request;
    if (a_over != b_over) {
      return a_over;
    }
    if (a.priority != b.priority) {
      return a.priority < b.priority;
    }
    return a.usage - a.request > b.usage - b.request;
  });
}

DiskUse DiskUsage(const std::string& dir) {
  DiskUse u;
  struct stat top;
  if (lstat(dir.c_str(), &top) != 0) {
    return u;
  }
  std::error_code ec;
  namespace stdfs = std::filesystem;
  for (auto it = stdfs::recursive_directory_iterator(dir, ec);
       !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    if (lstat(it->path().c_str(), &st) != 0) {
      continue;
    }
    if (st.st_dev != top.st_dev) {
      it.disable_recursion_pending();  // another filesystem: a mount
      continue;
    }
    u.bytes += static_cast<int64_t>(st.st_blocks) * 512;
    u.inodes += 1;
  }
  return u;
}

}  // namespace minik::kubelet::eviction
