// `minik start`: creates or restarts a cluster for a profile.

#include <algorithm>
#include <chrono>
#include <thread>

#include "cli/commands.h"
#include "cli/kubeconfig.h"
#include "cli/profile.h"
#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "drivers/driver.h"

namespace minik::cli {

namespace {

// "kubelet.eviction-hard=memory.available<1Gi": a known component and one of its flags.
void CheckExtraConfig(CLI::App& app, const std::string& e) {
  static const char* kComponents[] = {
      "apiserver", "controller-manager", "scheduler", "kubelet", "proxy", "dns", "hollow-nodes"};
  auto dot = e.find('.'), eq = e.find('=');
  std::string component = e.substr(0, dot);
  if (dot == std::string::npos || eq == std::string::npos || eq < dot + 2) {
    throw Exit{2, "--extra-config " + e + ": expected COMPONENT.FLAG=VALUE, e.g. " +
                      "kubelet.housekeeping-interval=2s"};
  }
  if (std::find(std::begin(kComponents), std::end(kComponents), component) ==
      std::end(kComponents)) {
    throw Exit{
        2,
        "--extra-config " + e + ": unknown component \"" + component +
            "\" (apiserver, controller-manager, scheduler, kubelet, proxy, dns or hollow-nodes)"};
  }
  std::string flag = "--" + e.substr(dot + 1, eq - dot - 1);
  if (!app.get_subcommand(component)->get_option_no_throw(flag)) {
    throw Exit{2, "--extra-config " + e + ": the " + component + " has no flag " + flag +
                      "; see `minik " + component + " --help`"};
  }
}

}  // namespace

void AddStart(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string driver;
    std::string store = "sqlite";
    bool keep = false;
    int wait_seconds = 120;
    int hollow_nodes = -1;
    bool no_kubelet = false;
    std::vector<std::string> extra_config;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd =
      app.add_subcommand("start", "Start a local Kubernetes cluster (creates it on first use)");
  cmd->add_option("--driver", o->driver,
                  "Where the node runs: native (default when no other driver is usable)");
  cmd->add_option("--store", o->store, "Cluster state store: sqlite (durable) or memory");
  cmd->add_option("--hollow-nodes", o->hollow_nodes,
                  "Also run this many simulated nodes (as kwok does), to try controllers at scale");
  cmd->add_flag(
      "--no-kubelet", o->no_kubelet,
      "Run only the control plane: no pods run on the node itself (hollow nodes still do)");
  cmd->add_flag("--keep-on-failure", o->keep,
                "Leave what a failed start created in place, for debugging");
  cmd->add_option("--wait", o->wait_seconds, "Seconds to wait for the API server")
      ->capture_default_str();
  cmd->add_option(
      "--extra-config", o->extra_config,
      "A flag for a component, as minikube takes them: COMPONENT.FLAG=VALUE, e.g. "
      "kubelet.eviction-hard=memory.available<1Gi (components: apiserver, "
      "controller-manager, scheduler, kubelet, proxy, dns, hollow-nodes); kept in the profile");
  cmd->callback([&app, &g, o] {
    CheckProfileName(g.profile);
    for (const auto& e : o->extra_config) {
      CheckExtraConfig(app, e);
    }
    ProfileConfig cfg;
    bool exists = LoadProfile(g.profile, &cfg);
    if (exists) {
      if (!o->driver.empty() && o->driver != cfg.driver) {
        throw Exit{1, "profile \"" + g.profile + "\" uses the " + cfg.driver +
                          " driver; run `minik delete -p " + g.profile +
                          "` first to start it with --driver=" + o->driver};
      }
    } else {
      cfg.name = g.profile;
      cfg.store = o->store;
      if (o->driver.empty()) {
        std::vector<std::string> passed;
        cfg.driver = drivers::PickDriver(&passed);
        for (const auto& p : passed) {
          std::printf("  (skipping %s)\n", p.c_str());
        }
        if (cfg.driver.empty()) {
          throw Exit{1, "no usable driver on this machine; see the reasons above"};
        }
      } else {
        cfg.driver = o->driver;
      }
    }
    if (o->hollow_nodes >= 0) {
      cfg.hollow_nodes = o->hollow_nodes;
    }
    // A new --extra-config replaces an earlier one of the same flag.
    for (const auto& e : o->extra_config) {
      std::string flag = e.substr(0, e.find('='));
      std::erase_if(cfg.extra_config,
                    [&](const std::string& old) { return old.substr(0, old.find('=')) == flag; });
      cfg.extra_config.push_back(e);
    }
    auto driver = drivers::NewDriver(cfg.driver);
    drivers::Availability a = driver->Check();
    if (!a.usable()) {
      throw Exit{1, "the " + cfg.driver + " driver cannot run here: " + a.reason +
                        (a.fix.empty() ? "" : "; " + a.fix)};
    }
    std::printf("minik v0.1.0: %s profile \"%s\" with the %s driver\n",
                exists ? "restarting" : "creating", g.profile.c_str(), cfg.driver.c_str());
    std::string dir = ProfileDir(g.profile);
    if (!exists) {
      cfg.apiserver_port = FreePort();
      cfg.kubelet_port = FreePort();
      cfg.kubelet = !o->no_kubelet;
    }
    Credentials creds;
    Steps steps;
    steps.Add(
        "Preparing profile and certificates",
        [&] {
          SaveProfile(cfg);
          creds = EnsureCredentials(g.profile);
        },
        [&] {
          if (!exists) {
            fs::RemoveAll(dir);
          }
        });
    steps.Add(
        "Starting the node",
        [&] {
          drivers::NodeConfig nc;
          nc.profile = g.profile;
          nc.profile_dir = dir;
          nc.minik_binary = exec::SelfExe();
          nc.ca_cert_pem = creds.ca_cert;
          nc.ca_key_pem = creds.ca_key;
          nc.apiserver_host_port = cfg.apiserver_port;
          nc.store = cfg.store;
          nc.hollow_nodes = cfg.hollow_nodes;
          nc.kubelet = cfg.kubelet;
          nc.kubelet_port = cfg.kubelet_port ? cfg.kubelet_port : 10250;
          nc.extra_config = cfg.extra_config;
          driver->Start(nc);
        },
        [&] {
          if (exists) {
            driver->Stop(g.profile, dir);
          } else {
            driver->Delete(g.profile, dir);
          }
        });
    steps.Add(
        "Waiting for the API server on https://127.0.0.1:" + std::to_string(cfg.apiserver_port),
        [&] {
          auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o->wait_seconds);
          std::string why;
          while (!ApiServerReady(g.profile, cfg.apiserver_port, &why)) {
            drivers::NodeStatus st = driver->Status(g.profile, dir);
            if (st.host != drivers::NodeState::kRunning) {
              throw Error("the node stopped while starting; see the logs in " +
                          driver->LogHint(g.profile, dir));
            }
            if (std::chrono::steady_clock::now() > deadline) {
              throw Error("the API server did not become ready within " +
                          std::to_string(o->wait_seconds) + "s (" + why + "); see " +
                          driver->LogHint(g.profile, dir) + "apiserver.log");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
        });
    steps.Add(
        "Configuring kubectl (" + KubeconfigPath() + ")",
        [&] {
          KubeconfigEntry e;
          e.name = g.profile;
          e.server = "https://127.0.0.1:" + std::to_string(cfg.apiserver_port);
          e.ca_pem = creds.ca_cert;
          e.client_cert_pem = creds.client_cert;
          e.client_key_pem = creds.client_key;
          MergeKubeconfig(e);
        },
        [&] { RemoveKubeconfig(g.profile); });
    try {
      steps.Run(o->keep);
    } catch (const std::exception& e) {
      throw Exit{1, std::string("start failed: ") + e.what() +
                        (o->keep ? ""
                                 : "\n  (what this start created was removed; rerun with "
                                   "--keep-on-failure to keep it for debugging)")};
    }
    std::printf(
        "Done! kubectl is now configured to use \"%s\" cluster and \"default\" namespace by "
        "default\n",
        g.profile.c_str());
    std::printf("  Try: kubectl get namespaces\n");
  });
}

}  // namespace minik::cli
