// The node-side roles: `minik node-agent` and `minik apiserver`. Users do not
// run these by hand; the node-agent starts them inside the node.

#include <signal.h>

#include <tuple>

#include "apiserver/apiserver.h"
#include "cli/commands.h"
#include "common/clock.h"
#include "common/exec.h"
#include "common/heap.h"
#include "common/log.h"
#include "controllers/controller_manager.h"
#include "dns/server.h"
#include "kubelet/eviction.h"
#include "kubelet/kubelet.h"
#include "kubelet/shim.h"
#include "node/hollow_nodes.h"
#include "node/node_agent.h"
#include "proxy/proxy.h"
#include "scheduler/scheduler.h"

namespace minik::cli {

void AddComponents(CLI::App& app) {
  auto agent = std::make_shared<node::AgentOptions>();
  CLI::App* na = app.add_subcommand("node-agent",
                                    "Run a node's supervisor (started by drivers inside the node)");
  na->group("Node components");
  na->add_option("--node-dir", agent->node_dir, "The node's directory (certs/, data/, logs/)")
      ->required();
  na->add_option("--apiserver-port", agent->apiserver_port, "Port of the API server")
      ->capture_default_str();
  na->add_option("--bind-address", agent->bind_address, "Address the API server listens on")
      ->capture_default_str();
  na->add_option("--advertise-address", agent->advertise_address, "The node's address")
      ->capture_default_str();
  na->add_option("--store", agent->store, "Store of the API server")->capture_default_str();
  na->add_option("--hollow-nodes", agent->hollow_nodes, "Simulated nodes to run")
      ->capture_default_str();
  na->add_option("--node-name", agent->node_name, "Name of this node")->capture_default_str();
  na->add_option("--kubelet-port", agent->kubelet_port, "Port of the kubelet's HTTPS API")
      ->capture_default_str();
  na->add_flag("!--no-kubelet", agent->kubelet, "Do not run the kubelet (control plane only)");
  na->add_option("--extra-config", agent->extra_config,
                 "COMPONENT.FLAG=VALUE: a flag for one of the node's components");
  na->callback([agent] {
    int rc = node::RunAgent(*agent);
    if (rc != 0) {
      throw Exit{rc, ""};
    }
  });

  auto cm = std::make_shared<controllers::ManagerOptions>();
  CLI::App* cms =
      app.add_subcommand("controller-manager", "Run the controllers (namespace lifecycle, ...)");
  cms->group("Node components");
  cms->add_option("--server", cm->server, "URL of the API server")->required();
  cms->add_option("--cert-dir", cm->cert_dir,
                  "Directory with ca.crt and controller-manager.{crt,key}")
      ->required();
  cms->add_option("--data-dir", cm->data_dir, "The node's data directory, for hostPath volumes")
      ->required();
  cms->callback([cm] {
    int rc = controllers::RunControllerManager(*cm);
    if (rc != 0) {
      throw Exit{rc, ""};
    }
  });

  auto sched = std::make_shared<scheduler::SchedulerOptions>();
  CLI::App* sc = app.add_subcommand("scheduler", "Run the scheduler");
  sc->group("Node components");
  sc->add_option("--server", sched->server, "URL of the API server")->required();
  sc->add_option("--cert-dir", sched->cert_dir, "Directory with ca.crt and scheduler.{crt,key}")
      ->required();
  sc->callback([sched] {
    int rc = scheduler::RunScheduler(*sched);
    if (rc != 0) {
      throw Exit{rc, ""};
    }
  });

  auto hollow = std::make_shared<node::HollowOptions>();
  CLI::App* hn = app.add_subcommand(
      "hollow-nodes",
      "Run simulated nodes that register, heartbeat and play kubelet for their pods");
  hn->group("Node components");
  hn->add_option("--server", hollow->server, "URL of the API server")->required();
  hn->add_option("--cert-dir", hollow->cert_dir, "Directory with ca.crt and hollow-nodes.{crt,key}")
      ->required();
  hn->add_option("--count", hollow->count, "How many nodes")->capture_default_str();
  hn->add_option("--name-prefix", hollow->name_prefix, "Node names are this plus an index")
      ->capture_default_str();
  hn->add_option("--first-index", hollow->first_index, "The first index")->capture_default_str();
  hn->add_option("--cpu", hollow->cpu, "CPU capacity of each node")->capture_default_str();
  hn->add_option("--memory", hollow->memory, "Memory capacity of each node")->capture_default_str();
  hn->add_option("--pods", hollow->pods, "Pod capacity of each node")->capture_default_str();
  hn->add_option("--run-seconds", hollow->run_seconds,
                 "How long pods that are not restarted run before they finish")
      ->capture_default_str();
  hn->callback([hollow] {
    int rc = node::RunHollowNodes(*hollow);
    if (rc != 0) {
      throw Exit{rc, ""};
    }
  });

  auto kl = std::make_shared<kubelet::KubeletOptions>();
  CLI::App* kc = app.add_subcommand("kubelet", "Run the pods bound to this node as containers");
  kc->group("Node components");
  kc->add_option("--server", kl->server, "URL of the API server")->required();
  kc->add_option("--cert-dir", kl->cert_dir,
                 "Directory with ca.crt, kubelet.{crt,key}, kubelet-serving.{crt,key}")
      ->required();
  kc->add_option("--node-name", kl->node_name, "Name of this node")->required();
  kc->add_option("--node-ip", kl->node_ip, "Address of this node")->capture_default_str();
  kc->add_option("--root", kl->root, "The node's directory")->required();
  kc->add_option("--pod-cidr", kl->pod_cidr, "Pod addresses of this node")->capture_default_str();
  kc->add_option("--runtime", kl->runtime,
                 "OCI runtime: runc or crun (default: the first installed)");
  kc->add_option("--port", kl->port, "Port of the kubelet's HTTPS API")->capture_default_str();
  kc->add_option("--bind-address", kl->bind_address, "Address of the kubelet's HTTPS API")
      ->capture_default_str();
  kl->eviction_hard = kubelet::eviction::kDefaultHard;
  kc->add_option("--eviction-hard", kl->eviction_hard,
                 "Hard eviction thresholds: SIGNAL<QUANTITY or SIGNAL<PERCENT%, comma-separated")
      ->capture_default_str();
  auto housekeeping = std::make_shared<std::string>("10s");
  auto transition = std::make_shared<std::string>("5m0s");
  kc->add_option("--housekeeping-interval", *housekeeping,
                 "How often eviction signals are observed")
      ->capture_default_str();
  kc->add_option("--eviction-pressure-transition-period", *transition,
                 "How long a pressure condition stays after the signal recovers")
      ->capture_default_str();
  kc->callback([kl, housekeeping, transition] {
    try {
      kubelet::eviction::ParseThresholds(kl->eviction_hard);
    } catch (const std::exception& e) {
      throw Exit{2, std::string("--eviction-hard: ") + e.what()};
    }
    for (auto [flag, text, out] :
         {std::tuple{"--housekeeping-interval", housekeeping.get(), &kl->housekeeping_interval},
          std::tuple{"--eviction-pressure-transition-period", transition.get(),
                     &kl->eviction_pressure_transition_period}}) {
      auto d = ParseDuration(*text);
      if (!d) {
        throw Exit{2, std::string(flag) + ": \"" + *text +
                          "\" is not a duration (e.g. 10s, 1m30s, 500ms)"};
      }
      *out = *d;
    }
    kl->minik_binary = exec::SelfExe();
    int rc = kubelet::RunKubelet(*kl);
    if (rc != 0) {
      throw Exit{rc, ""};
    }
  });

  auto cleanup_dir = std::make_shared<std::string>();
  auto cleanup_node = std::make_shared<std::string>("minik");
  CLI::App* cl = app.add_subcommand(
      "node-cleanup",
      "Remove every container, pod network, mount and service rule a node's components made");
  cl->group("Node components");
  cl->add_option("--node-dir", *cleanup_dir, "The node's directory")->required();
  cl->add_option("--node-name", *cleanup_node, "The node's name")->capture_default_str();
  cl->callback([cleanup_dir, cleanup_node] {
    kubelet::CleanupNode(*cleanup_dir, *cleanup_node);
    proxy::Cleanup();
  });

  auto dn = std::make_shared<dns::DnsOptions>();
  CLI::App* dc = app.add_subcommand(
      "dns", "Serve cluster.local from the API and forward other names upstream");
  dc->group("Node components");
  dc->add_option("--server", dn->server, "URL of the API server")->required();
  dc->add_option("--cert-dir", dn->cert_dir, "Directory with ca.crt and dns.{crt,key}")->required();
  dc->add_option("--node-name", dn->node_name, "Name of this node")->required();
  dc->add_option("--listen", dn->listen, "IP:PORT to serve on (UDP and TCP)")
      ->capture_default_str();
  dc->add_option("--upstream", dn->upstreams,
                 "Resolvers for names outside the cluster, IP[:PORT], comma-separated "
                 "(default: the nameservers of /etc/resolv.conf)")
      ->delimiter(',');
  dc->add_option("--domain", dn->domain, "The cluster's domain")->capture_default_str();
  dc->add_option("--host-ip", dn->host_ip, "The address host.minik.internal answers with")
      ->capture_default_str();
  dc->add_option("--cluster-ip", dn->cluster_ip, "The address of the kube-dns Service")
      ->capture_default_str();
  dc->callback([dn] {
    for (const auto& u : dn->upstreams) {
      std::string ip;
      uint16_t port;
      if (!dns::ParseHostPort(u, &ip, &port)) {
        throw Exit{2, "--upstream " + u + ": expected an IPv4 address with an optional :PORT"};
      }
    }
    int rc = dns::RunDns(*dn);
    if (rc != 0) {
      throw Exit{rc, ""};
    }
  });

  auto px = std::make_shared<proxy::ProxyOptions>();
  auto px_cleanup = std::make_shared<bool>(false);
  auto px_sync = std::make_shared<std::string>("100ms");
  CLI::App* pc = app.add_subcommand(
      "proxy", "Program iptables so that Service IPs and node ports reach their endpoints");
  pc->group("Node components");
  pc->add_option("--server", px->server, "URL of the API server");
  pc->add_option("--cert-dir", px->cert_dir, "Directory with ca.crt and proxy.{crt,key}");
  pc->add_option("--node-name", px->node_name, "Name of this node (for Local traffic policies)");
  pc->add_option("--cluster-cidr", px->cluster_cidr, "Pod addresses of the cluster")
      ->capture_default_str();
  pc->add_option("--service-cidr", px->service_cidr,
                 "Service addresses (traffic to one without a Service is refused)")
      ->capture_default_str();
  pc->add_option("--nodeport-addresses", px->nodeport_addresses,
                 "CIDRs of the node addresses where node ports answer (default: all)")
      ->delimiter(',');
  pc->add_option("--min-sync-period", *px_sync, "Changes within this period are applied together")
      ->capture_default_str();
  pc->add_flag("--cleanup", *px_cleanup, "Remove every rule and chain of the proxy, then exit");
  pc->callback([px, px_cleanup, px_sync] {
    if (*px_cleanup) {
      proxy::Cleanup();
      return;
    }
    if (px->server.empty() || px->cert_dir.empty() || px->node_name.empty()) {
      throw Exit{2, "minik proxy needs --server, --cert-dir and --node-name (or --cleanup)"};
    }
    auto d = ParseDuration(*px_sync);
    if (!d) {
      throw Exit{2, "--min-sync-period: \"" + *px_sync + "\" is not a duration (e.g. 100ms, 1s)"};
    }
    px->min_sync_period = *d;
    int rc = proxy::RunProxy(*px);
    if (rc != 0) {
      throw Exit{rc, ""};
    }
  });

  auto shim = std::make_shared<kubelet::ShimOptions>();
  CLI::App* sh = app.add_subcommand("shim", "Supervise one container (started by the kubelet)");
  sh->group("Node components");
  sh->add_option("--id", shim->id, "Container id")->required();
  sh->add_option("--state-dir", shim->state_dir, "The container's state directory")->required();
  sh->add_option("--log", shim->log_file, "Log file")->required();
  sh->add_option("--pid-file", shim->pid_file, "Where the runtime writes the container's pid")
      ->required();
  sh->add_flag("--stdin", shim->stdin_open, "Keep stdin open for attach");
  sh->add_option("create", shim->create_argv, "The runtime's create command, after --")->required();
  sh->callback([shim] {
    int rc = kubelet::RunShim(*shim);
    if (rc != 0) {
      throw Exit{rc, ""};
    }
  });

  auto api = std::make_shared<apiserver::Options>();
  CLI::App* as = app.add_subcommand("apiserver", "Run the Kubernetes API server");
  as->group("Node components");
  as->add_option("--cert-dir", api->cert_dir, "Directory with ca.crt, apiserver.crt, apiserver.key")
      ->required();
  as->add_option("--data-dir", api->data_dir, "Directory for the store's files")->required();
  as->add_option("--port", api->port, "HTTPS port (0 picks a free one)")->capture_default_str();
  as->add_option("--bind-address", api->bind_address, "Address to listen on")
      ->capture_default_str();
  as->add_option("--advertise-address", api->advertise_address,
                 "Address clients reach this server at")
      ->capture_default_str();
  as->add_option("--store", api->store, "Store: sqlite or memory")->capture_default_str();
  as->add_option("--history-seconds", api->history_seconds,
                 "How long the store keeps history for watches")
      ->capture_default_str();
  as->add_option("--history-megabytes", api->history_megabytes,
                 "The most history the store keeps (the oldest goes first)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  auto port_file = std::make_shared<std::string>();
  as->add_option("--port-file", *port_file, "Write the bound port to this file once serving");
  as->callback([api, port_file] {
    log::SetComponent("apiserver");
    sigset_t set = exec::BlockTerminationSignals();
    apiserver::ApiServer server(*api);
    uint16_t port = server.Start();
    if (!port_file->empty()) {
      FILE* f = std::fopen(port_file->c_str(), "w");
      if (f) {
        std::fprintf(f, "%u\n", port);
        std::fclose(f);
      }
    }
    HeapTrimmer trimmer;
    exec::WaitForSignal(set);
    log::Info("shutting down");
    server.Stop();
  });
}

}  // namespace minik::cli
