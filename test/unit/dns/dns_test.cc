#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "dns/message.h"
#include "dns/server.h"
#include "dns/zone.h"

using namespace minik;
using namespace minik::dns;

namespace {

std::string Query(const std::string& name, uint16_t type, uint16_t id = 0x1234, bool edns = false) {
  Message m;
  m.id = id;
  m.recursion_desired = true;
  m.questions.push_back({name, type, 1});
  m.edns_size = edns ? 4096 : 0;
  return Build(m);
}

json Svc(const std::string& ns, const std::string& name, const std::string& ip,
         json extra = json::object()) {
  json spec = {{"clusterIP", ip},
               {"ports", {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}}}}};
  spec.update(extra);
  return {{"metadata", {{"namespace", ns}, {"name", name}}}, {"spec", spec}};
}

json Slice(const std::string& ns, const std::string& svc, json endpoints) {
  return {{"metadata",
           {{"namespace", ns},
            {"name", svc + "-x"},
            {"labels", {{"kubernetes.io/service-name", svc}}}}},
          {"addressType", "IPv4"},
          {"ports", {{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}},
          {"endpoints", endpoints}};
}

std::shared_ptr<Zone> TestZone(const std::string& domain = "cluster.local") {
  ZoneConfig zc;
  zc.domain = domain;
  zc.host_ip = "10.244.0.1";
  auto z = std::make_shared<Zone>(zc);
  json eps = json::array();
  for (int i = 0; i < 2; ++i) {
    eps.push_back({{"addresses", {"10.244.0." + std::to_string(10 + i)}},
                   {"hostname", "db-" + std::to_string(i)},
                   {"conditions", {{"ready", true}}}});
  }
  eps.push_back({{"addresses", {"10.244.0.19"}}, {"conditions", {{"ready", false}}}});
  json many = json::array();
  for (int i = 0; i < 100; ++i) {
    many.push_back({{"addresses", {"10.244.1." + std::to_string(i)}}});
  }
  z->Update({Svc("default", "web", "10.96.0.20"),
             Svc("default", "db", "None"),
             Svc("default", "many", "None"),
             {{"metadata", {{"namespace", "default"}, {"name", "out"}}},
              {"spec", {{"type", "ExternalName"}, {"externalName", "Example.COM."}}}}},
            {Slice("default", "db", eps), Slice("default", "many", many)});
  return z;
}

std::vector<std::string> Ips(const std::vector<Record>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) {
    if (r.type == kA)
      out.push_back(r.ip);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Sends `query` to 127.0.0.1:port over UDP or TCP; the raw answer.
std::string Ask(uint16_t port, const std::string& query, bool tcp) {
  int fd = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  std::string out;
  if (tcp) {
    std::string framed =
        std::string(1, char(query.size() >> 8)) + char(query.size() & 0xFF) + query;
    REQUIRE(send(fd, framed.data(), framed.size(), 0) == ssize_t(framed.size()));
    unsigned char len[2];
    REQUIRE(recv(fd, len, 2, MSG_WAITALL) == 2);
    out.resize((len[0] << 8) | len[1]);
    REQUIRE(recv(fd, out.data(), out.size(), MSG_WAITALL) == ssize_t(out.size()));
  } else {
    REQUIRE(send(fd, query.data(), query.size(), 0) == ssize_t(query.size()));
    char buf[65535];
    ssize_t k = recv(fd, buf, sizeof(buf), 0);
    REQUIRE(k > 0);
    out.assign(buf, size_t(k));
  }
  close(fd);
  return out;
}

}  // namespace

TEST_CASE("dns messages round-trip, compress names and truncate") {
  Message m;
  m.id = 7;
  m.response = true;
  m.questions.push_back({"web.default.svc.cluster.local", kA, 1});
  for (int i = 0; i < 3; ++i) {
    Record r;
    r.name = "web.default.svc.cluster.local";
    r.type = kA;
    r.ip = "10.0.0." + std::to_string(i);
    m.answers.push_back(r);
  }
  std::string wire = Build(m);
  // Compressed: the name is written once, then pointers.
  CHECK(wire.size() < 12 + 35 + 3 * (2 + 10 + 4) + 10);
  std::string err;
  auto back = Parse(wire, &err);
  REQUIRE(back);
  CHECK(back->id == 7);
  CHECK(back->response);
  CHECK(back->questions[0].name == "web.default.svc.cluster.local");
  CHECK(back->min_ttl == 5);
  // Names are case-insensitive: parsed in lower case.
  auto upper = Parse(Query("WEB.Default.SVC.cluster.local", kA), &err);
  REQUIRE(upper);
  CHECK(upper->questions[0].name == "web.default.svc.cluster.local");

  std::string small = Build(m, 60);
  auto cut = Parse(small, &err);
  REQUIRE(cut);
  CHECK(cut->truncated);
  CHECK(small.size() <= 60);

  CHECK_FALSE(Parse(std::string("\x01\x02\x03", 3), &err));
  CHECK_THAT(err, Catch::Contains("header"));
  std::string bad = Query("a.b", kA);
  bad.resize(bad.size() - 3);
  CHECK_FALSE(Parse(bad, &err));
  CHECK_THAT(err, Catch::Contains("question"));
  // A compression pointer loop is refused, not followed forever.
  std::string loop = std::string("\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12) +
                     "\xC0\x0C" + std::string("\x00\x01\x00\x01", 4);
  CHECK_FALSE(Parse(loop, &err));

  CHECK(ReverseToIp("20.0.96.10.in-addr.arpa") == "10.96.0.20");
  CHECK(ReverseToIp("x.0.96.10.in-addr.arpa").empty());
  CHECK(IpToReverse("10.96.0.20") == "20.0.96.10.in-addr.arpa");
}

TEST_CASE("the zone answers services, endpoints, pods and the host") {
  auto z = TestZone();
  auto a = z->Lookup({"web.default.svc.cluster.local", kA, 1});
  REQUIRE(a);
  CHECK(a->rcode == kNoError);
  CHECK(Ips(a->answers) == std::vector<std::string>{"10.96.0.20"});

  auto headless = z->Lookup({"db.default.svc.cluster.local", kA, 1});
  CHECK(Ips(headless->answers) == std::vector<std::string>{"10.244.0.10", "10.244.0.11"});
  auto one = z->Lookup({"db-1.db.default.svc.cluster.local", kA, 1});
  CHECK(Ips(one->answers) == std::vector<std::string>{"10.244.0.11"});

  auto srv = z->Lookup({"_http._tcp.db.default.svc.cluster.local", kSRV, 1});
  REQUIRE(srv->answers.size() == 2);
  CHECK(srv->answers[0].port == 8080);
  CHECK(srv->additional.size() == 2);
  auto srv_web = z->Lookup({"_http._tcp.web.default.svc.cluster.local", kSRV, 1});
  REQUIRE(srv_web->answers.size() == 1);
  CHECK(srv_web->answers[0].target == "web.default.svc.cluster.local");
  CHECK(srv_web->answers[0].port == 80);

  auto ptr = z->Lookup({"20.0.96.10.in-addr.arpa", kPTR, 1});
  REQUIRE(ptr->answers.size() == 1);
  CHECK(ptr->answers[0].target == "web.default.svc.cluster.local");
  auto ptr_ep = z->Lookup({"10.0.244.10.in-addr.arpa", kPTR, 1});
  CHECK(ptr_ep->answers.at(0).target == "db-0.db.default.svc.cluster.local");
  // An address of the cluster that nothing has: NXDOMAIN; elsewhere: not ours.
  CHECK(z->Lookup({"99.0.96.10.in-addr.arpa", kPTR, 1})->rcode == kNXDomain);
  CHECK_FALSE(z->Lookup({"8.8.8.8.in-addr.arpa", kPTR, 1}));

  auto cname = z->Lookup({"out.default.svc.cluster.local", kA, 1});
  REQUIRE(cname->answers.size() == 1);
  CHECK(cname->answers[0].type == kCNAME);
  CHECK(cname->answers[0].target == "example.com");

  // NODATA for a name that exists, NXDOMAIN for one that does not; both with the SOA.
  auto aaaa = z->Lookup({"web.default.svc.cluster.local", kAAAA, 1});
  CHECK(aaaa->rcode == kNoError);
  CHECK(aaaa->answers.empty());
  REQUIRE(aaaa->authority.size() == 1);
  CHECK(aaaa->authority[0].type == kSOA);
  CHECK(z->Lookup({"default.svc.cluster.local", kA, 1})->rcode == kNoError);
  auto nx = z->Lookup({"nope.default.svc.cluster.local", kA, 1});
  CHECK(nx->rcode == kNXDomain);
  CHECK(nx->authority.size() == 1);
  // Search-path expansions of a full name do not exist.
  CHECK(z->Lookup({"web.default.svc.cluster.local.default.svc.cluster.local", kA, 1})->rcode ==
        kNXDomain);

  auto pod = z->Lookup({"10-244-0-7.default.pod.cluster.local", kA, 1});
  CHECK(Ips(pod->answers) == std::vector<std::string>{"10.244.0.7"});
  auto host = z->Lookup({"host.minik.internal", kA, 1});
  CHECK(Ips(host->answers) == std::vector<std::string>{"10.244.0.1"});

  CHECK_FALSE(z->Lookup({"example.com", kA, 1}));

  // Updates replace what the zone knows.
  z->Update({}, {});
  CHECK(z->Lookup({"web.default.svc.cluster.local", kA, 1})->rcode == kNXDomain);
}

TEST_CASE("the server answers over udp and tcp, truncates, forwards and caches") {
  // The "upstream": another server, authoritative for upstream.test.
  auto upstream_zone = TestZone("upstream.test");
  ServerOptions uo;
  uo.port = 0;
  Server upstream(uo, upstream_zone);
  upstream.Start();

  ServerOptions so;
  so.port = 0;
  so.upstreams = {"127.0.0.1:" + std::to_string(upstream.port())};
  Server server(so, TestZone());
  server.Start();
  std::string err;

  auto udp = Parse(Ask(server.port(), Query("web.default.svc.cluster.local", kA, 42), false), &err);
  REQUIRE(udp);
  CHECK(udp->id == 42);
  CHECK(udp->authoritative);
  CHECK(udp->rcode == kNoError);
  auto tcp = Parse(Ask(server.port(), Query("web.default.svc.cluster.local", kA, 43), true), &err);
  REQUIRE(tcp);
  CHECK(tcp->id == 43);

  // 100 endpoints do not fit in 512 bytes: truncated over UDP, whole over TCP.
  auto big_udp = Ask(server.port(), Query("many.default.svc.cluster.local", kA), false);
  CHECK(big_udp.size() <= 512);
  CHECK(Parse(big_udp, &err)->truncated);
  auto big_tcp = Ask(server.port(), Query("many.default.svc.cluster.local", kA), true);
  CHECK_FALSE(Parse(big_tcp, &err)->truncated);
  CHECK(big_tcp.size() > 1000);

  // Other names go upstream, once; the second time comes from the cache.
  auto fwd = Parse(Ask(server.port(), Query("web.default.svc.upstream.test", kA, 7), false), &err);
  REQUIRE(fwd);
  CHECK(fwd->id == 7);
  CHECK(fwd->rcode == kNoError);
  CHECK(fwd->authoritative);  // the upstream's answer, relayed as it came
  auto again =
      Parse(Ask(server.port(), Query("web.default.svc.upstream.test", kA, 8), false), &err);
  CHECK(again->id == 8);
  CHECK(server.stats().forwarded == 1);
  CHECK(server.stats().cache_hits == 1);
  CHECK(upstream.stats().queries == 1);
  auto nx = Parse(Ask(server.port(), Query("nope.default.svc.upstream.test", kA), true), &err);
  CHECK(nx->rcode == kNXDomain);

  // No upstream answering: SERVFAIL, not silence.
  ServerOptions lonely;
  lonely.port = 0;
  lonely.upstreams = {"127.0.0.1:1"};
  lonely.upstream_timeout = std::chrono::milliseconds(300);
  Server alone(lonely, TestZone());
  alone.Start();
  CHECK(Parse(Ask(alone.port(), Query("example.com", kA), false), &err)->rcode == kServFail);
  // Garbage gets FORMERR (or nothing when there is no header to answer).
  std::string junk = Query("a.b", kA);
  junk.resize(14);
  CHECK(Parse(Ask(server.port(), junk, false), &err)->rcode == kFormErr);
  alone.Stop();
  server.Stop();
  upstream.Stop();
}
