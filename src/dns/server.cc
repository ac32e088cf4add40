#include "dns/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "client/client.h"
#include "common/error.h"
#include "common/exec.h"
#include "common/log.h"

namespace minik::dns {

namespace {

constexpr size_t kMaxInFlight = 256;

sockaddr_in Address(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

bool ReadFull(int fd, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = recv(fd, buf + got, n - got, 0);
    if (k <= 0) {
      return false;
    }
    got += static_cast<size_t>(k);
  }
  return true;
}

bool WriteFull(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t k = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (k <= 0) {
      return false;
    }
    off += static_cast<size_t>(k);
  }
  return true;
}

std::string WithLength(const std::string& msg) {
  std::string out;
  out += static_cast<char>(msg.size() >> 8);
  out += static_cast<char>(msg.size() & 0xFF);
  return out + msg;
}

void SetTimeout(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = t.count() / 1000;
  tv.tv_usec = (t.count() % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// One exchange with an upstream; "" on timeout or error.
std::string Exchange(const std::string& upstream, const std::string& query, bool tcp,
                     std::chrono::milliseconds timeout) {
  std::string ip;
  uint16_t port = 53;
  if (!ParseHostPort(upstream, &ip, &port)) {
    return "";
  }
  sockaddr_in to = Address(ip, port);
  int fd = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return "";
  }
  SetTimeout(fd, timeout);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0) {
    if (tcp) {
      char len[2];
      if (WriteFull(fd, WithLength(query)) && ReadFull(fd, len, 2)) {
        size_t n = (uint8_t(len[0]) << 8) | uint8_t(len[1]);
        out.resize(n);
        if (!ReadFull(fd, out.data(), n)) {
          out.clear();
        }
      }
    } else if (send(fd, query.data(), query.size(), 0) == static_cast<ssize_t>(query.size())) {
      char buf[65535];
      // Answers with another ID are stale or forged: keep waiting.
      for (int i = 0; i < 8; ++i) {
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k < 12) {
          break;
        }
        if (buf[0] == query[0] && buf[1] == query[1]) {
          out.assign(buf, static_cast<size_t>(k));
          break;
        }
      }
    }
  }
  close(fd);
  return out;
}

}  // namespace

bool ParseHostPort(const std::string& s, std::string* ip, uint16_t* port) {
  auto colon = s.rfind(':');
  std::string host = colon == std::string::npos ? s : s.substr(0, colon);
  *port = 53;
  if (colon != std::string::npos) {
    try {
      int p = std::stoi(s.substr(colon + 1));
      if (p <= 0 || p > 65535) {
        return false;
      }
      *port = static_cast<uint16_t>(p);
    } catch (const std::exception&) {
      return false;
    }
  }
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) != 1) {
    return false;
  }
  *ip = host;
  return true;
}

std::vector<std::string> ResolvConfNameservers(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string key, value;
    ss >> key >> value;
    in_addr a{};
    if (key == "nameserver" && inet_pton(AF_INET, value.c_str(), &a) == 1) {
      out.push_back(value + ":53");
    }
  }
  return out;
}

Server::Server(ServerOptions opts, std::shared_ptr<Zone> zone)
    : o_(std::move(opts)), zone_(std::move(zone)) {}

Server::~Server() {
  Stop();
}

void Server::Start() {
  // With port 0, the UDP port the kernel picks may be taken for TCP: try again.
  for (int attempt = 0;; ++attempt) {
    sockaddr_in a = Address(o_.listen_ip, o_.port);
    int one = 1;
    udp_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    setsockopt(udp_, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
    if (bind(udp_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      int err = errno;
      close(udp_);
      throw SystemError("dns: listen on udp " + o_.listen_ip + ":" + std::to_string(o_.port), err);
    }
    socklen_t len = sizeof(a);
    getsockname(udp_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    tcp_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(tcp_, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
    setsockopt(tcp_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(tcp_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(tcp_, 64) == 0) {
      break;
    }
    int err = errno;
    close(udp_);
    close(tcp_);
    if (o_.port != 0 || err != EADDRINUSE || attempt >= 20) {
      throw SystemError("dns: listen on tcp " + o_.listen_ip + ":" + std::to_string(port_), err);
    }
  }
  udp_thread_ = std::thread([this] { UdpLoop(); });
  tcp_thread_ = std::thread([this] { TcpLoop(); });
}

void Server::Stop() {
  if (stop_.exchange(true)) {
    return;
  }
  if (udp_ >= 0)
    shutdown(udp_, SHUT_RDWR);
  if (tcp_ >= 0)
    shutdown(tcp_, SHUT_RDWR);
  if (udp_thread_.joinable())
    udp_thread_.join();
  if (tcp_thread_.joinable())
    tcp_thread_.join();
  if (udp_ >= 0)
    close(udp_);
  if (tcp_ >= 0)
    close(tcp_);
  while (in_flight_ > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string Server::Handle(const std::string& query, bool tcp) {
  ++stats_.queries;
  std::string err;
  auto q = Parse(query, &err);
  if (!q || q->response) {
    ++stats_.errors;
    if (query.size() < 12) {
      return "";  // not even a header to answer
    }
    Message m;
    m.id = static_cast<uint16_t>((uint8_t(query[0]) << 8) | uint8_t(query[1]));
    m.response = true;
    m.rcode = kFormErr;
    return Build(m);
  }
  Message reply;
  reply.id = q->id;
  reply.response = true;
  reply.opcode = q->opcode;
  reply.recursion_desired = q->recursion_desired;
  reply.recursion_available = true;
  reply.questions = q->questions;
  reply.edns_size = q->edns_size ? 1232 : 0;
  size_t max = tcp ? 65535 : std::max<size_t>(512, q->edns_size);
  if (q->opcode != 0) {
    reply.rcode = kNotImp;
    return Build(reply, max);
  }
  if (q->questions.size() != 1) {
    reply.rcode = kFormErr;
    return Build(reply, max);
  }
  std::optional<Answer> a = zone_->Lookup(q->questions[0]);
  if (!a) {
    return Forward(query, *q, tcp);
  }
  reply.authoritative = true;
  reply.rcode = a->rcode;
  reply.answers = std::move(a->answers);
  reply.authority = std::move(a->authority);
  reply.additional = std::move(a->additional);
  return Build(reply, max);
}

std::string Server::Forward(const std::string& query, const Message& q, bool tcp) {
  const Question& question = q.questions[0];
  std::string key = question.name + "/" + std::to_string(question.type) + "/" +
                    std::to_string(question.klass) + (q.edns_size ? "/e" : "");
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.expires > now) {
      ++stats_.cache_hits;
      return query.substr(0, 2) + it->second.response;
    }
  }
  ++stats_.forwarded;
  std::string answer;
  for (const auto& up : o_.upstreams) {
    answer = Exchange(up, query, tcp, o_.upstream_timeout);
    if (!answer.empty()) {
      break;
    }
  }
  std::string err;
  auto parsed = answer.empty() ? std::nullopt : Parse(answer, &err);
  if (!parsed) {
    Message m;
    m.id = q.id;
    m.response = true;
    m.recursion_desired = q.recursion_desired;
    m.recursion_available = true;
    m.questions = q.questions;
    m.rcode = kServFail;
    return Build(m);
  }
  bool cacheable = !parsed->truncated && (parsed->rcode == kNoError || parsed->rcode == kNXDomain);
  if (cacheable) {
    auto ttl = std::min<std::chrono::seconds>(
        o_.max_cache_ttl, std::chrono::seconds(parsed->min_ttl ? parsed->min_ttl : 5));
    std::lock_guard lock(cache_mu_);
    if (cache_.size() >= o_.cache_entries) {
      for (auto it = cache_.begin(); it != cache_.end();) {
        it = it->second.expires <= now ? cache_.erase(it) : std::next(it);
      }
      if (cache_.size() >= o_.cache_entries) {
        cache_.erase(cache_.begin());
      }
    }
    cache_[key] = {answer.substr(2), now + ttl};
  }
  return answer;
}

void Server::UdpLoop() {
  char buf[65535];
  while (!stop_) {
    pollfd p{udp_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) {
      continue;
    }
    sockaddr_in from{};
    socklen_t len = sizeof(from);
    ssize_t k = recvfrom(udp_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      if (stop_)
        break;
      continue;
    }
    if (k == 0) {
      if (stop_)
        break;
      continue;
    }
    std::string query(buf, static_cast<size_t>(k));
    auto reply = [this, query, from]() {
      std::string out = Handle(query, false);
      if (!out.empty()) {
        sendto(udp_, out.data(), out.size(), 0, reinterpret_cast<const sockaddr*>(&from),
               sizeof(from));
      }
    };
    // The zone answers at once; a forwarded name waits for the upstream on
    // its own thread, so one slow name does not hold up the rest.
    std::string err;
    auto q = Parse(query, &err);
    if (q && q->questions.size() == 1 && zone_->Lookup(q->questions[0])) {
      reply();
    } else if (in_flight_ < static_cast<int>(kMaxInFlight)) {
      ++in_flight_;
      std::thread([this, reply] {
        reply();
        --in_flight_;
      }).detach();
    } else {
      ++stats_.errors;  // overloaded: the client retries
    }
  }
}

void Server::TcpLoop() {
  while (!stop_) {
    pollfd p{tcp_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) {
      continue;
    }
    int fd = accept4(tcp_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    if (in_flight_ >= static_cast<int>(kMaxInFlight)) {
      close(fd);
      continue;
    }
    ++in_flight_;
    std::thread([this, fd] {
      TcpConnection(fd);
      --in_flight_;
    }).detach();
  }
}

void Server::TcpConnection(int fd) {
  SetTimeout(fd, std::chrono::seconds(10));
  while (!stop_) {
    char len[2];
    if (!ReadFull(fd, len, 2)) {
      break;
    }
    size_t n = (uint8_t(len[0]) << 8) | uint8_t(len[1]);
    std::string query(n, '\0');
    if (!ReadFull(fd, query.data(), n)) {
      break;
    }
    std::string out = Handle(query, true);
    if (out.empty() || !WriteFull(fd, WithLength(out))) {
      break;
    }
  }
  close(fd);
}

}  // namespace minik::dns
