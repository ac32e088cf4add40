// `minik service` and `minik tunnel`: reaching a cluster's Services from the host.

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include "cli/commands.h"
#include "cli/profile.h"
#include "client/client.h"
#include "common/error.h"
#include "common/exec.h"

namespace minik::cli {

namespace {

// A client of the profile's API server with the profile's admin credentials.
std::shared_ptr<client::Client> ProfileClient(const GlobalFlags& g, ProfileConfig* cfg) {
  if (!LoadProfile(g.profile, cfg)) {
    throw Exit{kExitProfileNotFound, "profile \"" + g.profile + "\" not found; `minik start -p " +
                                         g.profile + "` creates it"};
  }
  Credentials creds = LoadCredentials(g.profile);
  client::Config c;
  c.server = "https://127.0.0.1:" + std::to_string(cfg->apiserver_port);
  c.ca_pem = creds.ca_cert;
  c.cert_pem = creds.client_cert;
  c.key_pem = creds.client_key;
  return std::make_shared<client::Client>(c);
}

// Where the host reaches the node's ports. The native node is the host, and
// its node ports answer on loopback.
std::string NodeAddress(const ProfileConfig& cfg) {
  (void)cfg;
  return "127.0.0.1";
}

json GetService(client::Client& c, const std::string& ns, const std::string& name,
                const std::string& profile) {
  try {
    return c.Get("/api/v1/namespaces/" + ns + "/services/" + name);
  } catch (const client::ApiError& e) {
    if (e.code == 404) {
      throw Exit{1, "service " + ns + "/" + name + " not found; `kubectl get svc -n " + ns +
                        "` lists them (profile \"" + profile + "\")"};
    }
    if (e.code == 0) {
      throw Exit{1, std::string("the cluster does not answer (") + e.what() +
                        "); is it running? `minik status -p " + profile + "`"};
    }
    throw;
  }
}

// One URL per node port of `svc`; empty for a Service without node ports.
std::vector<std::pair<std::string, std::string>> Urls(const json& svc, const std::string& node,
                                                      const std::string& scheme) {
  std::vector<std::pair<std::string, std::string>> out;  // port name, URL
  for (const auto& p : svc["spec"].value("ports", json::array())) {
    int np = p.value("nodePort", 0);
    if (np > 0) {
      std::string name = p.value("name", "");
      out.emplace_back(name.empty() ? std::to_string(p.value("port", 0)) : name,
                       scheme + "://" + node + ":" + std::to_string(np));
    }
  }
  return out;
}

bool HasReadyEndpoint(client::Client& c, const std::string& ns, const std::string& name) {
  json slices = c.Get("/apis/discovery.k8s.io/v1/namespaces/" + ns +
                      "/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D" + name);
  for (const auto& s : slices.value("items", json::array())) {
    for (const auto& e : s.value("endpoints", json::array())) {
      const json* r = Find(e, "conditions.ready");
      if (!r || !r->is_boolean() || r->get<bool>()) {
        return true;
      }
    }
  }
  return false;
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows) {
    w.resize(std::max(w.size(), r.size()));
    for (size_t i = 0; i < r.size(); ++i) {
      w[i] = std::max(w[i], r[i].size());
    }
  }
  auto line = [&](char c) {
    std::string s = "|";
    for (size_t x : w) {
      s += std::string(x + 2, c) + "|";
    }
    std::printf("%s\n", s.c_str());
  };
  line('-');
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string s = "|";
    for (size_t j = 0; j < w.size(); ++j) {
      std::string v = j < rows[i].size() ? rows[i][j] : "";
      s += " " + v + std::string(w[j] - v.size(), ' ') + " |";
    }
    std::printf("%s\n", s.c_str());
    if (i == 0) {
      line('-');
    }
  }
  line('-');
}

std::atomic<bool> g_tunnel_stop{false};

}  // namespace

void AddService(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string name, ns = "default", scheme = "http";
    bool url = false, all = false;
    int wait = 120;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "service", "Print (or open) the URL of a NodePort or LoadBalancer Service from the host");
  cmd->add_option("name", o->name, "The Service");
  cmd->add_option("-n,--namespace", o->ns, "Its namespace")->capture_default_str();
  cmd->add_flag("--url", o->url, "Print the URLs only, one per line (no browser)");
  cmd->add_flag("--all", o->all, "Every Service of the namespace with a node port");
  cmd->add_option("--scheme", o->scheme, "Scheme of the URLs")->capture_default_str();
  cmd->add_option("--wait", o->wait, "Seconds to wait for the Service to have a ready pod")
      ->capture_default_str();
  cmd->require_subcommand(0, 1);

  CLI::App* list = cmd->add_subcommand("list", "The Services of the cluster and their URLs");
  auto list_ns = std::make_shared<std::string>();
  list->add_option("-n,--namespace", *list_ns, "Only this namespace (default: all)");
  list->callback([&g, list_ns] {
    ProfileConfig cfg;
    auto c = ProfileClient(g, &cfg);
    json svcs = c->Get(list_ns->empty() ? "/api/v1/services"
                                        : "/api/v1/namespaces/" + *list_ns + "/services");
    std::vector<std::vector<std::string>> rows = {{"NAMESPACE", "NAME", "TARGET PORT", "URL"}};
    for (const auto& s : svcs.value("items", json::array())) {
      auto urls = Urls(s, NodeAddress(cfg), "http");
      std::string target, url;
      for (const auto& [port, u] : urls) {
        target += (target.empty() ? "" : "\n") + port;
        url += (url.empty() ? "" : " ") + u;
      }
      rows.push_back({GetString(s, "metadata.namespace"), GetString(s, "metadata.name"),
                      urls.empty() ? "No node port" : target, url});
    }
    PrintTable(rows);
  });

  cmd->callback([&g, o, cmd] {
    if (cmd->got_subcommand("list")) {
      return;
    }
    if (o->name.empty() && !o->all) {
      throw Exit{2, "which Service? `minik service NAME` (or --all, or `minik service list`)"};
    }
    ProfileConfig cfg;
    auto c = ProfileClient(g, &cfg);
    std::vector<json> targets;
    if (o->all) {
      for (const auto& s :
           c->Get("/api/v1/namespaces/" + o->ns + "/services").value("items", json::array())) {
        if (!Urls(s, NodeAddress(cfg), o->scheme).empty()) {
          targets.push_back(s);
        }
      }
    } else {
      json svc = GetService(*c, o->ns, o->name, g.profile);
      if (Urls(svc, NodeAddress(cfg), o->scheme).empty()) {
        throw Exit{1, "service " + o->ns + "/" + o->name + " has no node port (type " +
                          GetString(svc, "spec.type", "ClusterIP") +
                          "); `kubectl expose ... --type=NodePort` makes one, or `kubectl "
                          "port-forward svc/" +
                          o->name + " LOCAL:PORT` reaches it as it is"};
      }
      targets.push_back(svc);
    }
    std::vector<std::vector<std::string>> rows = {{"NAMESPACE", "NAME", "TARGET PORT", "URL"}};
    for (const auto& svc : targets) {
      std::string ns = GetString(svc, "metadata.namespace"), name = GetString(svc, "metadata.name");
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o->wait);
      bool warned = false;
      while (!HasReadyEndpoint(*c, ns, name)) {
        if (std::chrono::steady_clock::now() > deadline) {
          throw Exit{1, "service " + ns + "/" + name + " has no ready pod after " +
                            std::to_string(o->wait) +
                            "s; `kubectl get pods` and `kubectl describe svc " + name + " -n " +
                            ns + "` show why"};
        }
        if (!warned && !o->url) {
          std::printf("* Waiting for service %s/%s to have a ready pod ...\n", ns.c_str(),
                      name.c_str());
          warned = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
      for (const auto& [port, url] : Urls(svc, NodeAddress(cfg), o->scheme)) {
        if (o->url) {
          std::printf("%s\n", url.c_str());
        } else {
          rows.push_back({ns, name, port, url});
        }
      }
    }
    if (o->url) {
      return;
    }
    PrintTable(rows);
    bool display = getenv("DISPLAY") || getenv("WAYLAND_DISPLAY");
    if (display && !exec::LookPath("xdg-open").empty()) {
      for (size_t i = 1; i < rows.size(); ++i) {
        std::printf("* Opening %s in your default browser...\n", rows[i][3].c_str());
        exec::Command open;
        open.argv = {"xdg-open", rows[i][3]};
        exec::Run(open);
      }
    }
  });
}

void AddTunnel(CLI::App& app, GlobalFlags& g) {
  CLI::App* cmd = app.add_subcommand(
      "tunnel", "Give LoadBalancer Services an external IP reachable from the host, while it runs");
  auto cleanup = std::make_shared<bool>(false);
  cmd->add_flag("-c,--cleanup", *cleanup,
                "Remove the external IPs a stopped tunnel left, then exit");
  cmd->callback([&g, cleanup] {
    ProfileConfig cfg;
    auto c = ProfileClient(g, &cfg);
    // The native node's Service addresses are routed on the host by the
    // proxy's rules, so a Service's own cluster IP is its external IP, as
    // minikube's tunnel does for VMs.
    auto sync = [&](bool assign) {
      std::set<std::string> done;
      json svcs = c->Get("/api/v1/services");
      for (const auto& s : svcs.value("items", json::array())) {
        if (GetString(s, "spec.type") != "LoadBalancer") {
          continue;
        }
        std::string ns = GetString(s, "metadata.namespace"), name = GetString(s, "metadata.name");
        std::string ip = GetString(s, "spec.clusterIP");
        json ingress = s.value("status", json::object())
                           .value("loadBalancer", json::object())
                           .value("ingress", json::array());
        bool has = ingress.size() == 1 && ingress[0].value("ip", "") == ip;
        std::string path = "/api/v1/namespaces/" + ns + "/services/" + name + "/status";
        if (assign && !has) {
          c->Patch(path, {{"status", {{"loadBalancer", {{"ingress", {{{"ip", ip}}}}}}}}});
          std::printf("* Service %s/%s: external IP %s\n", ns.c_str(), name.c_str(), ip.c_str());
          std::fflush(stdout);
        } else if (!assign && has) {
          c->Patch(path, {{"status", {{"loadBalancer", {{"ingress", nullptr}}}}}});
          std::printf("* Service %s/%s: external IP %s removed\n", ns.c_str(), name.c_str(),
                      ip.c_str());
        }
        done.insert(ns + "/" + name);
      }
      return done;
    };
    if (*cleanup) {
      sync(false);
      return;
    }
    sigset_t set = exec::BlockTerminationSignals();
    std::thread waiter([set] {
      exec::WaitForSignal(set);
      g_tunnel_stop = true;
    });
    std::printf(
        "* Tunnel for profile \"%s\" started; LoadBalancer Services get their cluster IP "
        "as external IP. Press Ctrl-C to stop.\n",
        g.profile.c_str());
    std::fflush(stdout);
    while (!g_tunnel_stop) {
      try {
        sync(true);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "! %s (retrying)\n", e.what());
      }
      for (int i = 0; i < 10 && !g_tunnel_stop; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    waiter.join();
    std::printf("* Stopping the tunnel\n");
    try {
      sync(false);
    } catch (const std::exception& e) {
      throw Exit{1, std::string("could not remove the external IPs: ") + e.what() +
                        "; `minik tunnel --cleanup` removes them"};
    }
  });
}

}  // namespace minik::cli
