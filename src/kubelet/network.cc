#include "kubelet/network.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"

namespace minik::kubelet {

void CreateNetns(const std::string& path) {
  auto slash = path.rfind('/');
  fs::MakeDirs(path.substr(0, slash));
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) {
    if (errno == EEXIST) {
      return;  // made before (a restarted kubelet)
    }
    throw SystemError("create netns file '" + path + "'", errno);
  }
  close(fd);
  // A thread enters a new network namespace and binds it to the file, so the
  // namespace lives on after the thread ends. (Namespaces are per thread; a
  // thread is far cheaper than forking this process.)
  int err = 0;
  std::thread([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      err = errno;
    } else if (mount("/proc/thread-self/ns/net", path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      err = errno;
    }
  }).join();
  if (err != 0) {
    unlink(path.c_str());
    throw SystemError("create network namespace '" + path + "'", err);
  }
}

void DeleteNetns(const std::string& path) {
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    throw SystemError("unmount netns '" + path + "'", errno);
  }
  unlink(path.c_str());
}

json PodNetwork::ConfList() const {
  return {{"cniVersion", "1.0.0"},
          {"name", "minik"},
          {"plugins",
           {{{"type", "bridge"},
             {"bridge", cfg_.bridge},
             {"isGateway", true},
             {"ipMasq", false},  // EnsureMasquerade() does it for the node
             {"hairpinMode", true},
             {"ipam",
              {{"type", "host-local"},
               {"ranges", {{{{"subnet", cfg_.subnet}}}}},
               {"routes", {{{"dst", "0.0.0.0/0"}}}},
               {"dataDir", cfg_.state_dir + "/ipam"}}}},
            {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}}}}};
}

namespace {

std::string MasqChain(const std::string& bridge) {
  return "MINIK-MASQ-" + bridge;
}

exec::Result Iptables(std::vector<std::string> args) {
  exec::Command c;
  c.argv = {"iptables", "-w", "-t", "nat"};
  c.argv.insert(c.argv.end(), args.begin(), args.end());
  return exec::Run(c);
}

}  // namespace

void PodNetwork::EnsureMasquerade() {
  std::string chain = MasqChain(cfg_.bridge);
  Iptables({"-N", chain});  // exists already after a restart
  exec::Result r = Iptables({"-F", chain});
  for (auto rule : {std::vector<std::string>{"-A", chain, "-d", cfg_.subnet, "-j", "RETURN"},
                    std::vector<std::string>{"-A", chain, "-d", "224.0.0.0/4", "-j", "RETURN"},
                    std::vector<std::string>{"-A", chain, "-j", "MASQUERADE"}}) {
    if (r.exit_code == 0) {
      r = Iptables(rule);
    }
  }
  std::vector<std::string> jump = {
      "POSTROUTING",          "-s", cfg_.subnet, "-m", "comment", "--comment",
      "minik " + cfg_.bridge, "-j", chain};
  std::vector<std::string> check = {"-C"}, append = {"-A"};
  check.insert(check.end(), jump.begin(), jump.end());
  append.insert(append.end(), jump.begin(), jump.end());
  if (r.exit_code == 0 && Iptables(check).exit_code != 0) {
    r = Iptables(append);
  }
  if (r.exit_code != 0) {
    throw Error("iptables: masquerading for the pod network " + cfg_.subnet + " failed: " + r.err +
                "; is iptables installed (apt-get install iptables)?");
  }
}

void PodNetwork::RemoveMasquerade(const std::string& bridge) {
  std::string chain = MasqChain(bridge);
  exec::Result rules = Iptables({"-S", "POSTROUTING"});
  std::stringstream in(rules.out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("-A POSTROUTING ", 0) != 0 || line.find("-j " + chain) == std::string::npos) {
      continue;
    }
    // The rule as iptables printed it, deleted with the same words.
    std::vector<std::string> args = {"-D"};
    std::stringstream words(line.substr(3));
    std::string w;
    while (words >> std::quoted(w)) {
      args.push_back(w);
    }
    Iptables(args);
  }
  Iptables({"-F", chain});
  Iptables({"-X", chain});
}

json PodNetwork::Invoke(const json& plugin, const std::string& command, const std::string& id,
                        const std::string& netns, const std::string& ifname,
                        const std::string& args, const json& prev) {
  json conf = plugin;
  conf["cniVersion"] = "1.0.0";
  conf["name"] = "minik";
  if (!prev.is_null()) {
    conf["prevResult"] = prev;
  }
  exec::Command c;
  c.argv = {cfg_.plugin_dir + "/" + plugin.value("type", "")};
  c.stdin_data = conf.dump();
  c.extra_env = {{"CNI_COMMAND", command}, {"CNI_CONTAINERID", id},       {"CNI_NETNS", netns},
                 {"CNI_IFNAME", ifname},   {"CNI_PATH", cfg_.plugin_dir}, {"CNI_ARGS", args}};
  exec::Result r = exec::Run(c);
  if (!r.ok()) {
    // Plugins report errors as JSON on stdout: {"code":..,"msg":..,"details":..}.
    std::string msg = r.err;
    try {
      json e = json::parse(r.out);
      msg = e.value("msg", "") +
            (e.value("details", "").empty() ? "" : ": " + e.value("details", ""));
    } catch (const json::exception&) {
    }
    throw Error("CNI " + plugin.value("type", "") + " " + command + " for " + id + ": " + msg);
  }
  if (command != "ADD" || r.out.empty()) {
    return prev;
  }
  return json::parse(r.out);
}

NetworkStatus PodNetwork::Add(const std::string& pod_uid, const std::string& netns,
                              const std::string& pod_ns, const std::string& pod_name,
                              const json& port_mappings) {
  fs::MakeDirs(cfg_.state_dir + "/results");
  std::string args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + pod_ns + ";K8S_POD_NAME=" + pod_name +
                     ";K8S_POD_INFRA_CONTAINER_ID=" + pod_uid;
  Invoke({{"type", "loopback"}}, "ADD", pod_uid, netns, "lo", args, nullptr);
  json result;
  // A local: iterating a member of a temporary would dangle.
  const json conf = ConfList();
  for (auto plugin : conf["plugins"]) {
    if (plugin.value("type", "") == "portmap") {
      if (!port_mappings.is_array() || port_mappings.empty()) {
        continue;
      }
      plugin["runtimeConfig"] = {{"portMappings", port_mappings}};
    }
    result = Invoke(plugin, "ADD", pod_uid, netns, "eth0", args, result);
  }
  // Node ports on 127.0.0.1 (the proxy's, on a native node) are DNATed to pods
  // through the bridge: the kernel allows a loopback source there only with
  // route_localnet, set on this bridge alone (the proxy drops what would abuse it).
  std::ofstream("/proc/sys/net/ipv4/conf/" + cfg_.bridge + "/route_localnet") << "1";
  json cached = {{"result", result}, {"portMappings", port_mappings}};
  fs::WriteFileAtomic(cfg_.state_dir + "/results/" + pod_uid + ".json", cached.dump());
  NetworkStatus st;
  for (const auto& ip : result.value("ips", json::array())) {
    std::string addr = ip.value("address", "");
    st.ip = addr.substr(0, addr.find('/'));
    st.gateway = ip.value("gateway", "");
    break;
  }
  if (st.ip.empty()) {
    throw Error("CNI ADD for " + pod_uid + " returned no IP address: " + result.dump());
  }
  return st;
}

void PodNetwork::Del(const std::string& pod_uid, const std::string& netns,
                     const std::string& pod_ns, const std::string& pod_name) {
  std::string cache = cfg_.state_dir + "/results/" + pod_uid + ".json";
  json cached = json::object();
  try {
    cached = json::parse(fs::ReadFile(cache));
  } catch (const std::exception&) {
  }
  std::string args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + pod_ns + ";K8S_POD_NAME=" + pod_name +
                     ";K8S_POD_INFRA_CONTAINER_ID=" + pod_uid;
  const json conf = ConfList();
  json plugins = conf["plugins"];
  // DEL goes in reverse order; a namespace that is already gone is fine (the spec asks
  // plugins to tolerate it), so only a missing IPAM release would leak.
  std::string ns_arg = fs::Exists(netns) ? netns : "";
  for (auto it = plugins.rbegin(); it != plugins.rend(); ++it) {
    json plugin = *it;
    if (plugin.value("type", "") == "portmap") {
      json pm = cached.value("portMappings", json::array());
      if (!pm.is_array() || pm.empty()) {
        continue;
      }
      plugin["runtimeConfig"] = {{"portMappings", pm}};
    }
    Invoke(plugin, "DEL", pod_uid, ns_arg, "eth0", args, cached.value("result", json()));
  }
  unlink(cache.c_str());
}

}  // namespace minik::kubelet
