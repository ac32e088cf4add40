#include "kubelet/container.h"

#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/fs.h"

namespace minik::kubelet {

std::string ContainerId(const std::string& pod_uid, const std::string& name, int attempt) {
  return pod_uid.substr(0, 13) + "-" + name + "-" + std::to_string(attempt);
}

std::vector<std::string> MergeCommand(const json& c, const images::ImageConfig& image) {
  std::vector<std::string> command, args;
  bool has_command = c.contains("command") && c["command"].is_array() && !c["command"].empty();
  bool has_args = c.contains("args") && c["args"].is_array() && !c["args"].empty();
  if (has_command) {
    for (const auto& x : c["command"]) {
      command.push_back(x.get<std::string>());
    }
  } else {
    command = image.entrypoint;
  }
  if (has_args) {
    for (const auto& x : c["args"]) {
      args.push_back(x.get<std::string>());
    }
  } else if (!has_command) {
    args = image.cmd;
  }
  command.insert(command.end(), args.begin(), args.end());
  return command;
}

std::string ExpandVars(const std::string& s,
                       const std::vector<std::pair<std::string, std::string>>& env) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '$') {
      out += '$';
      ++i;
    } else if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '(') {
      auto close = s.find(')', i + 2);
      if (close == std::string::npos) {
        out += s.substr(i);
        break;
      }
      std::string name = s.substr(i + 2, close - i - 2);
      bool found = false;
      for (auto it = env.rbegin(); it != env.rend(); ++it) {
        if (it->first == name) {
          out += it->second;
          found = true;
          break;
        }
      }
      if (!found) {
        out += s.substr(i, close - i + 1);
      }
      i = close;
    } else {
      out += s[i];
    }
  }
  return out;
}

void WriteBundle(const ContainerPlan& p) {
  static const std::vector<std::string> kDefaultCaps = {
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE"};
  static const std::vector<std::string> kAllCaps = {"CAP_CHOWN",
                                                    "CAP_DAC_OVERRIDE",
                                                    "CAP_DAC_READ_SEARCH",
                                                    "CAP_FOWNER",
                                                    "CAP_FSETID",
                                                    "CAP_KILL",
                                                    "CAP_SETGID",
                                                    "CAP_SETUID",
                                                    "CAP_SETPCAP",
                                                    "CAP_LINUX_IMMUTABLE",
                                                    "CAP_NET_BIND_SERVICE",
                                                    "CAP_NET_BROADCAST",
                                                    "CAP_NET_ADMIN",
                                                    "CAP_NET_RAW",
                                                    "CAP_IPC_LOCK",
                                                    "CAP_IPC_OWNER",
                                                    "CAP_SYS_MODULE",
                                                    "CAP_SYS_RAWIO",
                                                    "CAP_SYS_CHROOT",
                                                    "CAP_SYS_PTRACE",
                                                    "CAP_SYS_PACCT",
                                                    "CAP_SYS_ADMIN",
                                                    "CAP_SYS_BOOT",
                                                    "CAP_SYS_NICE",
                                                    "CAP_SYS_RESOURCE",
                                                    "CAP_SYS_TIME",
                                                    "CAP_SYS_TTY_CONFIG",
                                                    "CAP_MKNOD",
                                                    "CAP_LEASE",
                                                    "CAP_AUDIT_WRITE",
                                                    "CAP_AUDIT_CONTROL",
                                                    "CAP_SETFCAP",
                                                    "CAP_MAC_OVERRIDE",
                                                    "CAP_MAC_ADMIN",
                                                    "CAP_SYSLOG",
                                                    "CAP_WAKE_ALARM",
                                                    "CAP_BLOCK_SUSPEND",
                                                    "CAP_AUDIT_READ"};
  std::vector<std::string> caps = p.privileged ? kAllCaps : kDefaultCaps;
  auto norm = [](std::string c) { return c.rfind("CAP_", 0) == 0 ? c : "CAP_" + c; };
  for (const auto& a : p.caps_add) {
    std::string c = norm(a);
    if (c == "CAP_ALL") {
      caps = kAllCaps;
    } else if (std::find(caps.begin(), caps.end(), c) == caps.end()) {
      caps.push_back(c);
    }
  }
  for (const auto& d : p.caps_drop) {
    std::string c = norm(d);
    if (c == "CAP_ALL") {
      caps.clear();
    } else {
      caps.erase(std::remove(caps.begin(), caps.end(), c), caps.end());
    }
  }
  json mounts = json::array(
      {{{"destination", "/proc"},
        {"type", "proc"},
        {"source", "proc"},
        {"options", {"nosuid", "noexec", "nodev"}}},
       {{"destination", "/dev"},
        {"type", "tmpfs"},
        {"source", "tmpfs"},
        {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
       {{"destination", "/dev/pts"},
        {"type", "devpts"},
        {"source", "devpts"},
        {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
       {{"destination", "/dev/shm"},
        {"type", "tmpfs"},
        {"source", "shm"},
        {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
       {{"destination", "/dev/mqueue"},
        {"type", "mqueue"},
        {"source", "mqueue"},
        {"options", {"nosuid", "noexec", "nodev"}}},
       {{"destination", "/sys"},
        {"type", "sysfs"},
        {"source", "sysfs"},
        {"options", {"nosuid", "noexec", "nodev", p.privileged ? "rw" : "ro"}}},
       {{"destination", "/sys/fs/cgroup"},
        {"type", "cgroup"},
        {"source", "cgroup"},
        {"options", {"nosuid", "noexec", "nodev", "relatime", p.privileged ? "rw" : "ro"}}}});
  for (const auto& m : p.mounts) {
    json opts = m.options;
    if (m.type == "bind") {
      opts.push_back("rbind");
      opts.push_back(m.read_only ? "ro" : "rw");
    }
    mounts.push_back({{"destination", m.destination},
                      {"type", m.type},
                      {"source", m.source},
                      {"options", opts}});
  }
  json linux = {{"namespaces",
                 {{{"type", "pid"}},
                  {{"type", "ipc"}},
                  {{"type", "uts"}},
                  {{"type", "mount"}},
                  {{"type", "network"}, {"path", p.netns}}}},
                {"cgroupsPath", p.cgroup_path},
                {"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
                {"maskedPaths",
                 {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                  "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                  "/sys/firmware"}},
                {"readonlyPaths",
                 {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}};
  if (p.privileged) {
    linux["resources"]["devices"] = json::array({{{"allow", true}, {"access", "rwm"}}});
    linux.erase("maskedPaths");
    linux.erase("readonlyPaths");
  }
  if (p.memory_limit > 0) {
    linux["resources"]["memory"] = {{"limit", p.memory_limit}};
  }
  json cpu = json::object();
  if (p.cpu_request_milli > 0) {
    cpu["shares"] = std::max<int64_t>(2, p.cpu_request_milli * 1024 / 1000);
  }
  if (p.cpu_limit_milli > 0) {
    cpu["quota"] = p.cpu_limit_milli * 100;  // of a 100 ms period
    cpu["period"] = 100000;
  }
  if (!cpu.empty()) {
    linux["resources"]["cpu"] = cpu;
  }
  json user = {{"uid", p.uid}, {"gid", p.gid}};
  if (!p.extra_gids.empty()) {
    user["additionalGids"] = p.extra_gids;
  }
  json config = {{"ociVersion", "1.0.2"},
                 {"process",
                  {{"terminal", p.tty},
                   {"user", user},
                   {"args", p.args},
                   {"env", p.env},
                   {"cwd", p.cwd.empty() ? "/" : p.cwd},
                   {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
                   {"noNewPrivileges", false}}},
                 {"root", {{"path", p.dir + "/rootfs"}, {"readonly", p.read_only_rootfs}}},
                 {"hostname", p.hostname},
                 {"mounts", mounts},
                 {"linux", linux}};
  fs::WriteFileAtomic(p.dir + "/config.json", config.dump(2));
}

void MountRootfs(const std::string& dir, const std::vector<std::string>& layers) {
  std::string rootfs = dir + "/rootfs";
  fs::MakeDirs(rootfs);
  fs::MakeDirs(dir + "/upper");
  fs::MakeDirs(dir + "/work");
  // Already mounted (a restarted kubelet)?
  if (fs::IsMountPoint(rootfs)) {
    return;
  }
  std::string lower;
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    lower += (lower.empty() ? "" : ":") + *it;
  }
  if (lower.empty()) {
    fs::MakeDirs(dir + "/empty");
    lower = dir + "/empty";
  }
  std::string opts = "lowerdir=" + lower + ",upperdir=" + dir + "/upper,workdir=" + dir + "/work";
  if (mount("overlay", rootfs.c_str(), "overlay", 0, opts.c_str()) != 0) {
    throw SystemError("mount overlay at '" + rootfs + "'", errno);
  }
}

void UnmountRootfs(const std::string& dir) {
  std::string rootfs = dir + "/rootfs";
  if (umount2(rootfs.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    throw SystemError("unmount '" + rootfs + "'", errno);
  }
}

ContainerRun ReadRun(const std::string& dir) {
  ContainerRun r;
  try {
    std::string st = fs::ReadFile(dir + "/shim.status");
    if (st.rfind("created ", 0) == 0) {
      r.created = true;
      r.pid = std::atoi(st.c_str() + 8);
    } else if (st.rfind("error ", 0) == 0) {
      r.error = st.substr(6);
    }
  } catch (const std::exception&) {
  }
  try {
    json ex = json::parse(fs::ReadFile(dir + "/exit.json"));
    r.exited = true;
    r.exit_code = ex.value("exitCode", 0);
    r.signal = ex.value("signal", 0);
    r.finished_at = ex.value("finishedAt", "");
  } catch (const std::exception&) {
  }
  return r;
}

namespace {

// Mount points of the cgroup hierarchies, with whether each is v2, and for v1
// the controllers it holds (from the mount options).
struct Hierarchy {
  std::string mount_point;
  bool v2 = false;
  std::string options;
};
std::vector<Hierarchy> ReadHierarchies();

// Read once: the hierarchies do not change while the kubelet runs, and
// /proc/self/mounts is long on a node with many pods.
const std::vector<Hierarchy>& Hierarchies() {
  static const std::vector<Hierarchy> kAll = ReadHierarchies();
  return kAll;
}

std::vector<Hierarchy> ReadHierarchies() {
  std::vector<Hierarchy> out;
  std::ifstream in("/proc/self/mounts");
  std::string dev, target, type, options, rest;
  while (in >> dev >> target >> type >> options && std::getline(in, rest)) {
    if (type == "cgroup2" || type == "cgroup") {
      out.push_back({target, type == "cgroup2", options});
    }
  }
  return out;
}

int64_t StatField(const std::string& file, const std::string& name) {
  std::ifstream in(file);
  std::string key;
  long long value;
  while (in >> key >> value) {
    if (key == name) {
      return value;
    }
  }
  return -1;
}

int64_t ReadNumber(const std::string& file) {
  std::ifstream in(file);
  long long value = -1;
  return in >> value ? value : -1;
}

}  // namespace

int64_t MemoryWorkingSet(const std::string& path) {
  for (const auto& h : Hierarchies()) {
    std::string dir = h.mount_point + path;
    int64_t usage = -1, inactive = 0;
    if (h.v2) {
      usage = ReadNumber(dir + "/memory.current");
      inactive = StatField(dir + "/memory.stat", "inactive_file");
    } else if (("," + h.options + ",").find(",memory,") != std::string::npos) {
      usage = ReadNumber(dir + "/memory.usage_in_bytes");
      inactive = StatField(dir + "/memory.stat", "total_inactive_file");
    }
    if (usage >= 0) {
      return std::max<int64_t>(0, usage - std::max<int64_t>(0, inactive));
    }
  }
  return -1;
}

int OomKills(const std::string& path) {
  for (const auto& h : Hierarchies()) {
    if (h.v2) {
      if (int n = static_cast<int>(StatField(h.mount_point + path + "/memory.events", "oom_kill"));
          n > 0) {
        return n;
      }
    } else if (("," + h.options + ",").find(",memory,") != std::string::npos) {
      if (int n =
              static_cast<int>(StatField(h.mount_point + path + "/memory.oom_control", "oom_kill"));
          n > 0) {
        return n;
      }
    }
  }
  return 0;
}

void RemoveCgroupTree(const std::string& path, bool recursive) {
  for (const auto& h : Hierarchies()) {
    std::string top = h.mount_point + path;
    std::error_code ec;
    if (!std::filesystem::is_directory(top, ec)) {
      continue;
    }
    std::vector<std::string> dirs{top};
    for (auto it = std::filesystem::recursive_directory_iterator(top, ec);
         recursive && !ec && it != std::filesystem::recursive_directory_iterator();
         it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) {
        dirs.push_back(it->path().string());
      }
    }
    std::sort(dirs.begin(), dirs.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    for (const auto& d : dirs) {
      rmdir(d.c_str());  // cgroup files go with their directory; busy ones stay
    }
  }
}

}  // namespace minik::kubelet
