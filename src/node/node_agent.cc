#include "node/node_agent.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/log.h"
#include "common/tls.h"

namespace minik::node {
namespace {

volatile sig_atomic_t g_stop = 0;

void OnSignal(int) {
  g_stop = 1;
}

struct Component {
  Component(std::string n, std::vector<std::string> a) : name(std::move(n)), argv(std::move(a)) {}
  std::string name;
  std::vector<std::string> argv;
  int pid = 0;
  int restarts = 0;
  std::string state = "Stopped";
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point next_start;
  std::chrono::seconds backoff{1};
};

void WriteStatus(const std::string& node_dir, const std::vector<Component>& comps,
                 const std::string& phase) {
  json s = {{"agentPid", getpid()}, {"phase", phase}, {"updated", FormatTime(Now())}};
  json c = json::object();
  for (const auto& comp : comps) {
    c[comp.name] = {{"pid", comp.pid}, {"state", comp.state}, {"restarts", comp.restarts}};
  }
  s["components"] = c;
  try {
    fs::WriteFileAtomic(node_dir + "/status.json", s.dump(2) + "\n");
  } catch (const Error& e) {
    log::Warn("write status: {}", e.what());
  }
}

void StartComponent(Component& c, const std::string& log_dir) {
  exec::Spawn spec;
  spec.argv = c.argv;
  spec.log_file = log_dir + "/" + c.name + ".log";
  spec.die_with_parent = true;
  c.pid = exec::StartProcess(spec);
  c.state = "Running";
  c.started = std::chrono::steady_clock::now();
  log::Info("started {} (pid {})", c.name, c.pid);
}

}  // namespace

void EnsureClientCert(const std::string& cert_dir, const std::string& name, const std::string& user,
                      const std::vector<std::string>& groups) {
  std::string crt = cert_dir + "/" + name + ".crt";
  std::string key = cert_dir + "/" + name + ".key";
  if (fs::Exists(crt) && fs::Exists(key)) {
    return;
  }
  tls::KeyPair ca{fs::ReadFile(cert_dir + "/ca.crt"), fs::ReadFile(cert_dir + "/ca.key")};
  tls::CertRequest req;
  req.common_name = user;
  req.organizations = groups;
  tls::KeyPair kp = tls::IssueCert(ca, req);
  fs::WriteFileAtomic(key, kp.key_pem, 0600);
  fs::WriteFileAtomic(crt, kp.cert_pem, 0644);
}

void EnsureKubeletServingCert(const std::string& cert_dir, const std::string& node_name,
                              const std::string& address) {
  std::string crt = cert_dir + "/kubelet-serving.crt";
  std::string key = cert_dir + "/kubelet-serving.key";
  if (fs::Exists(crt) && fs::Exists(key)) {
    return;
  }
  tls::KeyPair ca{fs::ReadFile(cert_dir + "/ca.crt"), fs::ReadFile(cert_dir + "/ca.key")};
  tls::CertRequest req;
  req.common_name = "system:node:" + node_name;
  req.organizations = {"system:nodes"};
  req.server = true;
  req.dns_names = {node_name, "localhost"};
  req.ip_addresses = {"127.0.0.1"};
  if (address != "127.0.0.1") {
    req.ip_addresses.push_back(address);
  }
  tls::KeyPair kp = tls::IssueCert(ca, req);
  fs::WriteFileAtomic(key, kp.key_pem, 0600);
  fs::WriteFileAtomic(crt, kp.cert_pem, 0644);
}

void EnsureServingCert(const std::string& cert_dir, const std::string& advertise_address) {
  std::string crt = cert_dir + "/apiserver.crt";
  std::string key = cert_dir + "/apiserver.key";
  if (fs::Exists(crt) && fs::Exists(key)) {
    return;
  }
  tls::KeyPair ca{fs::ReadFile(cert_dir + "/ca.crt"), fs::ReadFile(cert_dir + "/ca.key")};
  tls::CertRequest req;
  req.common_name = "kube-apiserver";
  req.server = true;
  req.dns_names = {"localhost",
                   "kubernetes",
                   "kubernetes.default",
                   "kubernetes.default.svc",
                   "kubernetes.default.svc.cluster.local",
                   "minik"};
  req.ip_addresses = {"127.0.0.1", "10.96.0.1"};
  if (advertise_address != "127.0.0.1") {
    req.ip_addresses.push_back(advertise_address);
  }
  tls::KeyPair kp = tls::IssueCert(ca, req);
  fs::WriteFileAtomic(key, kp.key_pem, 0600);
  fs::WriteFileAtomic(crt, kp.cert_pem, 0644);
}

int RunAgent(const AgentOptions& opts) {
  log::SetComponent("node-agent");
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);

  std::string certs = opts.node_dir + "/certs";
  std::string logs = opts.node_dir + "/logs";
  fs::MakeDirs(logs);
  fs::MakeDirs(opts.node_dir + "/data", 0700);
  EnsureServingCert(certs, opts.advertise_address);
  EnsureClientCert(certs, "controller-manager", "system:kube-controller-manager", {});
  EnsureClientCert(certs, "scheduler", "system:kube-scheduler", {});
  EnsureClientCert(certs, "hollow-nodes", "system:node:hollow", {"system:nodes"});
  EnsureClientCert(certs, "kubelet", "system:node:" + opts.node_name, {"system:nodes"});
  EnsureClientCert(certs, "proxy", "system:kube-proxy", {});
  EnsureClientCert(certs, "dns", "system:serviceaccount:kube-system:coredns", {});
  EnsureClientCert(certs, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                   {"system:masters"});
  EnsureKubeletServingCert(certs, opts.node_name, opts.advertise_address);

  std::string self = exec::SelfExe();
  std::vector<Component> comps;
  comps.push_back(
      Component{"apiserver",
                {self, "apiserver", "--cert-dir", certs, "--data-dir", opts.node_dir + "/data",
                 "--port", std::to_string(opts.apiserver_port), "--bind-address", opts.bind_address,
                 "--advertise-address", opts.advertise_address, "--store", opts.store}});
  std::string server = "https://127.0.0.1:" + std::to_string(opts.apiserver_port);
  comps.push_back(Component{"controller-manager",
                            {self, "controller-manager", "--server", server, "--cert-dir", certs,
                             "--data-dir", opts.node_dir}});
  comps.push_back(
      Component{"scheduler", {self, "scheduler", "--server", server, "--cert-dir", certs}});
  if (opts.kubelet) {
    comps.push_back(
        Component{"kubelet",
                  {self, "kubelet", "--server", server, "--cert-dir", certs, "--node-name",
                   opts.node_name, "--node-ip", opts.advertise_address, "--root", opts.node_dir,
                   "--port", std::to_string(opts.kubelet_port)}});
  }
  if (opts.kubelet) {
    // Node ports on the host answer on loopback only: a native node is the
    // user's machine, and nothing is published to its network unasked.
    comps.push_back(Component{
        "proxy",
        {self, "proxy", "--server", server, "--cert-dir", certs, "--node-name", opts.node_name}});
    if (opts.advertise_address == "127.0.0.1") {
      comps.back().argv.push_back("--nodeport-addresses");
      comps.back().argv.push_back("127.0.0.0/8");
    }
    // Cluster DNS on the pod bridge's address (the kubelet's first pod makes
    // the bridge; the server binds before), behind kube-dns at 10.96.0.10.
    comps.push_back(
        Component{"dns",
                  {self, "dns", "--server", server, "--cert-dir", certs, "--node-name",
                   opts.node_name, "--listen", "10.244.0.1:10053", "--host-ip", "10.244.0.1"}});
  }
  if (opts.hollow_nodes > 0) {
    comps.push_back(Component{"hollow-nodes",
                              {self, "hollow-nodes", "--server", server, "--cert-dir", certs,
                               "--count", std::to_string(opts.hollow_nodes)}});
  }
  // Extra flags: one the agent already passes gets the new value (a component
  // refuses a flag given twice), any other is added.
  for (const auto& e : opts.extra_config) {
    auto dot = e.find('.'), eq = e.find('=');
    if (dot == std::string::npos || eq == std::string::npos || eq < dot) {
      continue;
    }
    std::string flag = "--" + e.substr(dot + 1, eq - dot - 1), value = e.substr(eq + 1);
    for (auto& c : comps) {
      if (c.name != e.substr(0, dot)) {
        continue;
      }
      auto it = std::find(c.argv.begin(), c.argv.end(), flag);
      if (it != c.argv.end() && it + 1 != c.argv.end()) {
        *(it + 1) = value;
      } else {
        c.argv.push_back(flag + "=" + value);
      }
    }
  }
  // Dependency order: the API server first, then what talks to it once it answers.
  StartComponent(comps[0], logs);
  WriteStatus(opts.node_dir, comps, "Starting");
  http::ClientOptions probe;
  probe.ca_pem = fs::ReadFile(certs + "/ca.crt");
  probe.timeout_ms = 1000;
  probe.connect_timeout_ms = 500;
  http::Client health(server, probe);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!g_stop && std::chrono::steady_clock::now() < deadline &&
         health.Do("GET", "/readyz").status != 200) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (size_t i = 1; i < comps.size(); ++i) {
    StartComponent(comps[i], logs);
  }
  WriteStatus(opts.node_dir, comps, "Running");

  while (!g_stop) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    auto now = std::chrono::steady_clock::now();
    bool changed = false;
    if (pid > 0) {
      for (auto& c : comps) {
        if (c.pid == pid) {
          std::string how = WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                              : "signal " + std::to_string(WTERMSIG(status));
          // A component that ran for a while starts over with a short backoff.
          if (now - c.started > std::chrono::seconds(60)) {
            c.backoff = std::chrono::seconds(1);
          }
          log::Warn("{} (pid {}) died: {}; restarting in {}s (see {}/{}.log)", c.name, c.pid, how,
                    c.backoff.count(), logs, c.name);
          c.pid = 0;
          c.state = "Restarting";
          c.next_start = now + c.backoff;
          c.backoff = std::min(c.backoff * 2, std::chrono::seconds(30));
          changed = true;
        }
      }
    }
    for (auto& c : comps) {
      if (c.pid == 0 && c.state == "Restarting" && now >= c.next_start) {
        ++c.restarts;
        try {
          StartComponent(c, logs);
        } catch (const Error& e) {
          log::Error("restart {}: {}", c.name, e.what());
          c.next_start = now + c.backoff;
        }
        changed = true;
      }
    }
    if (changed) {
      WriteStatus(opts.node_dir, comps, "Running");
    }
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  log::Info("stopping components");
  WriteStatus(opts.node_dir, comps, "Stopping");
  // Everything but the API server first, so that the components can still
  // write on their way out (the controller manager and the scheduler give up
  // their leader leases, and the next start need not wait for them to
  // expire); then the API server.
  auto stop = [&](bool apiserver) {
    for (auto it = comps.rbegin(); it != comps.rend(); ++it) {
      if (it->pid > 0 && (it->name == "apiserver") == apiserver) {
        kill(it->pid, SIGTERM);
      }
    }
    auto stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (auto& c : comps) {
      while (c.pid > 0 && (c.name == "apiserver") == apiserver) {
        int status;
        pid_t r = waitpid(c.pid, &status, WNOHANG);
        if (r == c.pid || (r < 0 && errno == ECHILD)) {
          c.pid = 0;
          c.state = "Stopped";
          break;
        }
        if (std::chrono::steady_clock::now() > stop_deadline) {
          log::Warn("{} did not stop within 10s; killing it", c.name);
          kill(c.pid, SIGKILL);
          waitpid(c.pid, &status, 0);
          c.pid = 0;
          c.state = "Stopped";
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  };
  stop(false);
  stop(true);
  // Whatever the kubelet could not stop (it may have died) goes now.
  if (opts.kubelet) {
    exec::Command cleanup;
    cleanup.argv = {exec::SelfExe(), "node-cleanup", "--node-dir",
                    opts.node_dir,   "--node-name",  opts.node_name};
    exec::Result r = exec::Run(cleanup);
    if (!r.ok()) {
      log::Warn("{}", exec::Describe(cleanup, r));
    }
  }
  WriteStatus(opts.node_dir, comps, "Stopped");
  log::Info("stopped");
  return 0;
}

}  // namespace minik::node
