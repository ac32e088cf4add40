#pragma once
// `minik dns`: the cluster DNS. Answers the zone (zone.h) from watches of
// Services and EndpointSlices, and forwards every other name to the node's
// upstream resolvers, with a cache. UDP and TCP on one address; answers too
// big for a UDP client are truncated so it retries over TCP.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dns/zone.h"

namespace minik::dns {

struct ServerOptions {
  std::string listen_ip = "127.0.0.1";
  uint16_t port = 53;  // 0: any free port (tests)
  // "IP" or "IP:PORT", tried in order; empty: nothing is forwarded (SERVFAIL).
  std::vector<std::string> upstreams;
  std::chrono::milliseconds upstream_timeout{2000};
  size_t cache_entries = 10000;
  std::chrono::seconds max_cache_ttl{30};
};

class Server {
 public:
  Server(ServerOptions opts, std::shared_ptr<Zone> zone);
  ~Server();
  // Binds (IP_FREEBIND: the address may appear later, as a bridge does) and
  // serves on background threads. Throws minik::Error when it cannot bind.
  void Start();
  void Stop();
  uint16_t port() const { return port_; }
  // The answer to one query in wire format (for both transports); `tcp` says
  // how it came, `max_udp` the size a UDP answer may have.
  std::string Handle(const std::string& query, bool tcp);

  struct Stats {
    std::atomic<uint64_t> queries{0}, forwarded{0}, cache_hits{0}, errors{0};
  };
  const Stats& stats() const { return stats_; }

 private:
  std::string Forward(const std::string& query, const Message& q, bool tcp);
  void UdpLoop();
  void TcpLoop();
  void TcpConnection(int fd);

  ServerOptions o_;
  std::shared_ptr<Zone> zone_;
  int udp_ = -1, tcp_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread udp_thread_, tcp_thread_;
  std::atomic<int> in_flight_{0};
  struct CacheEntry {
    std::string response;  // without its first two bytes (the ID)
    std::chrono::steady_clock::time_point expires;
  };
  std::mutex cache_mu_;
  std::map<std::string, CacheEntry> cache_;
  Stats stats_;
};

// Parses "IP" or "IP:PORT" (port 53 by default); false when malformed.
bool ParseHostPort(const std::string& s, std::string* ip, uint16_t* port);
// The nameservers of a resolv.conf file, as "IP:53".
std::vector<std::string> ResolvConfNameservers(const std::string& path);

struct DnsOptions {
  std::string server;    // API server URL
  std::string cert_dir;  // ca.crt, dns.crt, dns.key
  std::string node_name;
  std::string listen = "10.244.0.1:10053";
  std::vector<std::string> upstreams;  // empty: the node's /etc/resolv.conf
  std::string domain = "cluster.local";
  std::string host_ip = "10.244.0.1";     // what host.minik.internal is
  std::string cluster_ip = "10.96.0.10";  // of the kube-dns Service
};

// Serves until SIGTERM or SIGINT, keeping kube-system/kube-dns (Service
// 10.96.0.10, port 53) pointed at this server.
int RunDns(const DnsOptions& opts);

}  // namespace minik::dns
