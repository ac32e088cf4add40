#pragma once
// The cluster's names, as CoreDNS's kubernetes plugin serves them:
//
//   SVC.NS.svc.DOMAIN             A: the ClusterIP, or for a headless Service
//                                 each ready endpoint; CNAME for ExternalName
//   HOST.SVC.NS.svc.DOMAIN        A: a headless Service's endpoint, by its
//                                 hostname (StatefulSet pods) or its dashed IP
//   _PORT._PROTO.SVC.NS.svc...    SRV for named ports
//   A-B-C-D.NS.pod.DOMAIN         A: A.B.C.D (pods by address)
//   D.C.B.A.in-addr.arpa          PTR for Service and endpoint addresses
//   host.minik.internal           A: the host, as host.minikube.internal
//
// A name that exists without records of the asked type gets NOERROR and no
// answer (NODATA); one that does not exist gets NXDOMAIN; both carry the
// zone's SOA. Names outside the zone are not answered here (forwarded).

#include <map>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/json.h"
#include "dns/message.h"

namespace minik::dns {

struct ZoneConfig {
  std::string domain = "cluster.local";
  std::string host_name = "host.minik.internal";
  std::string host_ip;  // "" answers host_name with nothing
  uint32_t ttl = 5;
  // Reverse lookups of addresses in these CIDRs are the zone's (NXDOMAIN when
  // unknown); others are forwarded.
  std::vector<std::string> reverse_cidrs = {"10.96.0.0/12", "10.244.0.0/16"};
};

struct Answer {
  uint8_t rcode = kNoError;
  std::vector<Record> answers, authority, additional;
};

class Zone {
 public:
  explicit Zone(ZoneConfig cfg) : cfg_(std::move(cfg)) {}
  // Replaces what the zone knows with these Services and EndpointSlices.
  void Update(const std::vector<json>& services, const std::vector<json>& slices);
  // The answer for `q`, or nullopt when the name is not the zone's.
  std::optional<Answer> Lookup(const Question& q) const;

 private:
  Record Soa() const;
  ZoneConfig cfg_;
  mutable std::shared_mutex mu_;
  std::map<std::string, std::vector<Record>> records_;
  std::set<std::string> names_;  // names that exist, records or not
  uint32_t serial_ = 1;
};

}  // namespace minik::dns
