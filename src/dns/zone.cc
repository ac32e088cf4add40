#include "dns/zone.h"

#include <arpa/inet.h>

#include <algorithm>
#include <mutex>
#include <sstream>

namespace minik::dns {

namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool InCidr(const std::string& ip, const std::string& cidr) {
  auto slash = cidr.find('/');
  in_addr a{}, net{};
  if (slash == std::string::npos || inet_pton(AF_INET, ip.c_str(), &a) != 1 ||
      inet_pton(AF_INET, cidr.substr(0, slash).c_str(), &net) != 1) {
    return false;
  }
  int bits = std::stoi(cidr.substr(slash + 1));
  uint32_t mask = bits == 0 ? 0 : htonl(~uint32_t(0) << (32 - bits));
  return (a.s_addr & mask) == (net.s_addr & mask);
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  return s;
}

std::string Dashed(std::string ip) {
  std::replace(ip.begin(), ip.end(), '.', '-');
  return ip;
}

}  // namespace

Record Zone::Soa() const {
  Record r;
  r.name = cfg_.domain;
  r.type = kSOA;
  r.ttl = cfg_.ttl;
  r.target = "ns.dns." + cfg_.domain;
  r.mbox = "hostmaster." + cfg_.domain;
  r.serial = serial_;
  r.refresh = 7200;
  r.retry = 1800;
  r.expire = 86400;
  r.minimum = cfg_.ttl;
  return r;
}

void Zone::Update(const std::vector<json>& services, const std::vector<json>& slices) {
  std::map<std::string, std::vector<Record>> records;
  std::set<std::string> names;
  auto add = [&](Record r) {
    r.ttl = cfg_.ttl;
    auto& list = records[r.name];
    if (std::find_if(list.begin(), list.end(), [&](const Record& o) {
          return o.type == r.type && o.ip == r.ip && o.target == r.target && o.port == r.port;
        }) == list.end()) {
      list.push_back(r);
    }
  };
  // Every suffix of a name inside the zone exists.
  auto exists = [&](std::string name) {
    while (EndsWith(name, cfg_.domain)) {
      names.insert(name);
      auto dot = name.find('.');
      if (name == cfg_.domain || dot == std::string::npos) {
        break;
      }
      name = name.substr(dot + 1);
    }
  };
  std::map<std::string, std::vector<const json*>> slices_of;
  for (const auto& s : slices) {
    const json* l = Find(s, "metadata.labels");
    std::string svc = l ? l->value("kubernetes.io/service-name", "") : "";
    if (!svc.empty()) {
      slices_of[GetString(s, "metadata.namespace") + "/" + svc].push_back(&s);
    }
  }
  for (const auto& svc : services) {
    std::string ns = GetString(svc, "metadata.namespace"), name = GetString(svc, "metadata.name");
    const json& spec = svc.contains("spec") ? svc["spec"] : json::object();
    std::string base = Lower(name + "." + ns + ".svc." + cfg_.domain);
    exists(base);
    std::string type = spec.value("type", "ClusterIP");
    if (type == "ExternalName") {
      Record r;
      r.name = base;
      r.type = kCNAME;
      r.target = Lower(spec.value("externalName", ""));
      while (!r.target.empty() && r.target.back() == '.') {
        r.target.pop_back();
      }
      add(r);
      continue;
    }
    std::string cluster_ip = spec.value("clusterIP", "");
    bool headless = cluster_ip == "None";
    if (cluster_ip.empty()) {
      continue;
    }
    auto srv = [&](const std::string& port_name, const std::string& proto, int port,
                   const std::string& target, uint16_t weight) {
      if (port_name.empty()) {
        return;
      }
      Record r;
      r.name = Lower("_" + port_name + "._" + proto + "." + base);
      r.type = kSRV;
      r.priority = 0;
      r.weight = weight;
      r.port = static_cast<uint16_t>(port);
      r.target = target;
      add(r);
      exists(r.name);
    };
    if (!headless) {
      Record a;
      a.name = base;
      a.type = kA;
      a.ip = cluster_ip;
      add(a);
      Record ptr;
      ptr.name = IpToReverse(cluster_ip);
      ptr.type = kPTR;
      ptr.target = base;
      add(ptr);
      for (const auto& p : spec.value("ports", json::array())) {
        srv(p.value("name", ""), Lower(p.value("protocol", std::string("TCP"))), p.value("port", 0),
            base, 100);
      }
      continue;
    }
    bool publish_all = spec.value("publishNotReadyAddresses", false);
    for (const json* s : slices_of[ns + "/" + name]) {
      const auto& eps = s->value("endpoints", json::array());
      for (const auto& e : eps) {
        const json* ready = Find(e, "conditions.ready");
        if (!publish_all && ready && ready->is_boolean() && !ready->get<bool>()) {
          continue;
        }
        for (const auto& addr : e.value("addresses", json::array())) {
          std::string ip = addr.get<std::string>();
          std::string host = Lower(e.value("hostname", Dashed(ip))) + "." + base;
          Record a;
          a.type = kA;
          a.ip = ip;
          a.name = base;
          add(a);
          a.name = host;
          add(a);
          exists(host);
          Record ptr;
          ptr.name = IpToReverse(ip);
          ptr.type = kPTR;
          ptr.target = host;
          add(ptr);
          for (const auto& p : s->value("ports", json::array())) {
            uint16_t weight =
                static_cast<uint16_t>(std::max<size_t>(1, 100 / std::max<size_t>(1, eps.size())));
            srv(p.value("name", ""), Lower(p.value("protocol", std::string("TCP"))),
                p.value("port", 0), host, weight);
          }
        }
      }
    }
  }
  std::unique_lock lock(mu_);
  if (records != records_ || names != names_) {
    ++serial_;
  }
  records_ = std::move(records);
  names_ = std::move(names);
}

std::optional<Answer> Zone::Lookup(const Question& q) const {
  std::shared_lock lock(mu_);
  Answer out;
  std::string name = q.name;
  auto nodata = [&] {
    out.rcode = kNoError;
    out.authority.push_back(Soa());
    return out;
  };
  auto nxdomain = [&] {
    out.rcode = kNXDomain;
    out.authority.push_back(Soa());
    return out;
  };
  if (!cfg_.host_name.empty() && name == cfg_.host_name) {
    if ((q.type == kA || q.type == kANY) && !cfg_.host_ip.empty()) {
      Record r;
      r.name = name;
      r.type = kA;
      r.ip = cfg_.host_ip;
      r.ttl = cfg_.ttl;
      out.answers.push_back(r);
      return out;
    }
    return nodata();
  }
  std::string reverse_ip = ReverseToIp(name);
  bool ours = EndsWith(name, "." + cfg_.domain) || name == cfg_.domain;
  if (!reverse_ip.empty()) {
    ours = std::any_of(cfg_.reverse_cidrs.begin(), cfg_.reverse_cidrs.end(),
                       [&](const std::string& c) { return InCidr(reverse_ip, c); });
  }
  if (!ours && records_.count(name) == 0) {
    return std::nullopt;
  }
  auto it = records_.find(name);
  if (it != records_.end()) {
    for (const auto& r : it->second) {
      if (r.type == q.type || q.type == kANY || r.type == kCNAME) {
        out.answers.push_back(r);
      }
    }
    // Only the CNAME when it is there and something else was asked.
    bool cname = std::any_of(out.answers.begin(), out.answers.end(),
                             [](const Record& r) { return r.type == kCNAME; });
    if (cname) {
      std::erase_if(out.answers, [](const Record& r) { return r.type != kCNAME; });
    }
    for (const auto& r : out.answers) {
      if (r.type == kSRV) {
        auto t = records_.find(r.target);
        if (t != records_.end()) {
          for (const auto& a : t->second) {
            if (a.type == kA) {
              out.additional.push_back(a);
            }
          }
        }
      }
    }
    if (!out.answers.empty()) {
      return out;
    }
    return nodata();
  }
  if (names_.count(name) || name == cfg_.domain || name == "svc." + cfg_.domain ||
      name == "pod." + cfg_.domain) {
    return nodata();
  }
  // A-B-C-D.NS.pod.DOMAIN
  std::string pod_suffix = ".pod." + cfg_.domain;
  if (EndsWith(name, pod_suffix)) {
    std::string rest = name.substr(0, name.size() - pod_suffix.size());
    auto dot = rest.find('.');
    if (dot != std::string::npos && rest.find('.', dot + 1) == std::string::npos) {
      std::string ip = rest.substr(0, dot);
      std::replace(ip.begin(), ip.end(), '-', '.');
      in_addr a{};
      if (inet_pton(AF_INET, ip.c_str(), &a) == 1) {
        if (q.type != kA && q.type != kANY) {
          return nodata();
        }
        Record r;
        r.name = name;
        r.type = kA;
        r.ip = ip;
        r.ttl = cfg_.ttl;
        out.answers.push_back(r);
        return out;
      }
    }
  }
  return nxdomain();
}

}  // namespace minik::dns
