#include "dns/message.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <sstream>

namespace minik::dns {

namespace {

class Reader {
 public:
  explicit Reader(std::string_view w) : w_(w) {}
  bool U8(uint8_t* v) {
    if (pos_ + 1 > w_.size())
      return false;
    *v = static_cast<uint8_t>(w_[pos_++]);
    return true;
  }
  bool U16(uint16_t* v) {
    if (pos_ + 2 > w_.size())
      return false;
    *v = static_cast<uint16_t>((uint8_t(w_[pos_]) << 8) | uint8_t(w_[pos_ + 1]));
    pos_ += 2;
    return true;
  }
  bool Skip(size_t n) {
    if (pos_ + n > w_.size())
      return false;
    pos_ += n;
    return true;
  }
  // A name, following compression pointers (never forward loops).
  bool Name(std::string* out) {
    out->clear();
    size_t p = pos_;
    bool jumped = false;
    int hops = 0;
    for (;;) {
      if (p >= w_.size())
        return false;
      uint8_t len = static_cast<uint8_t>(w_[p]);
      if ((len & 0xC0) == 0xC0) {
        if (p + 1 >= w_.size() || ++hops > 64)
          return false;
        size_t target = ((len & 0x3F) << 8) | uint8_t(w_[p + 1]);
        if (!jumped)
          pos_ = p + 2;
        jumped = true;
        p = target;
        continue;
      }
      if (len & 0xC0)
        return false;  // reserved label types
      if (len == 0) {
        if (!jumped)
          pos_ = p + 1;
        break;
      }
      if (p + 1 + len > w_.size())
        return false;
      if (!out->empty())
        *out += '.';
      for (size_t i = 0; i < len; ++i) {
        char c = w_[p + 1 + i];
        *out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      }
      if (out->size() > 253)
        return false;
      p += 1 + len;
    }
    return true;
  }

 private:
  std::string_view w_;
  size_t pos_ = 0;
};

class Writer {
 public:
  void U8(uint8_t v) { out_ += static_cast<char>(v); }
  void U16(uint16_t v) {
    out_ += static_cast<char>(v >> 8);
    out_ += static_cast<char>(v & 0xFF);
  }
  void U32(uint32_t v) {
    U16(static_cast<uint16_t>(v >> 16));
    U16(static_cast<uint16_t>(v & 0xFFFF));
  }
  void Name(const std::string& name) {
    std::string rest = name;
    while (!rest.empty()) {
      auto it = seen_.find(rest);
      if (it != seen_.end()) {
        U16(static_cast<uint16_t>(0xC000 | it->second));
        return;
      }
      if (out_.size() < 0x3FFF) {
        seen_[rest] = out_.size();
      }
      auto dot = rest.find('.');
      std::string label = rest.substr(0, dot);
      U8(static_cast<uint8_t>(std::min<size_t>(label.size(), 63)));
      out_ += label.substr(0, 63);
      rest = dot == std::string::npos ? "" : rest.substr(dot + 1);
    }
    U8(0);
  }
  void Record(const dns::Record& r) {
    Name(r.name);
    U16(r.type);
    U16(1);
    U32(r.ttl);
    size_t len_at = out_.size();
    U16(0);
    size_t start = out_.size();
    switch (r.type) {
      case kA: {
        in_addr a{};
        inet_pton(AF_INET, r.ip.c_str(), &a);
        out_.append(reinterpret_cast<const char*>(&a), 4);
        break;
      }
      case kCNAME:
      case kPTR:
      case kNS:
        Name(r.target);
        break;
      case kSRV:
        U16(r.priority);
        U16(r.weight);
        U16(r.port);
        Name(r.target);
        break;
      case kSOA:
        Name(r.target);
        Name(r.mbox);
        U32(r.serial);
        U32(r.refresh);
        U32(r.retry);
        U32(r.expire);
        U32(r.minimum);
        break;
      default:
        break;
    }
    size_t len = out_.size() - start;
    out_[len_at] = static_cast<char>(len >> 8);
    out_[len_at + 1] = static_cast<char>(len & 0xFF);
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
  std::map<std::string, size_t> seen_;
};

}  // namespace

std::optional<Message> Parse(std::string_view wire, std::string* error) {
  Reader r(wire);
  Message m;
  uint16_t flags = 0, qd = 0, an = 0, ns = 0, ar = 0;
  if (!r.U16(&m.id) || !r.U16(&flags) || !r.U16(&qd) || !r.U16(&an) || !r.U16(&ns) || !r.U16(&ar)) {
    *error = "message shorter than its 12-byte header";
    return std::nullopt;
  }
  m.response = flags & 0x8000;
  m.opcode = (flags >> 11) & 0xF;
  m.authoritative = flags & 0x0400;
  m.truncated = flags & 0x0200;
  m.recursion_desired = flags & 0x0100;
  m.recursion_available = flags & 0x0080;
  m.rcode = flags & 0xF;
  if (qd > 16) {
    *error = "too many questions";
    return std::nullopt;
  }
  for (uint16_t i = 0; i < qd; ++i) {
    Question q;
    if (!r.Name(&q.name) || !r.U16(&q.type) || !r.U16(&q.klass)) {
      *error = "malformed question " + std::to_string(i + 1);
      return std::nullopt;
    }
    m.questions.push_back(q);
  }
  // Skip answers and authority; find OPT among the additional records.
  for (uint32_t i = 0; i < uint32_t(an) + ns + ar; ++i) {
    std::string name;
    uint16_t type = 0, klass = 0, rdlen = 0;
    uint16_t ttl_hi = 0, ttl_lo = 0;
    if (!r.Name(&name) || !r.U16(&type) || !r.U16(&klass) || !r.U16(&ttl_hi) || !r.U16(&ttl_lo) ||
        !r.U16(&rdlen) || !r.Skip(rdlen)) {
      *error = "malformed resource record " + std::to_string(i + 1);
      return std::nullopt;
    }
    uint32_t ttl = (uint32_t(ttl_hi) << 16) | ttl_lo;
    bool counts = i < an || (an == 0 && i < uint32_t(an) + ns);
    if (counts && (m.min_ttl == 0 || ttl < m.min_ttl)) {
      m.min_ttl = ttl;
    }
    if (i >= uint32_t(an) + ns && type == kOPT) {
      m.edns_size = std::max<uint16_t>(klass, 512);
    }
  }
  return m;
}

std::string Build(const Message& m, size_t max_size) {
  auto write = [&](size_t answers, size_t authority, size_t additional, bool truncated) {
    Writer w;
    w.U16(m.id);
    uint16_t flags = static_cast<uint16_t>(
        (m.response ? 0x8000 : 0) | ((m.opcode & 0xF) << 11) | (m.authoritative ? 0x0400 : 0) |
        (truncated ? 0x0200 : 0) | (m.recursion_desired ? 0x0100 : 0) |
        (m.recursion_available ? 0x0080 : 0) | (m.rcode & 0xF));
    w.U16(flags);
    w.U16(static_cast<uint16_t>(m.questions.size()));
    w.U16(static_cast<uint16_t>(answers));
    w.U16(static_cast<uint16_t>(authority));
    w.U16(static_cast<uint16_t>(additional + (m.edns_size ? 1 : 0)));
    for (const auto& q : m.questions) {
      w.Name(q.name);
      w.U16(q.type);
      w.U16(q.klass);
    }
    for (size_t i = 0; i < answers; ++i)
      w.Record(m.answers[i]);
    for (size_t i = 0; i < authority; ++i)
      w.Record(m.authority[i]);
    for (size_t i = 0; i < additional; ++i)
      w.Record(m.additional[i]);
    if (m.edns_size) {
      w.U8(0);  // root
      w.U16(kOPT);
      w.U16(m.edns_size);
      w.U32(0);
      w.U16(0);
    }
    return std::move(w.out());
  };
  std::string out = write(m.answers.size(), m.authority.size(), m.additional.size(), m.truncated);
  if (out.size() <= max_size) {
    return out;
  }
  // Too big: drop additional, then authority, then answers from the end.
  size_t an = m.answers.size(), ns = m.authority.size(), ar = m.additional.size();
  while (out.size() > max_size && (an || ns || ar)) {
    if (ar) {
      --ar;
    } else if (ns) {
      --ns;
    } else {
      --an;
    }
    out = write(an, ns, ar, true);
  }
  return out;
}

std::string ReverseToIp(const std::string& name) {
  const std::string suffix = ".in-addr.arpa";
  if (name.size() <= suffix.size() ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return "";
  }
  std::vector<std::string> parts;
  std::stringstream ss(name.substr(0, name.size() - suffix.size()));
  std::string p;
  while (std::getline(ss, p, '.')) {
    if (p.empty() || p.size() > 3 || !std::all_of(p.begin(), p.end(), ::isdigit) ||
        std::stoi(p) > 255) {
      return "";
    }
    parts.push_back(p);
  }
  if (parts.size() != 4) {
    return "";
  }
  return parts[3] + "." + parts[2] + "." + parts[1] + "." + parts[0];
}

std::string IpToReverse(const std::string& ip) {
  std::vector<std::string> parts;
  std::stringstream ss(ip);
  std::string p;
  while (std::getline(ss, p, '.')) {
    parts.push_back(p);
  }
  if (parts.size() != 4) {
    return "";
  }
  return parts[3] + "." + parts[2] + "." + parts[1] + "." + parts[0] + ".in-addr.arpa";
}

}  // namespace minik::dns
