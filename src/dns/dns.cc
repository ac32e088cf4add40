// `minik dns`: the zone fed by watches, the server, and the kube-dns Service.

#include <condition_variable>

#include "client/client.h"
#include "common/error.h"
#include "common/exec.h"
#include "common/log.h"
#include "dns/server.h"

namespace minik::dns {

namespace {

// kube-system/kube-dns: the Service pods' resolv.conf names (10.96.0.10:53),
// without a selector, and its EndpointSlice pointing at this server.
void EnsureService(client::Client& c, const DnsOptions& o, const std::string& ip, uint16_t port) {
  json svc = {
      {"apiVersion", "v1"},
      {"kind", "Service"},
      {"metadata",
       {{"name", "kube-dns"},
        {"namespace", "kube-system"},
        {"labels", {{"k8s-app", "kube-dns"}, {"kubernetes.io/name", "CoreDNS"}}}}},
      {"spec",
       {{"clusterIP", o.cluster_ip},
        {"ports",
         {{{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}, {"targetPort", port}},
          {{"name", "dns-tcp"}, {"port", 53}, {"protocol", "TCP"}, {"targetPort", port}}}}}}};
  try {
    c.Post("/api/v1/namespaces/kube-system/services", svc);
  } catch (const client::ApiError& e) {
    if (e.code != 409) {
      throw;
    }
  }
  std::string name = "kube-dns-" + o.node_name;
  json slice = {{"apiVersion", "discovery.k8s.io/v1"},
                {"kind", "EndpointSlice"},
                {"metadata",
                 {{"name", name},
                  {"namespace", "kube-system"},
                  {"labels",
                   {{"kubernetes.io/service-name", "kube-dns"},
                    {"endpointslice.kubernetes.io/managed-by", "minik-dns"}}}}},
                {"addressType", "IPv4"},
                {"endpoints",
                 {{{"addresses", {ip}},
                   {"conditions", {{"ready", true}, {"serving", true}, {"terminating", false}}},
                   {"nodeName", o.node_name}}}},
                {"ports",
                 {{{"name", "dns"}, {"port", port}, {"protocol", "UDP"}},
                  {{"name", "dns-tcp"}, {"port", port}, {"protocol", "TCP"}}}}};
  std::string base = "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices";
  try {
    json cur = c.Get(base + "/" + name);
    slice["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"];
    c.Put(base + "/" + name, slice);
  } catch (const client::ApiError& e) {
    if (e.code != 404) {
      throw;
    }
    c.Post(base, slice);
  }
}

}  // namespace

int RunDns(const DnsOptions& o) {
  log::SetComponent("dns");
  sigset_t set = exec::BlockTerminationSignals();
  std::string ip;
  uint16_t port = 0;
  if (!ParseHostPort(o.listen, &ip, &port)) {
    log::Error("--listen {}: expected IP:PORT", o.listen);
    return 2;
  }
  ZoneConfig zc;
  zc.domain = o.domain;
  zc.host_ip = o.host_ip;
  auto zone = std::make_shared<Zone>(zc);
  ServerOptions so;
  so.listen_ip = ip;
  so.port = port;
  so.upstreams = o.upstreams.empty() ? ResolvConfNameservers("/etc/resolv.conf") : o.upstreams;
  Server server(so, zone);
  server.Start();
  std::string ups;
  for (const auto& u : so.upstreams) {
    ups += (ups.empty() ? "" : ", ") + u;
  }
  log::Info("serving {} on {}:{} (udp and tcp), forwarding to {}", o.domain, ip, server.port(),
            ups.empty() ? "nothing" : ups);

  auto c =
      std::make_shared<client::Client>(client::Config::FromCertDir(o.server, o.cert_dir, "dns"));
  auto services = std::make_shared<client::Informer>(c, client::resources::kServices);
  auto slices = std::make_shared<client::Informer>(c, client::resources::kEndpointSlices);
  std::mutex mu;
  std::condition_variable cv;
  bool dirty = true;
  auto wake = [&] {
    {
      std::lock_guard lock(mu);
      dirty = true;
    }
    cv.notify_all();
  };
  for (auto& inf : {services, slices}) {
    inf->AddHandlers({[&](const client::Object&) { wake(); },
                      [&](const client::Object&, const client::Object&) { wake(); },
                      [&](const client::Object&) { wake(); }});
    inf->Start();
  }
  std::atomic<bool> stop{false};
  std::thread updater([&] {
    bool ensured = false;
    while (!stop) {
      if (!ensured) {
        try {
          EnsureService(*c, o, ip, server.port());
          ensured = true;
        } catch (const std::exception& e) {
          log::Warn("kube-dns service: {}; trying again", e.what());
        }
      }
      {
        std::unique_lock lock(mu);
        cv.wait_for(lock, std::chrono::seconds(ensured ? 30 : 1),
                    [&] { return dirty || stop.load(); });
        if (!dirty) {
          continue;
        }
        dirty = false;
      }
      if (!services->synced() || !slices->synced()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        wake();
        continue;
      }
      std::vector<json> svcs, sls;
      for (const auto& s : services->List())
        svcs.push_back(*s);
      for (const auto& s : slices->List())
        sls.push_back(*s);
      zone->Update(svcs, sls);
    }
  });
  exec::WaitForSignal(set);
  log::Info("shutting down");
  stop = true;
  cv.notify_all();
  updater.join();
  services->Stop();
  slices->Stop();
  server.Stop();
  return 0;
}

}  // namespace minik::dns
