#pragma once
// DNS messages (RFC 1035, with EDNS0 of RFC 6891): what the cluster DNS needs
// to read a query and write an answer. Names are kept in lower case without
// the final dot ("web.default.svc.cluster.local").

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace minik::dns {

enum Type : uint16_t {
  kA = 1,
  kNS = 2,
  kCNAME = 5,
  kSOA = 6,
  kPTR = 12,
  kMX = 15,
  kTXT = 16,
  kAAAA = 28,
  kSRV = 33,
  kOPT = 41,
  kANY = 255,
};
enum Rcode : uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNXDomain = 3,
  kNotImp = 4,
  kRefused = 5
};

struct Question {
  std::string name;
  uint16_t type = kA;
  uint16_t klass = 1;  // IN
};

struct Record {
  std::string name;
  uint16_t type = kA;
  uint32_t ttl = 5;
  // By type: A -> ip ("10.96.0.10"); CNAME, PTR, NS -> target; SRV -> target
  // with priority, weight, port; SOA -> target (mname), mbox (rname), serial
  // and the four timers.
  std::string ip, target, mbox;
  uint16_t priority = 0, weight = 0, port = 0;
  uint32_t serial = 0, refresh = 0, retry = 0, expire = 0, minimum = 0;
  bool operator==(const Record&) const = default;
};

struct Message {
  uint16_t id = 0;
  bool response = false, authoritative = false, truncated = false;
  bool recursion_desired = false, recursion_available = false;
  uint8_t opcode = 0;
  uint8_t rcode = kNoError;
  std::vector<Question> questions;
  std::vector<Record> answers, authority, additional;
  // EDNS0: the UDP payload size the sender accepts (0: no OPT record).
  uint16_t edns_size = 0;
  // Of a parsed message: the smallest TTL in its answer section (or of its
  // authority section when it has no answers); 0 when it has neither.
  uint32_t min_ttl = 0;
};

// Reads a message: the header, its questions and, of the other sections,
// only the OPT record. nullopt with *error for anything malformed.
std::optional<Message> Parse(std::string_view wire, std::string* error);

// Writes `m` with name compression. When it does not fit in `max_size`
// bytes, records are dropped from the end and the TC bit is set, so a UDP
// client retries over TCP.
std::string Build(const Message& m, size_t max_size = 65535);

// The questioned name of a query as written ("WeB.default..." keeps its case
// on the wire); Parse lowers it. Helpers for reverse names:
// "4.3.2.1.in-addr.arpa" <-> "1.2.3.4"; "" when not an IPv4 reverse name.
std::string ReverseToIp(const std::string& name);
std::string IpToReverse(const std::string& ip);

}  // namespace minik::dns
